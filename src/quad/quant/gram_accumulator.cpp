#include "quad/quant/gram_accumulator.h"

#include "quad/core/error.h"

namespace quad {

GramAccumulator::GramAccumulator(Backend& backend, int k) : backend_(&backend), k_(k) {
  check(k > 0, "calib", "an accumulator needs at least one column, got {}", k);
  const size_t count = size_t(k) * k;
  double* acc = acc_.ensure(backend.memory(), count, "calibration statistics");
  const std::vector<double> zeros(count, 0.0);
  backend.copy(acc, zeros.data(), sizeof(double) * count);
}

void GramAccumulator::add(const float* x, int n, int ld, int col) {
  backend_->gram_accumulate(x, n, ld, col, k_, acc_.data());
  rows_ += n;
}

std::vector<double> GramAccumulator::symmetric(double scale) const {
  const int k = k_;
  std::vector<double> h(size_t(k) * k);
  backend_->copy(h.data(), acc_.data(), sizeof(double) * h.size());
  // Row i writes column i below the diagonal: rows are independent.
#pragma omp parallel for schedule(dynamic, 64)
  for (int i = 0; i < k; ++i)
    for (int j = i; j < k; ++j) h[size_t(j) * k + i] = h[size_t(i) * k + j] *= scale;
  return h;
}

}  // namespace quad
