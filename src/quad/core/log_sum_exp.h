// log Σ exp over a row of logits in fp64, stable (the maximum subtracted first): the shared
// piece of perplexity, log-likelihood scoring and the fine-tuning loss.
#pragma once

#include <algorithm>
#include <cmath>

namespace quad {

// log Σ_v exp(row[v]), and (when asked) the index of the first maximum.
inline double log_sum_exp(const float* row, int vocab, int* argmax = nullptr) {
  const float* mx_it = std::max_element(row, row + vocab);
  const double mx = *mx_it;
  double sum = 0;
  for (int v = 0; v < vocab; ++v) sum += std::exp(double(row[v]) - mx);
  if (argmax) *argmax = int(mx_it - row);
  return mx + std::log(sum);
}

}  // namespace quad
