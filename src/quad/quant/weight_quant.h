// Weight quantization: per-output-channel symmetric RTN with the GPTQ/QuaRot clipping search,
// GPTQ, and int4 packing (QUAD-SPEC §4.1–4.3).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace quad {

class Backend;

// Grid bounds for `bits` (2..8): [-2^(b-1), 2^(b-1)-1].
inline int quant_min(int bits) {
  return -(1 << (bits - 1));
}
inline int quant_max(int bits) {
  return (1 << (bits - 1)) - 1;
}

// One code: clamp(round(w/s), qmin, qmax), rounding half to even like torch.round. Shared by RTN,
// the clipping search and GPTQ so that all three round identically.
inline int quantize_code(double w, double scale, int qmin, int qmax) {
  return static_cast<int>(std::clamp(std::nearbyint(w / scale), double(qmin), double(qmax)));
}

struct WeightQuantOptions {
  int bits = 4;             // grid [-2^(b-1), 2^(b-1)-1]
  bool clip_search = true;  // shrink factors p = 1 - i/100, i = 0..79, error Σ|ŵ - w|^2.4
};

// Per-row scales for W (rows × cols, row-major): s = p·max|w|/qmax (max floored at 1e-5),
// with the best p per row when clip_search is on.
// With a backend that has its own (Backend::weight_scales, cuda), the search runs there.
std::vector<float> weight_scales(const float* w, int rows, int cols, const WeightQuantOptions& o,
                                 Backend* backend = nullptr);

// Round-to-nearest codes q = clamp(round(w/s), qmin, qmax) (rows × cols).
std::vector<int8_t> quantize_rtn(const float* w, int rows, int cols,
                                 const std::vector<float>& scales, int bits);

struct GptqOptions {
  int bits = 4;
  int block_size = 128;
  double percdamp = 0.01;
};

// GPTQ (no act-order, per-channel scales fixed beforehand): quantizes W (rows × cols) column by
// column with error feedback through the upper Cholesky factor of H⁻¹, all Hessian work in fp64.
// H (cols × cols) = (2/n) Σ xxᵀ over calibration rows. Dead columns (H_ii = 0) get H_ii = 1 and
// their weights zeroed; damping λ = percdamp · mean(diag H). Returns the codes (rows × cols).
// Throws quad::Error if H is not positive definite even after damping. With a backend that has
// its own GPTQ (Backend::gptq, cuda), the work runs there.
std::vector<int8_t> gptq_quantize(const float* w, int rows, int cols, std::vector<double> hessian,
                                  const std::vector<float>& scales, const GptqOptions& o,
                                  Backend* backend = nullptr);
// The same from a Hessian in the backend's memory (a finished GramAccumulator) with its
// diagonal diag (host): read where it lies when the backend has GPTQ, else copied to the host.
std::vector<int8_t> gptq_quantize(const float* w, int rows, int cols, const double* hessian,
                                  const std::vector<double>& diag, const std::vector<float>& scales,
                                  const GptqOptions& o, Backend& backend);

// int4 packing: two's-complement nibbles, two per byte along a row, even column in the low
// nibble (CUTLASS int4b_t order). cols must be even. packed is rows × cols/2.
std::vector<uint8_t> pack_int4(const int8_t* codes, int rows, int cols);
std::vector<int8_t> unpack_int4(const uint8_t* packed, int rows, int cols);

}  // namespace quad
