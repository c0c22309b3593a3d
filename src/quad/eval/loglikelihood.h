// Log-likelihood of continuations, as lm-evaluation-harness's HFLM computes it, on our forward
// pass. Requests of one item share the KV cache of their common token prefix.
#pragma once

#include <cstdint>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/eval/tasks.h"
#include "quad/io/tokenizer.h"
#include "quad/model/model.h"

namespace quad::eval {

enum class BosMode {
  kAuto,  // as the tokenizer does by default (HF's add_special_tokens=True)
  kOn,    // always prepend BOS
  kOff,   // never
};

struct TokenizedRequest {
  std::vector<int32_t> context, continuation;
};

// lm-eval's _encode_pair: trailing spaces of the context move to the continuation; the
// continuation's tokens are those of encode(context + continuation) after the first
// len(encode(context)) tokens. An empty context becomes [BOS] (EOS if there is no BOS) and the
// continuation is encoded alone. Throws quad::Error if the continuation has no tokens.
TokenizedRequest encode_request(const Tokenizer& tokenizer, const Request& request, BosMode bos);

struct Score {
  double loglik = 0;    // sum of log P(continuation token | everything before), nats
  bool greedy = false;  // every continuation token is the argmax of its logits
  int tokens = 0;       // continuation tokens
};

class Scorer {
 public:
  // Sequences longer than the model's context are cut on the left, as lm-eval does. The
  // requests' tokens after their shared prefix run batched, up to batch_tokens per pass (1 =
  // one request per pass).
  Scorer(Model& model, Backend& backend, int batch_tokens = kDefaultBatchTokens);
  static constexpr int kDefaultBatchTokens = 1024;
  // Scores every request; the longest token prefix common to all of them (up to the last
  // context token) is run once and its KV cache reused; the rest of every request continues
  // from it, as branches of batched passes (forward_branches).
  std::vector<Score> score(const std::vector<TokenizedRequest>& requests);
  int64_t tokens_run() const { return tokens_run_; }

 private:
  Model& model_;
  Backend& backend_;
  int max_len_;
  int batch_tokens_;
  KVCache cache_;  // grown on demand
  ForwardScratch scratch_;
  std::vector<float> logits_;
  std::vector<int32_t> tokens_;
  std::vector<int> branches_;
  int64_t tokens_run_ = 0;
};

// Log-softmax of `row` (vocab) at `target`, in double precision; also whether target is the
// argmax (the first maximum, as torch.argmax).
double log_softmax_at(const float* row, int vocab, int target, bool* is_argmax);

}  // namespace quad::eval
