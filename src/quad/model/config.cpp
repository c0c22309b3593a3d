#include "quad/model/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "quad/core/error.h"

namespace quad {

using nlohmann::json;

namespace {

int get_int(const json& j, const char* key, const std::string& src, bool required = true,
            int fallback = 0) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) fail("config", "{}: missing required field '{}'", src, key);
    return fallback;
  }
  if (!it->is_number_integer()) fail("config", "{}: field '{}' must be an integer", src, key);
  return it->get<int>();
}

double get_number(const json& j, const char* key, const std::string& src, double fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) fail("config", "{}: field '{}' must be a number", src, key);
  return it->get<double>();
}

bool get_bool(const json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_boolean()) return fallback;
  return it->get<bool>();
}

// rope_scaling (classic) or rope_parameters (transformers 5); either may carry rope_theta.
void parse_rope(const json& j, ModelConfig& c, const std::string& src) {
  c.rope_theta = get_number(j, "rope_theta", src, 10000.0);
  const json* rope = nullptr;
  if (auto it = j.find("rope_parameters"); it != j.end() && it->is_object()) rope = &*it;
  if (auto it = j.find("rope_scaling"); it != j.end() && it->is_object()) rope = &*it;
  if (!rope) return;
  c.rope_theta = get_number(*rope, "rope_theta", src, c.rope_theta);
  std::string type = "default";
  if (auto it = rope->find("rope_type"); it != rope->end() && it->is_string())
    type = *it;
  else if (auto it2 = rope->find("type"); it2 != rope->end() && it2->is_string())
    type = *it2;
  auto& s = c.rope_scaling;
  s.type = type;
  if (type == "default") return;
  if (type != "linear" && type != "llama3")
    fail("config", "{}: unsupported rope type '{}' (supported: default, linear, llama3)", src,
         type);
  s.factor = get_number(*rope, "factor", src, 0.0);
  if (!(s.factor > 0)) fail("config", "{}: rope type '{}' needs a positive 'factor'", src, type);
  if (type == "llama3") {
    s.low_freq_factor = get_number(*rope, "low_freq_factor", src, 1.0);
    s.high_freq_factor = get_number(*rope, "high_freq_factor", src, 4.0);
    s.original_max_position_embeddings = get_int(*rope, "original_max_position_embeddings", src);
    if (!(s.high_freq_factor > s.low_freq_factor) || s.original_max_position_embeddings <= 0)
      fail("config", "{}: inconsistent llama3 rope parameters", src);
  }
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& j, const std::string& src) {
  if (!j.is_object()) fail("config", "{}: not a JSON object", src);
  ModelConfig c;
  std::string arch_name;
  if (auto it = j.find("architectures");
      it != j.end() && it->is_array() && !it->empty() && (*it)[0].is_string())
    arch_name = (*it)[0];
  std::string model_type = j.value("model_type", std::string());
  if (arch_name == "LlamaForCausalLM" || (arch_name.empty() && model_type == "llama")) {
    c.arch = Architecture::Llama;
  } else if (arch_name == "Qwen2ForCausalLM" || (arch_name.empty() && model_type == "qwen2")) {
    c.arch = Architecture::Qwen2;
  } else {
    fail("config",
         "{}: unsupported architecture '{}' (model_type '{}'); supported: LlamaForCausalLM, "
         "Qwen2ForCausalLM",
         src, arch_name.empty() ? "?" : arch_name, model_type);
  }
  c.architecture_name =
      arch_name.empty() ? (c.arch == Architecture::Llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM")
                        : arch_name;
  c.hidden_size = get_int(j, "hidden_size", src);
  c.intermediate_size = get_int(j, "intermediate_size", src);
  c.num_layers = get_int(j, "num_hidden_layers", src);
  c.num_heads = get_int(j, "num_attention_heads", src);
  c.num_kv_heads = get_int(j, "num_key_value_heads", src, false, c.num_heads);
  c.vocab_size = get_int(j, "vocab_size", src);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", src, false, 2048);
  if (c.hidden_size <= 0 || c.intermediate_size <= 0 || c.num_layers <= 0 || c.num_heads <= 0 ||
      c.num_kv_heads <= 0 || c.vocab_size <= 0 || c.max_position_embeddings <= 0)
    fail("config", "{}: sizes must be positive", src);
  if (c.num_heads % c.num_kv_heads != 0)
    fail("config", "{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", src,
         c.num_heads, c.num_kv_heads);
  int default_head_dim = c.hidden_size / c.num_heads;
  c.head_dim = get_int(j, "head_dim", src, false, default_head_dim);
  if (c.head_dim <= 0 || c.head_dim % 2 != 0)
    fail("config", "{}: head_dim {} must be positive and even", src, c.head_dim);
  if (c.hidden_size % c.num_heads != 0 && !j.contains("head_dim"))
    fail("config", "{}: hidden_size {} not divisible by num_attention_heads {}", src, c.hidden_size,
         c.num_heads);
  c.rms_norm_eps = float(get_number(j, "rms_norm_eps", src, 1e-6));
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", c.arch == Architecture::Qwen2);
  if (c.arch == Architecture::Qwen2) {
    c.qkv_bias = true;
  } else {
    c.qkv_bias = c.o_bias = get_bool(j, "attention_bias", false);
    c.mlp_bias = get_bool(j, "mlp_bias", false);
  }
  std::string act = j.value("hidden_act", std::string("silu"));
  if (act != "silu") fail("config", "{}: unsupported hidden_act '{}' (only silu)", src, act);
  if (auto it = j.find("dtype"); it != j.end() && it->is_string())
    c.dtype = *it;
  else if (auto it2 = j.find("torch_dtype"); it2 != j.end() && it2->is_string())
    c.dtype = *it2;
  parse_rope(j, c, src);
  if (auto it = j.find("bos_token_id"); it != j.end() && it->is_number_integer())
    c.bos_token_id = *it;
  if (auto it = j.find("eos_token_id"); it != j.end()) {
    if (it->is_number_integer())
      c.eos_token_ids.push_back(*it);
    else if (it->is_array())
      for (auto& e : *it)
        if (e.is_number_integer()) c.eos_token_ids.push_back(e);
  }
  return c;
}

ModelConfig ModelConfig::load(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  std::ifstream f(path);
  if (!f) fail("config", "{}: cannot open (is '{}' a model folder?)", path, dir);
  json j;
  try {
    j = json::parse(f);
  } catch (const json::exception& e) {
    fail("config", "{}: invalid JSON: {}", path, e.what());
  }
  return from_json(j, path);
}

bool ModelConfig::is_eos(int id) const {
  return std::find(eos_token_ids.begin(), eos_token_ids.end(), id) != eos_token_ids.end();
}

std::vector<float> ModelConfig::rope_inv_freq() const {
  // transformers: inv_freq = 1 / base ** (arange(0, dim, 2).float() / dim), in float32.
  const int half = head_dim / 2;
  std::vector<float> inv(half);
  for (int i = 0; i < half; ++i) {
    float exponent = float(2 * i) / float(head_dim);
    inv[i] = 1.0f / std::pow(float(rope_theta), exponent);
  }
  const RopeScaling& s = rope_scaling;
  if (s.type == "linear") {
    for (auto& f : inv) f = f / float(s.factor);
  } else if (s.type == "llama3") {
    // _compute_llama3_parameters in transformers' modeling_rope_utils.py.
    const double old_len = s.original_max_position_embeddings;
    const double low_wavelen = old_len / s.low_freq_factor;
    const double high_wavelen = old_len / s.high_freq_factor;
    for (auto& f : inv) {
      const float wavelen = float(2 * M_PI) / f;
      float scaled = wavelen > low_wavelen ? f / float(s.factor) : f;
      const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
      if (medium) {
        const float smooth = (float(old_len) / wavelen - float(s.low_freq_factor)) /
                             float(s.high_freq_factor - s.low_freq_factor);
        scaled = (1 - smooth) * scaled / float(s.factor) + smooth * scaled;
      }
      f = scaled;
    }
  }
  return inv;
}

}  // namespace quad
