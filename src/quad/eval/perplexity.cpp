#include "quad/eval/perplexity.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "quad/core/error.h"
#include "quad/core/progress.h"

namespace quad {

double next_token_nll_sum(const float* logits, const int32_t* ids, int n, int vocab) {
  double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
  for (int i = 0; i < n - 1; ++i) {
    const float* row = logits + size_t(i) * vocab;
    const float mx = *std::max_element(row, row + vocab);
    double sum = 0;
    for (int v = 0; v < vocab; ++v) sum += std::exp(double(row[v]) - mx);
    total += (std::log(sum) + mx) - row[ids[i + 1]];
  }
  return total;
}

PerplexityResult perplexity(Model& model, Backend& backend, const std::vector<int32_t>& ids,
                            int ctx, int64_t max_chunks, bool show_progress) {
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
  KVCache cache(model.config, ctx, backend.memory());
  ForwardScratch scratch;
  std::vector<float> logits(size_t(ctx) * vocab);  // (ctx, vocab)
  Progress progress("ppl", r.chunks, "chunks", show_progress);
  double total_nll = 0;
  for (int64_t c = 0; c < r.chunks; ++c) {
    const int32_t* chunk = ids.data() + c * ctx;
    forward(model, backend, chunk, ctx, 0, cache, scratch, logits.data(), ctx);
    total_nll += next_token_nll_sum(logits.data(), chunk, ctx, vocab);
    r.scored += ctx - 1;
    progress.update(c + 1, fmt::format("ppl {:.4f}", std::exp(total_nll / r.scored)));
  }
  r.nll = total_nll / r.scored;
  r.ppl = std::exp(r.nll);
  r.seconds = progress.elapsed_seconds();
  progress.finish(fmt::format("{:.0f} tokens/s", r.chunks * ctx / std::max(r.seconds, 1e-9)));
  return r;
}

}  // namespace quad
