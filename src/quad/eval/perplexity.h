// Perplexity with the protocol of goldens/hf_reference.json (and the QUAD paper): tokenize the
// whole text once (with the model's default special tokens), cut into non-overlapping chunks of
// `ctx` tokens, drop the shorter tail, score positions 1..ctx-1 of every chunk.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/model/model.h"

namespace quad {

struct PerplexityResult {
  double ppl = 0;      // exp(nll)
  double nll = 0;      // mean negative log-likelihood per scored token (nats)
  int64_t tokens = 0;  // tokens in the whole text
  int64_t scored = 0;  // predictions scored
  int64_t chunks = 0;
  int ctx = 0;
  double seconds = 0;
  // Against a base model (perplexity with `base`; else negative): the mean over scored
  // positions of KL(P_base ‖ P_model) in nats, the share of positions where both models'
  // argmax agree, and the base model's own perplexity on the same chunks.
  double kl = -1, top1_agreement = -1, base_ppl = -1;
};

// Σ over rows [0, n) of KL(softmax(base_row) ‖ softmax(row)) (nats, fp64), and the number of
// rows whose argmax (first maximum) agree.
double kl_divergence_sum(const float* base, const float* logits, int n, int vocab,
                         int64_t* top1_agree);

// Mean NLL of predicting ids[i+1] from logits row i, for rows [0, n-1): returns the sum (nats).
double next_token_nll_sum(const float* logits, const int32_t* ids, int n, int vocab);

// `max_chunks` > 0 limits the number of chunks (for quick checks). Throws quad::Error when the
// text is shorter than one chunk.
// With `base` (same vocabulary; e.g. the FP model a quantized one came from), every chunk also
// runs through it and the result carries the KL divergence from it (llama.cpp's
// --kl-divergence): how far the model's predictions moved, which perplexity alone can hide.
PerplexityResult perplexity(Model& model, Backend& backend, const std::vector<int32_t>& ids,
                            int ctx, int64_t max_chunks = 0, bool progress = true,
                            Model* base = nullptr);

}  // namespace quad
