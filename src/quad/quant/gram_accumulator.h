// A running fp64 sum of xᵀx (k × k) kept where the backend computes (GPU memory on cuda), so
// calibration statistics need no host round trip per batch. finish() scales and mirrors it in
// place; then it is read where it lies (GPTQ on the backend) or copied to the host once.
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
  // Multiplies every entry by `scale` and makes the matrix whole and symmetric, in place (once;
  // add() may not follow); returns the diagonal.
  const std::vector<double>& finish(double scale = 1.0);
  bool finished() const { return finished_; }
  const std::vector<double>& diagonal() const { return diag_; }
  // The finished matrix (k, k) in the backend's memory.
  const double* data() const { return acc_.data(); }
  // A host copy of the finished matrix.
  std::vector<double> to_host() const;

 private:
  Backend* backend_;
  int k_;
  int64_t rows_ = 0;
  bool finished_ = false;
  BackendArray<double> acc_;  // upper triangle valid until finish()
  std::vector<double> diag_;
};

}  // namespace quad
