// One transformer for Llama and Qwen2 (see layers.h for what varies as data), its loader from
// a Hugging Face folder, and the forward pass over a KV cache.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/model/config.h"
#include "quad/model/kv_cache.h"
#include "quad/model/layers.h"

namespace quad {

struct Model {
  ModelConfig config;
  int residual_width = 0;     // D: d, or d + r after QUAD
  std::vector<float> embed;   // (vocab, D)
  std::vector<DecoderLayer> layers;
  RmsNorm final_norm;
  Linear lm_head;             // (vocab, D); a copy of embed for tied models
  RopeTable rope;

  // Reads config.json and the safetensors of an HF folder; every expected tensor is checked
  // for presence and shape. Throws quad::Error naming the tensor and file.
  static Model load(const std::string& dir);
  size_t num_params() const;  // counting tied embeddings once
  // Grows the RoPE table so positions [0, n) can be used.
  void ensure_positions(int n);
};

// Scratch buffers of one forward pass, reused across calls.
struct ForwardScratch {
  std::vector<float> x, xn, q, k, v, attn, proj, gate, up, hidden;
  std::vector<int32_t> positions;
};

// Runs tokens[0..n) at positions pos0..pos0+n-1, appending their keys/values to `cache`
// (which must already hold positions [0, pos0)). Writes logits for the last `n_logits`
// positions to `logits` ((n_logits, vocab)); n_logits = 0 skips the head.
void forward(const Model& model, Backend& backend, const int32_t* tokens, int n, int pos0,
             KVCache& cache, ForwardScratch& scratch, float* logits, int n_logits);

}  // namespace quad
