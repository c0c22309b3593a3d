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
};

// Mean NLL of predicting ids[i+1] from logits row i, for rows [0, n-1): returns the sum (nats).
double next_token_nll_sum(const float* logits, const int32_t* ids, int n, int vocab);

// `max_chunks` > 0 limits the number of chunks (for quick checks). Throws quad::Error when the
// text is shorter than one chunk.
PerplexityResult perplexity(Model& model, Backend& backend, const std::vector<int32_t>& ids,
                            int ctx, int64_t max_chunks = 0, bool progress = true);

}  // namespace quad
