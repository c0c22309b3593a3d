#include "quad/backend/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace quad {

int32_t argmax(const float* values, int n) {
  return int32_t(std::max_element(values, values + n) - values);  // first maximum, as torch
}

int32_t sample_from_logits(const float* logits, int vocab, float temperature, float top_p,
                           double canonical) {
  if (temperature == 0) return argmax(logits, vocab);
  const float mx = *std::max_element(logits, logits + vocab);
  std::vector<double> prob(vocab);
  double sum = 0;
  for (int i = 0; i < vocab; ++i) sum += prob[i] = std::exp((logits[i] - mx) / temperature);
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return prob[a] != prob[b] ? prob[a] > prob[b] : a < b; });
  // Keep the smallest prefix of the sorted tokens whose mass reaches top_p.
  double kept = 0;
  int n_keep = 0;
  while (n_keep < vocab) {
    kept += prob[order[n_keep++]] / sum;
    if (kept >= top_p) break;
  }
  double mass = 0;
  for (int i = 0; i < n_keep; ++i) mass += prob[order[i]];
  double u = canonical * mass;
  for (int i = 0; i < n_keep; ++i) {
    u -= prob[order[i]];
    if (u <= 0) return order[i];
  }
  return order[n_keep - 1];
}

}  // namespace quad
