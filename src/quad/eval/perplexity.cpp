#include "quad/eval/perplexity.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "quad/core/error.h"
#include "quad/core/log_sum_exp.h"
#include "quad/core/progress.h"

namespace quad {

double next_token_nll_sum(const float* logits, const int32_t* ids, int n, int vocab) {
  double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
  for (int i = 0; i < n - 1; ++i) {
    const float* row = logits + size_t(i) * vocab;
    total += log_sum_exp(row, vocab) - row[ids[i + 1]];
  }
  return total;
}

double kl_divergence_sum(const float* base, const float* logits, int n, int vocab,
                         int64_t* top1_agree) {
  double total = 0;
  int64_t agree = 0;
#pragma omp parallel for reduction(+ : total, agree) schedule(static)
  for (int i = 0; i < n; ++i) {
    const float* b = base + size_t(i) * vocab;
    const float* m = logits + size_t(i) * vocab;
    int top_b = 0, top_m = 0;
    const double lse_b = log_sum_exp(b, vocab, &top_b), lse_m = log_sum_exp(m, vocab, &top_m);
    double kl = 0;
    for (int v = 0; v < vocab; ++v) {
      const double lb = double(b[v]) - lse_b, lm = double(m[v]) - lse_m;
      kl += std::exp(lb) * (lb - lm);
    }
    total += kl;
    agree += top_b == top_m;
  }
  if (top1_agree) *top1_agree = agree;
  return total;
}

PerplexityResult perplexity(Model& model, Backend& backend, const std::vector<int32_t>& ids,
                            int ctx, int64_t max_chunks, bool show_progress, Model* base) {
  check(ctx >= 2, "ppl", "--ctx must be at least 2 (got {})", ctx);
  PerplexityResult r;
  r.ctx = ctx;
  r.tokens = int64_t(ids.size());
  r.chunks = r.tokens / ctx;
  check(r.chunks > 0, "ppl", "the text has {} tokens, fewer than one chunk of --ctx {}", r.tokens,
        ctx);
  if (max_chunks > 0) r.chunks = std::min(r.chunks, max_chunks);
  model.ensure_positions(ctx);
  const int vocab = model.config.vocab_size;
  if (base) {
    check(base->config.vocab_size == vocab, "ppl",
          "the base model's vocabulary ({}) differs from the model's ({})", base->config.vocab_size,
          vocab);
    base->ensure_positions(ctx);
  }

  KVCache cache(model.config, ctx, backend.memory());
  ForwardScratch scratch;
  std::vector<float> logits(size_t(ctx) * vocab);  // (ctx, vocab)
  Progress progress("ppl", r.chunks, "chunks", show_progress);
  double total_nll = 0, base_nll = 0, total_kl = 0;
  int64_t agree = 0;
  std::unique_ptr<KVCache> base_cache;
  std::vector<float> base_logits;
  if (base) {
    base_cache = std::make_unique<KVCache>(base->config, ctx, backend.memory());
    base_logits.resize(logits.size());
  }
  for (int64_t c = 0; c < r.chunks; ++c) {
    const int32_t* chunk = ids.data() + c * ctx;
    forward(model, backend, chunk, ctx, 0, cache, scratch, logits.data(), ctx);
    total_nll += next_token_nll_sum(logits.data(), chunk, ctx, vocab);
    r.scored += ctx - 1;
    std::string status = fmt::format("ppl {:.4f}", std::exp(total_nll / r.scored));
    if (base) {
      forward(*base, backend, chunk, ctx, 0, *base_cache, scratch, base_logits.data(), ctx);
      base_nll += next_token_nll_sum(base_logits.data(), chunk, ctx, vocab);
      int64_t chunk_agree = 0;  // the scored rows: 0..ctx-2
      total_kl +=
          kl_divergence_sum(base_logits.data(), logits.data(), ctx - 1, vocab, &chunk_agree);
      agree += chunk_agree;
      status += fmt::format(", KL {:.5f}", total_kl / r.scored);
    }
    progress.update(c + 1, status);
  }
  r.nll = total_nll / r.scored;
  r.ppl = std::exp(r.nll);
  if (base) {
    r.kl = total_kl / r.scored;
    r.top1_agreement = double(agree) / r.scored;
    r.base_ppl = std::exp(base_nll / r.scored);
  }
  r.seconds = progress.elapsed_seconds();
  progress.finish(fmt::format("{:.0f} tokens/s", r.chunks * ctx / std::max(r.seconds, 1e-9)));
  return r;
}

}  // namespace quad
