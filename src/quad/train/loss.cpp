#include "quad/train/loss.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "quad/core/error.h"
#include "quad/core/log_sum_exp.h"

namespace quad::train {

namespace {

void check_label(int32_t label, int vocab) {
  check(label < vocab, "finetune", "label {} outside the vocabulary of {}", label, vocab);
}

}  // namespace

double cross_entropy_backward(float* logits, const int32_t* labels, int n, int vocab, float scale) {
  for (int i = 0; i < n; ++i) check_label(labels[i], vocab);  // no throwing inside the region
  double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total) if (n > 1)
  for (int i = 0; i < n; ++i) {
    float* row = logits + size_t(i) * vocab;
    if (labels[i] < 0) {
      std::fill(row, row + vocab, 0.0f);
      continue;
    }
    const double lse = log_sum_exp(row, vocab);
    total += lse - row[labels[i]];
    for (int c = 0; c < vocab; ++c) row[c] = float(std::exp(double(row[c]) - lse)) * scale;
    row[labels[i]] -= scale;
  }
  return total;
}

double cross_entropy(const float* logits, const int32_t* labels, int n, int vocab) {
  double total = 0;
  for (int i = 0; i < n; ++i) {
    if (labels[i] < 0) continue;
    check_label(labels[i], vocab);
    const float* row = logits + size_t(i) * vocab;
    total += log_sum_exp(row, vocab) - row[labels[i]];
  }
  return total;
}

}  // namespace quad::train
