// Per-row weight scales with the clipping search, and round-to-nearest codes (QUAD-SPEC §4.1).
#include "quad/quant/weight_quant.h"

#include <algorithm>
#include <cmath>

#include "quad/backend/backend.h"
#include "quad/core/error.h"

namespace quad {
namespace {

constexpr double kMinAbsMax = 1e-5;  // floor on max|w| so an all-zero row gets a usable scale
constexpr int kClipSteps = 80;       // p = 1 - i/100, i = 0..79 (1.00 down to 0.21)
constexpr float kClipNorm = 2.4f;    // the search minimizes Σ|ŵ - w|^2.4

void check_bits(int bits, const char* what) {
  check(bits >= 2 && bits <= 8, "quant", "{}: bits must be in 2..8, got {}", what, bits);
}

void check_finite_weights(const float* w, int rows, int cols, const char* what) {
  check(rows >= 0 && cols >= 0, "quant", "{}: bad shape {}x{}", what, rows, cols);
  const int64_t n = int64_t(rows) * cols;
  for (int64_t k = 0; k < n; ++k) {
    if (!std::isfinite(w[k])) {
      fail("quant", "{}: weight ({}, {}) is not finite ({})", what, k / cols, k % cols, w[k]);
    }
  }
}

// Σ|Q(w; s) - w|^2.4 over one row: the clipping search's error. Each term is computed in float
// like the reference (torch, float32), which also makes powf twice as fast as pow here; the sum
// is kept in double.
double clip_error(const float* row, int cols, float scale, int qmin, int qmax) {
  double err = 0;
  for (int j = 0; j < cols; ++j) {
    const float q = float(quantize_code(row[j], scale, qmin, qmax));
    err += std::pow(std::abs(q * scale - row[j]), kClipNorm);
  }
  return err;
}

float row_scale(const float* row, int cols, int bits, bool clip_search) {
  const int qmin = quant_min(bits), qmax = quant_max(bits);
  float absmax = 0;
  for (int j = 0; j < cols; ++j) absmax = std::max(absmax, std::abs(row[j]));
  const double range = std::max(double(absmax), kMinAbsMax);
  // p = 1 gives exactly the unclipped scale, so the search can only lower the error.
  auto scale_at = [&](int i) { return float((1.0 - i / 100.0) * range / qmax); };
  float best_scale = scale_at(0);
  if (!clip_search) return best_scale;
  double best_err = clip_error(row, cols, best_scale, qmin, qmax);
  for (int i = 1; i < kClipSteps; ++i) {
    const float s = scale_at(i);
    const double err = clip_error(row, cols, s, qmin, qmax);
    if (err < best_err) {  // strict: the first minimum (largest p) wins ties
      best_err = err;
      best_scale = s;
    }
  }
  return best_scale;
}

}  // namespace

std::vector<float> weight_scales(const float* w, int rows, int cols, const WeightQuantOptions& o,
                                 Backend* backend) {
  check_bits(o.bits, "weight_scales");
  check_finite_weights(w, rows, cols, "weight_scales");
  std::vector<float> scales(rows);
  if (backend && rows > 0 && cols > 0 &&
      backend->weight_scales(w, rows, cols, o.bits, o.clip_search, scales.data()))
    return scales;
#pragma omp parallel for schedule(dynamic, 16)
  for (int r = 0; r < rows; ++r) {
    scales[r] = row_scale(w + int64_t(r) * cols, cols, o.bits, o.clip_search);
  }
  return scales;
}

std::vector<int8_t> quantize_rtn(const float* w, int rows, int cols,
                                 const std::vector<float>& scales, int bits) {
  check_bits(bits, "quantize_rtn");
  check_finite_weights(w, rows, cols, "quantize_rtn");
  check(scales.size() == size_t(rows), "quant", "quantize_rtn: {} scales for {} rows",
        scales.size(), rows);
  for (int r = 0; r < rows; ++r) {
    check(std::isfinite(scales[r]) && scales[r] > 0, "quant",
          "quantize_rtn: scale of row {} is {} (must be positive and finite)", r, scales[r]);
  }
  const int qmin = quant_min(bits), qmax = quant_max(bits);
  std::vector<int8_t> codes(size_t(rows) * cols);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    const int64_t base = int64_t(r) * cols;
    for (int j = 0; j < cols; ++j) {
      codes[base + j] = int8_t(quantize_code(w[base + j], scales[r], qmin, qmax));
    }
  }
  return codes;
}

}  // namespace quad
