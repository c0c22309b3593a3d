// Checks forward_branches against what it replaces: each branch run alone from the same
// cached prefix (the eval scorer's batched and unbatched passes).
#pragma once

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "quad/backend/memory.h"
#include "quad/model/model.h"

namespace quad::test {

struct BranchLogits {
  std::vector<float> batched, separate;  // (Σ lens, vocab) each
  // The largest |difference| relative to the largest |logit|.
  double max_rel() const {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < batched.size(); ++i) {
      diff = std::max(diff, double(std::fabs(batched[i] - separate[i])));
      scale = std::max(scale, double(std::fabs(separate[i])));
    }
    return diff / scale;
  }
  // Σ (batched − separate)² / Σ separate².
  double nmse() const {
    double num = 0, den = 0;
    for (size_t i = 0; i < batched.size(); ++i) {
      const double d = double(batched[i]) - separate[i];
      num += d * d;
      den += double(separate[i]) * separate[i];
    }
    return num / den;
  }
};

// Runs `prefix` tokens, then the branches (lengths `lens`) once through forward_branches and
// once one forward call per branch, both with the KV cache in `memory`.
inline BranchLogits branches_vs_separate(const Model& m, Backend& backend, MemoryKind memory,
                                         int prefix, const std::vector<int>& lens) {
  const int V = m.config.vocab_size;
  int n = 0;
  for (int len : lens) n += len;
  std::vector<int32_t> ids(prefix + n);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 131 + 7) % V);
  const int32_t* branch_ids = ids.data() + prefix;
  std::vector<float> batched(size_t(n) * V), separate(size_t(n) * V);
  ForwardScratch s;
  KVCache cache(m.config, prefix + n, memory);
  if (prefix > 0) forward(m, backend, ids.data(), prefix, 0, cache, s, nullptr, 0);
  forward_branches(m, backend, branch_ids, lens, prefix, cache, s, batched.data());
  KVCache alone(m.config, prefix + n, memory);
  if (prefix > 0) forward(m, backend, ids.data(), prefix, 0, alone, s, nullptr, 0);
  int first = 0;
  for (int len : lens) {
    forward(m, backend, branch_ids + first, len, prefix, alone, s,
            separate.data() + size_t(first) * V, len);
    first += len;
  }
  return {std::move(batched), std::move(separate)};
}

}  // namespace quad::test
