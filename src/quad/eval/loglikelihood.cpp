#include "quad/eval/loglikelihood.h"

#include <algorithm>
#include <cmath>

#include "quad/core/error.h"
#include "quad/core/log_sum_exp.h"

namespace quad::eval {

namespace {

std::vector<int32_t> encode_with(const Tokenizer& tok, const std::string& text, BosMode bos) {
  switch (bos) {
    case BosMode::kAuto: return tok.encode(text, true);
    case BosMode::kOff: return tok.encode(text, false);
    case BosMode::kOn: {
      std::vector<int32_t> ids = tok.encode(text, false);
      check(tok.bos_id() >= 0, "eval", "--bos on: the tokenizer has no BOS token");
      ids.insert(ids.begin(), tok.bos_id());
      return ids;
    }
  }
  return {};
}

}  // namespace

TokenizedRequest encode_request(const Tokenizer& tok, const Request& request, BosMode bos) {
  std::string context = request.context;
  std::string continuation = request.continuation;
  TokenizedRequest r;
  if (context.empty()) {
    const int32_t prefix = tok.bos_id() >= 0 ? tok.bos_id() : tok.eos_id();
    check(prefix >= 0, "eval", "an empty context needs a BOS or EOS token; the tokenizer has none");
    r.context = {prefix};
    r.continuation = tok.encode(continuation, false);
  } else {
    const size_t keep = context.find_last_not_of(' ');
    const size_t n_spaces = keep == std::string::npos ? context.size() : context.size() - keep - 1;
    if (n_spaces > 0) {
      continuation = context.substr(context.size() - n_spaces) + continuation;
      context.resize(context.size() - n_spaces);
    }
    const std::vector<int32_t> whole = encode_with(tok, context + continuation, bos);
    r.context = encode_with(tok, context, bos);
    if (whole.size() > r.context.size())
      r.continuation.assign(whole.begin() + r.context.size(), whole.end());
  }
  check(!r.continuation.empty(), "eval", "the continuation \"{}\" of context \"{}\" has no tokens",
        request.continuation, request.context.substr(0, 60));
  return r;
}

double log_softmax_at(const float* row, int vocab, int target, bool* is_argmax) {
  int top = 0;
  const double lse = log_sum_exp(row, vocab, &top);
  if (is_argmax) *is_argmax = top == target;
  return double(row[target]) - lse;
}

Scorer::Scorer(Model& model, Backend& backend, int batch_tokens)
    : model_(model),
      backend_(backend),
      max_len_(model.config.max_position_embeddings),
      batch_tokens_(batch_tokens) {
  model_.ensure_positions(max_len_);
}

std::vector<Score> Scorer::score(const std::vector<TokenizedRequest>& requests) {
  // Model inputs as lm-eval builds them: (context + continuation)[-(max_len + 1):][:-1]; the
  // continuation is predicted by the inputs from index `first[i]` on.
  const size_t n = requests.size();
  std::vector<std::vector<int32_t>> inputs(n);
  std::vector<int> first(n);
  for (size_t i = 0; i < n; ++i) {
    const TokenizedRequest& r = requests[i];
    std::vector<int32_t> whole = r.context;
    whole.insert(whole.end(), r.continuation.begin(), r.continuation.end());
    const int cont = int(r.continuation.size());
    check(cont <= max_len_, "eval", "a continuation of {} tokens exceeds the model context {}",
          cont, max_len_);
    const size_t cut = whole.size() > size_t(max_len_) + 1 ? whole.size() - max_len_ - 1 : 0;
    inputs[i].assign(whole.begin() + cut, whole.end() - 1);
    first[i] = int(inputs[i].size()) - cont;
  }
  // Shared prefix: common to every input, and before every first scored position.
  int shared = *std::min_element(first.begin(), first.end());
  for (size_t i = 1; i < n; ++i) {
    int k = 0;
    while (k < shared && inputs[i][k] == inputs[0][k]) ++k;
    shared = k;
  }
  // The remaining tokens of consecutive requests go through one batched pass (one branch
  // each) as long as they fit the budget; a request over it runs alone.
  const int vocab = model_.config.vocab_size;
  const int budget = std::max(1, std::min(batch_tokens_, int((size_t(1) << 26) / vocab)));
  std::vector<size_t> batch_end;  // requests [previous end, batch_end[b]) form batch b
  size_t needed = 0;              // KV-cache entries the largest pass needs
  for (size_t i = 0; i < n;) {
    size_t j = i;
    int total = 0;
    while (j < n) {
      const int rest = int(inputs[j].size()) - shared;
      if (j > i && total + rest > budget) break;
      total += rest;
      ++j;
    }
    batch_end.push_back(j);
    needed = std::max(needed, size_t(shared + total));
    i = j;
  }
  // The KV cache grows to the largest pass seen (a model's full context can be large).
  if (int(needed) > cache_.capacity)
    cache_ = KVCache(model_.config, std::max(int(needed), std::min(max_len_, 2 * cache_.capacity)),
                     backend_.memory());
  if (shared > 0) {
    forward(model_, backend_, inputs[0].data(), shared, 0, cache_, scratch_, nullptr, 0);
    tokens_run_ += shared;
  }
  std::vector<Score> scores(n);
  size_t begin = 0;
  for (size_t end : batch_end) {
    tokens_.clear();
    branches_.clear();
    for (size_t i = begin; i < end; ++i) {
      tokens_.insert(tokens_.end(), inputs[i].begin() + shared, inputs[i].end());
      branches_.push_back(int(inputs[i].size()) - shared);
    }
    const int total = int(tokens_.size());
    logits_.resize(size_t(total) * vocab);
    // A single branch is an ordinary forward pass from `shared`.
    forward_branches(model_, backend_, tokens_.data(), branches_, shared, cache_, scratch_,
                     logits_.data());
    tokens_run_ += total;
    int offset = 0;  // of request i's rows in logits_
    for (size_t i = begin; i < end; ++i) {
      const std::vector<int32_t>& cont = requests[i].continuation;
      Score& s = scores[i];
      s.tokens = int(cont.size());
      s.greedy = true;
      for (int j = 0; j < s.tokens; ++j) {
        const float* row = logits_.data() + size_t(offset + first[i] - shared + j) * vocab;
        bool top = false;
        s.loglik += log_softmax_at(row, vocab, cont[j], &top);
        s.greedy = s.greedy && top;
      }
      offset += int(inputs[i].size()) - shared;
    }
    begin = end;
  }
  return scores;
}

}  // namespace quad::eval
