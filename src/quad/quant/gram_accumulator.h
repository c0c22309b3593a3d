// A running fp64 sum of xᵀx (k × k) kept where the backend computes (GPU memory on cuda), so
// calibration statistics need no host round trip per batch; read back once at the end.
#pragma once

#include <cstdint>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/backend/memory.h"

namespace quad {

class GramAccumulator {
 public:
  GramAccumulator(Backend& backend, int k);

  // Adds the n rows of columns [col, col + k) of x (row stride ld; host or backend memory).
  void add(const float* x, int n, int ld, int col);
  int k() const { return k_; }
  int64_t rows() const { return rows_; }
  // The whole symmetric matrix in host memory, every entry times `scale`.
  std::vector<double> symmetric(double scale = 1.0) const;

 private:
  Backend* backend_;
  int k_;
  int64_t rows_ = 0;
  BackendArray<double> acc_;  // upper triangle valid
};

}  // namespace quad
