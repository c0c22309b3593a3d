// Per-token symmetric quantization, one block per row, bit for bit the reference quantizer
// (backend/ref/ref_ops.cpp): scale = max|x| / qmax · clip (0 for an all-zero row), code =
// clamp(round_half_even(x / scale), −qmax−1, qmax). The maximum is exact in any order, and the
// division, multiplication and rounding are IEEE fp32 (nvcc without --use_fast_math).
#include <math.h>

#include "kernels.h"
#include "quant_code.cuh"
#include "reduce.cuh"

namespace quad::cuda {

namespace {

constexpr int kThreads = 256;

__device__ float row_scale(const float* row, int len, float qmax, float clip, float* scratch) {
  float amax = 0.0f;
  for (int c = threadIdx.x; c < len; c += blockDim.x) amax = MaxOp{}(amax, fabsf(row[c]));
  amax = block_reduce(amax, MaxOp{}, 0.0f, scratch);
  return quant_scale(amax, qmax, clip);
}

__global__ void act_quant_kernel(float* x, int width, float qmax, int skip_first, float clip) {
  __shared__ float scratch[32];
  float* row = x + size_t(blockIdx.x) * width + skip_first;
  const int len = width - skip_first;
  const float scale = row_scale(row, len, qmax, clip, scratch);
  if (scale == 0.0f) return;  // an all-zero row quantizes to itself
  const CodeOf code = code_of(scale, qmax);
  for (int c = threadIdx.x; c < len; c += blockDim.x) row[c] = __fmul_rn(code(row[c]), scale);
}

__global__ void quantize_rows_kernel(const float* x, int width, int ld, float qmax, float clip,
                                     int8_t* codes, float* scales) {
  __shared__ float scratch[32];
  const float* row = x + size_t(blockIdx.x) * ld;
  int8_t* out = codes + size_t(blockIdx.x) * width;
  const float scale = row_scale(row, width, qmax, clip, scratch);
  if (threadIdx.x == 0) scales[blockIdx.x] = scale;
  if (scale == 0.0f) {
    for (int c = threadIdx.x; c < width; c += blockDim.x) out[c] = 0;
    return;
  }
  const CodeOf code = code_of(scale, qmax);
  for (int c = threadIdx.x; c < width; c += blockDim.x) out[c] = int8_t(code(row[c]));
}

float qmax_of(int bits) {
  return float((1 << (bits - 1)) - 1);
}

}  // namespace

cudaError_t launch_act_quant(float* x, int n, int width, int bits, int skip_first, float clip,
                             cudaStream_t stream) {
  if (n <= 0 || width <= skip_first) return cudaSuccess;
  act_quant_kernel<<<n, kThreads, 0, stream>>>(x, width, qmax_of(bits), skip_first, clip);
  return cudaGetLastError();
}

cudaError_t launch_quantize_rows(const float* x, int n, int width, int ld, int bits, float clip,
                                 int8_t* codes, float* scales, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  quantize_rows_kernel<<<n, kThreads, 0, stream>>>(x, width, ld, qmax_of(bits), clip, codes,
                                                   scales);
  return cudaGetLastError();
}

}  // namespace quad::cuda
