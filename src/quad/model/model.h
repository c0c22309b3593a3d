// One transformer for Llama and Qwen2 (see layers.h for what varies as data), its loader from
// a Hugging Face folder, and the forward pass over a KV cache.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/model/config.h"
#include "quad/model/kv_cache.h"
#include "quad/model/layers.h"

namespace quad {

class TensorStore;

struct Model {
  ModelConfig config;
  int residual_width = 0;    // D: d, or d + r after QUAD
  std::vector<float> embed;  // (vocab, D)
  std::vector<DecoderLayer> layers;
  RmsNorm final_norm;
  Linear lm_head;  // (vocab, D); a copy of embed for tied models
  RopeTable rope;
  // Simulated KV-cache quantization applied to keys (after RoPE) and values, per
  // (token, head) row of head_dim entries (QUAD-SPEC §4.6); null: fp cache.
  std::shared_ptr<const InputTransform> kv_quant;

  // Reads config.json and the safetensors of an HF folder; every expected tensor is checked
  // for presence and shape. Throws quad::Error naming the tensor and file.
  static Model load(const std::string& dir);
  size_t num_params() const;  // counting tied embeddings once
  // Bytes of weights held for compute (fp32 tensors, packed or int8 codes, scales, outliers).
  size_t weight_bytes() const;
  // Grows the RoPE table so positions [0, n) can be used.
  void ensure_positions(int n);
};

// Pieces of Model::load for an HF folder, for code that holds one layer at a time (the
// quantization pipeline): decoder layer i as stored, and the model with its embedding, final
// norm and (untied) head but empty layers.
DecoderLayer load_decoder_layer(const TensorStore& store, const ModelConfig& config, int i);
Model load_model_without_layers(const TensorStore& store, const ModelConfig& config);

// Rounds the fp32 weights of every linear layer (not the embeddings, not quantized layers) to
// bf16 and keeps only those (Linear::weight_bf16): exact for checkpoints stored in bf16, half
// the memory, and the GPU runs them on bf16 tensor cores.
void store_fp_linears_in_bf16(Model& model);

// Scratch buffers of one forward pass, reused across calls.
struct ForwardScratch {
  // Activations, in the memory of the backend that runs the pass.
  BackendArray<float> x, xn, q, attn, proj, gate, up, logits;
  BackendArray<float> branch_k, branch_v;  // forward_branches: the branches' new keys/values
  BackendArray<float> transformed;  // a linear's input after its online transform / quantizer
  // Host-side work: online transforms and the op-by-op integer path, and staging of
  // activations for them when the backend keeps activations elsewhere.
  std::vector<float> normed, outlier_in, outlier_out, host_in, host_out;
  std::vector<int8_t> codes;
  std::vector<float> token_scales;
  std::vector<int32_t> positions;
};

// Observes activations during a forward pass (calibration statistics, GPTQ Hessians). The
// activations it is shown live in the backend's memory (GPU memory on cuda) or in host memory;
// an observer reads them through backend ops (Backend::gram_accumulate).
class ForwardObserver {
 public:
  virtual ~ForwardObserver() = default;
  // The residual stream x (n, width) entering a norm of `layer`: which = 0 for the attention
  // norm (input_layernorm), 1 for the MLP norm (post_attention_layernorm).
  virtual void norm_input(int layer, int which, const float* x, int n, int width) {}
  // The input x (n, lin.in) of a linear layer after its online transform, before activation
  // quantization.
  virtual void linear_input(int layer, const Linear& lin, const float* x, int n) {}
  // True once the observer has seen all it wants of the layer being run: the layer stops there,
  // without the GEMM of the linear whose input it just saw (nor those of linears sharing that
  // input, when they transform nothing), leaving its outputs (the residual stream, the KV
  // cache) unspecified.
  virtual bool seen_enough() const { return false; }
};

// y (n, out) = lin(x (n, in)) with the layer's online transform and input quantizer: the
// integer path when it has quantized weights and quantized inputs, else (fake-quantized
// inputs and) the fp GEMM. `layer` and `observer` are for calibration hooks (y is left
// unwritten once the observer has seen enough).
void apply_linear(Backend& backend, const Linear& lin, const float* x, int n, float* y,
                  ForwardScratch& scratch, int layer = -1, ForwardObserver* observer = nullptr);

// Writes the embeddings of tokens[0..n) into x (n, D) (host memory).
void embed(const Model& model, const int32_t* tokens, int n, float* x);

// Runs decoder layer `layer` in place on the residual stream x (n, D) at positions
// pos0..pos0+n-1; k_cache / v_cache (capacity, n_kv_heads, head_dim) must hold positions
// [0, pos0) and receive the new ones. x and the caches may be host memory or the backend's.
void forward_layer(const Model& model, Backend& backend, int layer, float* x, int n, int pos0,
                   float* k_cache, float* v_cache, ForwardScratch& scratch,
                   ForwardObserver* observer = nullptr);

// Final norm and LM head on the last n_logits rows of x (n, D, the backend's memory): logits
// (n_logits, vocab) in host memory.
void forward_head(const Model& model, Backend& backend, const float* x, int n, int n_logits,
                  ForwardScratch& scratch, float* logits);

// Runs tokens[0..n) at positions pos0..pos0+n-1, appending their keys/values to `cache`
// (which must already hold positions [0, pos0)). Writes logits for the last `n_logits`
// positions to `logits` ((n_logits, vocab)); n_logits = 0 skips the head.
void forward(const Model& model, Backend& backend, const int32_t* tokens, int n, int pos0,
             KVCache& cache, ForwardScratch& scratch, float* logits, int n_logits,
             ForwardObserver* observer = nullptr);

// forward with logits for the last position only, left in the backend's memory (s.logits; valid
// until the next pass with `s`): for choosing the next token there (Sampler::sample(Backend&,
// ...)) without copying the vocabulary-sized row to the host.
const float* forward_last_logits(const Model& model, Backend& backend, const int32_t* tokens, int n,
                                 int pos0, KVCache& cache, ForwardScratch& scratch);

// Several continuations of one cached prefix in a single pass (batched scoring): `tokens`
// holds the branches one after another, `branches` their lengths; branch b's tokens sit at
// positions pos0, pos0 + 1, ... and attend to the prefix [0, pos0) and to their own branch
// only, so each branch gets exactly the logits a separate forward call from pos0 would give.
// Logits (n, vocab) for every token, n = Σ branches. The cache needs room for pos0 + n
// entries; what it holds beyond pos0 afterwards is unspecified.
void forward_branches(const Model& model, Backend& backend, const int32_t* tokens,
                      std::span<const int> branches, int pos0, KVCache& cache,
                      ForwardScratch& scratch, float* logits);

}  // namespace quad
