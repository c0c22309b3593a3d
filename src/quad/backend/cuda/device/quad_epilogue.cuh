// Shared by the QUAD GEMM kernels: argument checks, the exact integer correction for the offset
// codes (quad_linear.h) and the bf16 / fp32 output stores.
#pragma once

#include <cuda_bf16.h>

#include <cstddef>
#include <type_traits>

#include "quad_linear.h"

namespace quad::cuda {

// f(std::integral_constant<int, 4 or 8>) by the activation width (checked by check_args).
template <typename F>
cudaError_t by_act_bits(int bits, F&& f) {
  return bits == 4 ? f(std::integral_constant<int, 4>{}) : f(std::integral_constant<int, 8>{});
}

inline cudaError_t check_args(const QuadActivations& act, int M, const QuadWeights& w) {
  if (M < 0 || w.N <= 0 || w.K <= 0 || (w.act_bits != 4 && w.act_bits != 8) || w.r < 0 ||
      w.r % 16 != 0 || w.r > 128 || (w.r > 0 && (!act.outlier || !act.outlier_lo || !w.outlier)))
    return cudaErrorInvalidValue;
  return cudaSuccess;
}

__device__ __forceinline__ int corrected(int acc, int a_bits, int a_sum, int w_sum, int K) {
  return a_bits == 4 ? acc - 8 * a_sum - 8 * w_sum - 64 * K : acc - 8 * a_sum;
}

// Output element(s) (row, col[, col + 1]) of y (M, N) in bf16 or fp32.
__device__ __forceinline__ void store_pair(__nv_bfloat16* p, float v0, float v1) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(v0, v1);
}
__device__ __forceinline__ void store_pair(float* p, float v0, float v1) {
  *reinterpret_cast<float2*>(p) = make_float2(v0, v1);
}
__device__ __forceinline__ void store_one(__nv_bfloat16* p, float v) {
  *p = __float2bfloat16_rn(v);
}
__device__ __forceinline__ void store_one(float* p, float v) {
  *p = v;
}
template <typename OutT>
__device__ __forceinline__ void store_out(OutT* y, int N, int row, int col, float v0, float v1,
                                          bool pair) {
  OutT* p = y + size_t(row) * N + col;
  if (pair)
    store_pair(p, v0, v1);
  else
    store_one(p, v0);
}

}  // namespace quad::cuda
