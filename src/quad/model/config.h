// The normalized model configuration, parsed from a Hugging Face config.json.
// Accepts the classic and the transformers-5 spellings (rope_theta / rope_parameters,
// torch_dtype / dtype, eos_token_id as a number or a list, optional head_dim).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace quad {

enum class Architecture { Llama, Qwen2 };

struct RopeScaling {
  std::string type = "default";  // default | linear | llama3
  double factor = 1.0;
  double low_freq_factor = 1.0;              // llama3
  double high_freq_factor = 4.0;             // llama3
  int original_max_position_embeddings = 0;  // llama3
};

struct ModelConfig {
  Architecture arch = Architecture::Llama;
  std::string architecture_name;  // e.g. "LlamaForCausalLM"
  int hidden_size = 0;            // d
  int intermediate_size = 0;      // m
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
  int max_position_embeddings = 0;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  float rms_norm_eps = 1e-6f;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;          // Qwen2: always; Llama: attention_bias
  bool o_bias = false;            // Llama attention_bias
  bool mlp_bias = false;          // Llama mlp_bias
  std::string dtype = "float32";  // storage dtype named by the config
  int bos_token_id = -1;
  std::vector<int> eos_token_ids;

  // Throws quad::Error (module "config") naming `source` on unknown architectures or rope
  // types, missing or inconsistent fields.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
  static ModelConfig load(const std::string& model_dir);

  bool is_eos(int id) const;
  // RoPE inverse frequencies (head_dim/2 entries) with scaling applied exactly as transformers
  // computes them (float32 results).
  std::vector<float> rope_inv_freq() const;
  std::string arch_label() const { return arch == Architecture::Llama ? "llama" : "qwen2"; }
};

}  // namespace quad
