// Element-wise kernels: bias add, residual add, SwiGLU's silu(gate) ⊙ up (fp32 or 16-bit in), fp32
// → fp16/bf16, the embedding's row gather.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "grid_stride.cuh"
#include "half_convert.cuh"
#include "kernels.h"
#include "silu.cuh"

namespace quad::cuda {

namespace {

__global__ void add_bias_kernel(float* y, const float* bias, int n, int out) {
  const size_t total = size_t(n) * out;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x)
    y[i] = __fadd_rn(y[i], bias[i % out]);
}

__global__ void add_kernel(float* x, const float* y, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    x[i] = __fadd_rn(x[i], y[i]);
}

// Round to nearest even.

__global__ void silu_mul_kernel(const float* gate, const float* up, size_t n, float* out) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    out[i] = silu_mul(gate[i], up[i]);
}

__global__ void silu_mul_to_half_kernel(const float* gate, const float* up, size_t n, uint16_t* out,
                                        bool bf16) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    out[i] = to_half(silu_mul(gate[i], up[i]), bf16);
}

__device__ __forceinline__ float from_half(uint16_t h, bool bf16) {
  return bf16 ? __bfloat162float(__ushort_as_bfloat16(h)) : __half2float(__ushort_as_half(h));
}

// Rows of gu (n, 2·ff) hold gate then up (one GEMM of the joined weights): out (n, ff). Four
// values per thread (8-byte accesses) when ff is a multiple of 4.
__global__ void silu_mul_of_joined_half_kernel(const uint16_t* gu, int ff, size_t total,
                                               uint16_t* out, bool bf16) {
  const bool vec = ff % 4 == 0;
  const size_t step = vec ? 4 : 1;
  for (size_t e = (blockIdx.x * size_t(blockDim.x) + threadIdx.x) * step; e < total;
       e += size_t(gridDim.x) * blockDim.x * step) {
    const size_t i = e / ff, j = e % ff;
    const uint16_t* g = gu + i * 2 * ff + j;
    if (vec) {
      const uint2 gw = *reinterpret_cast<const uint2*>(g),
                  uw = *reinterpret_cast<const uint2*>(g + ff);
      float r[4];
      const uint32_t gs[2] = {gw.x, gw.y}, us[2] = {uw.x, uw.y};
#pragma unroll
      for (int k = 0; k < 4; ++k)
        r[k] = silu_mul(from_half(uint16_t(gs[k / 2] >> (16 * (k % 2))), bf16),
                        from_half(uint16_t(us[k / 2] >> (16 * (k % 2))), bf16));
      *reinterpret_cast<uint2*>(out + e) =
          make_uint2(to_half2(r[0], r[1], bf16), to_half2(r[2], r[3], bf16));
    } else {
      out[e] = to_half(silu_mul(from_half(g[0], bf16), from_half(g[ff], bf16)), bf16);
    }
  }
}

__global__ void to_half_kernel(const float* x, size_t n, uint16_t* out, bool bf16) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    out[i] = to_half(x[i], bf16);
}

__global__ void split_half_kernel(const float* x, size_t n, uint16_t* hi, uint16_t* lo) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    __half h, l;
    split_half(x[i], &h, &l);
    hi[i] = __half_as_ushort(h);
    lo[i] = __half_as_ushort(l);
  }
}

// One block per token: row tokens[i] of the table into row i of x.
__global__ void embed_kernel(const float* table, int width, const int32_t* tokens, float* x) {
  const float* src = table + size_t(tokens[blockIdx.x]) * width;
  float* dst = x + size_t(blockIdx.x) * width;
  for (int c = threadIdx.x; c < width; c += blockDim.x) dst[c] = src[c];
}

}  // namespace

cudaError_t launch_embed(const float* table, int width, const int32_t* tokens, int n, float* x,
                         cudaStream_t stream) {
  if (n <= 0 || width <= 0) return cudaSuccess;
  embed_kernel<<<n, 256, 0, stream>>>(table, width, tokens, x);
  return cudaGetLastError();
}

cudaError_t launch_to_half(const float* x, size_t n, uint16_t* out, bool bf16,
                           cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  to_half_kernel<<<grid_stride_blocks(n), kGridStrideThreads, 0, stream>>>(x, n, out, bf16);
  return cudaGetLastError();
}

cudaError_t launch_split_half(const float* x, size_t n, uint16_t* hi, uint16_t* lo,
                              cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  split_half_kernel<<<grid_stride_blocks(n), kGridStrideThreads, 0, stream>>>(x, n, hi, lo);
  return cudaGetLastError();
}

cudaError_t launch_add_bias(float* y, const float* bias, int n, int out, cudaStream_t stream) {
  if (n <= 0 || out <= 0) return cudaSuccess;
  add_bias_kernel<<<grid_stride_blocks(size_t(n) * out), kGridStrideThreads, 0, stream>>>(y, bias,
                                                                                          n, out);
  return cudaGetLastError();
}

cudaError_t launch_add(float* x, const float* y, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  add_kernel<<<grid_stride_blocks(n), kGridStrideThreads, 0, stream>>>(x, y, n);
  return cudaGetLastError();
}

cudaError_t launch_silu_mul(const float* gate, const float* up, size_t n, float* out,
                            cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  silu_mul_kernel<<<grid_stride_blocks(n), kGridStrideThreads, 0, stream>>>(gate, up, n, out);
  return cudaGetLastError();
}

cudaError_t launch_silu_mul_to_half(const float* gate, const float* up, size_t n, uint16_t* out,
                                    bool bf16, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  silu_mul_to_half_kernel<<<grid_stride_blocks(n), kGridStrideThreads, 0, stream>>>(gate, up, n,
                                                                                    out, bf16);
  return cudaGetLastError();
}

cudaError_t launch_silu_mul_of_joined_half(const uint16_t* gu, int n, int ff, uint16_t* out,
                                           bool bf16, cudaStream_t stream) {
  if (n <= 0 || ff <= 0) return cudaSuccess;
  const size_t total = size_t(n) * ff;
  if (ff % 4 == 0 && (reinterpret_cast<uintptr_t>(gu) % 8 || reinterpret_cast<uintptr_t>(out) % 8))
    return cudaErrorMisalignedAddress;
  const size_t threads = ff % 4 == 0 ? total / 4 : total;
  silu_mul_of_joined_half_kernel<<<grid_stride_blocks(threads), kGridStrideThreads, 0, stream>>>(
      gu, ff, total, out, bf16);
  return cudaGetLastError();
}

}  // namespace quad::cuda
