// The full recipe of a quantization run (QUAD-SPEC §3–§6 defaults), recorded in the output
// folder's config.json as `quantization_config`.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace quad {

struct Recipe {
  std::string method = "quad";  // quad | quarot (r = 0, rotated) | rtn (no rotation, r = 0)
  int rank = 64;                // r: outlier dimensions kept in full precision
  int w_bits = 4;               // weights (4, 8 or 16 = unquantized)
  int a_bits = 4;               // inputs of q/k/v/gate/up (normal part)
  int od_bits = 8;              // inputs of o_proj / down_proj
  int kv_bits = 16;             // KV cache (4 = simulated int4 per head, QUAD-SPEC §4.6)
  bool gptq = true;             // GPTQ, else round-to-nearest
  bool w_clip = true;           // the per-row clipping search
  double percdamp = 0.01;
  int nsamples = 128;   // GPTQ calibration sequences
  int seqlen = 2048;    // GPTQ calibration length (clipped to the model's context)
  int p_nsamples = 32;  // sequences for the outlier subspace P
  int p_seqlen = 512;
  float a_clip = 0.9f;  // activation clip ratio
  float kv_clip = 0.95f;
  bool center_embeddings = true;
  std::string calib_path;  // calibration text (jsonl with "text", or plain text)
  std::string calib_sha256;
  uint64_t seed = 0;
  std::string tool_version;
  // JSON array (serialized) of the fine-tuning runs applied to the folder, oldest first
  // (`quad finetune` appends one object of its settings); "" when never fine-tuned.
  std::string finetune_json;

  bool rotate() const { return method != "rtn"; }
  // Throws quad::Error (module "recipe") on inconsistent settings.
  void validate() const;
  nlohmann::json to_json() const;
  static Recipe from_json(const nlohmann::json& j, const std::string& source);
};

}  // namespace quad
