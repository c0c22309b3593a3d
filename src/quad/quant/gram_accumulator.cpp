#include "quad/quant/gram_accumulator.h"

#include "quad/core/error.h"

namespace quad {

GramAccumulator::GramAccumulator(Backend& backend, int k) : backend_(&backend), k_(k) {
  check(k > 0, "calib", "an accumulator needs at least one column, got {}", k);
  const size_t count = size_t(k) * k;
  backend.zero(acc_.ensure(backend.memory(), count, "calibration statistics"),
               sizeof(double) * count);
}

void GramAccumulator::add(const float* x, int n, int ld, int col) {
  check(!finished_, "calib", "a finished Gram matrix cannot take more rows");
  backend_->gram_accumulate(x, n, ld, col, k_, acc_.data());
  rows_ += n;
}

const std::vector<double>& GramAccumulator::finish(double scale) {
  check(!finished_, "calib", "the Gram matrix is already finished");
  diag_.resize(k_);
  backend_->finish_gram(acc_.data(), k_, scale, diag_.data());
  finished_ = true;
  return diag_;
}

std::vector<double> GramAccumulator::to_host() const {
  check(finished_, "calib", "finish the Gram matrix before reading it");
  std::vector<double> h(size_t(k_) * k_);
  backend_->copy(h.data(), acc_.data(), sizeof(double) * h.size());
  return h;
}

}  // namespace quad
