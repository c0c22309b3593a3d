// RMSNorm, one block per row: the sum of squares in double (as the reference does), then
// y = weight ⊙ (x · inv) in fp32. The fused variants first add a residual update into the row
// (x ← x + r, written back), saving the separate add's pass over x, and may write y rounded to
// 16 bits for the GEMMs that read it (saving the fp32 row and its rounding pass).
#include <cstdint>

#include "half_convert.cuh"
#include "kernels.h"
#include "pdl.cuh"
#include "reduce.cuh"

namespace quad::cuda {

namespace {

constexpr int kThreads = 256;
// float4 chunks a thread keeps in registers between the two passes (rows up to 8192 wide);
// wider rows read the rest again.
constexpr int kCached = 8;

// Where the normalized row goes: fp32, or 16-bit (bf16 or fp16) bit patterns.
struct FloatOut {
  float* y;
  __device__ void store(size_t i, float v) const { y[i] = v; }
  __device__ void store4(size_t i4, float4 v) const { reinterpret_cast<float4*>(y)[i4] = v; }
};
struct HalfOut {
  uint16_t* y;
  bool bf16;
  __device__ void store(size_t i, float v) const { y[i] = to_half(v, bf16); }
  __device__ void store4(size_t i4, float4 v) const {
    reinterpret_cast<uint2*>(y)[i4] =
        make_uint2(to_half2(v.x, v.y, bf16), to_half2(v.z, v.w, bf16));
  }
};

__device__ __forceinline__ float4 add4(float4 a, float4 b) {
  return make_float4(__fadd_rn(a.x, b.x), __fadd_rn(a.y, b.y), __fadd_rn(a.z, b.z),
                     __fadd_rn(a.w, b.w));
}

__device__ __forceinline__ double square_sum4(float4 a) {
  return double(a.x) * double(a.x) + double(a.y) * double(a.y) + double(a.z) * double(a.z) +
         double(a.w) * double(a.w);
}

__device__ __forceinline__ float4 normalize4(float4 a, float inv, const float4* w, int c) {
  float4 v = make_float4(__fmul_rn(a.x, inv), __fmul_rn(a.y, inv), __fmul_rn(a.z, inv),
                         __fmul_rn(a.w, inv));
  if (w) {
    const float4 s = w[c];
    v = make_float4(__fmul_rn(s.x, v.x), __fmul_rn(s.y, v.y), __fmul_rn(s.z, v.z),
                    __fmul_rn(s.w, v.w));
  }
  return v;
}

// Rows whose width is a multiple of 4 with 16-byte aligned buffers: float4 accesses, the row
// held in registers between the sum and the scaling. r (the residual update) may be null.
template <typename Out>
__global__ void rmsnorm_vec4_kernel(float* x, const float* r, int width4, const float* weight,
                                    int divisor, float eps, Out out) {
  __shared__ double scratch[32];
  pdl_wait();
  pdl_allow_next();
  float4* xi = reinterpret_cast<float4*>(x) + size_t(blockIdx.x) * width4;
  const float4* ri = r ? reinterpret_cast<const float4*>(r) + size_t(blockIdx.x) * width4 : nullptr;
  const size_t y0 = size_t(blockIdx.x) * width4;
  const auto* w = reinterpret_cast<const float4*>(weight);
  float4 held[kCached];
  double ss = 0;
#pragma unroll
  for (int j = 0; j < kCached; ++j) {
    const int c = threadIdx.x + j * kThreads;
    if (c < width4) {
      held[j] = ri ? add4(xi[c], ri[c]) : xi[c];
      ss += square_sum4(held[j]);
    }
  }
  if (ri)
#pragma unroll
    for (int j = 0; j < kCached; ++j) {
      const int c = threadIdx.x + j * kThreads;
      if (c < width4) xi[c] = held[j];
    }
  for (int c = threadIdx.x + kCached * kThreads; c < width4; c += kThreads) {
    const float4 a = ri ? add4(xi[c], ri[c]) : xi[c];
    if (ri) xi[c] = a;  // read back below by this same thread
    ss += square_sum4(a);
  }
  ss = block_reduce(ss, SumOp{}, 0.0, scratch);
  const float inv = float(1.0 / sqrt(ss / divisor + double(eps)));
#pragma unroll
  for (int j = 0; j < kCached; ++j) {
    const int c = threadIdx.x + j * kThreads;
    if (c < width4) out.store4(y0 + c, normalize4(held[j], inv, w, c));
  }
  for (int c = threadIdx.x + kCached * kThreads; c < width4; c += kThreads)
    out.store4(y0 + c, normalize4(xi[c], inv, w, c));
}

// Any width and alignment.
template <typename Out>
__global__ void rmsnorm_kernel(float* x, const float* r, int width, const float* weight,
                               int divisor, float eps, Out out) {
  __shared__ double scratch[32];
  pdl_wait();
  pdl_allow_next();
  float* xi = x + size_t(blockIdx.x) * width;
  const float* ri = r ? r + size_t(blockIdx.x) * width : nullptr;
  const size_t y0 = size_t(blockIdx.x) * width;
  double ss = 0;
  for (int c = threadIdx.x; c < width; c += blockDim.x) {
    const float a = ri ? __fadd_rn(xi[c], ri[c]) : xi[c];
    if (ri) xi[c] = a;  // read back below by this same thread
    ss += double(a) * double(a);
  }
  ss = block_reduce(ss, SumOp{}, 0.0, scratch);
  const float inv = float(1.0 / sqrt(ss / divisor + double(eps)));
  for (int c = threadIdx.x; c < width; c += blockDim.x) {
    const float v = __fmul_rn(xi[c], inv);
    out.store(y0 + c, weight ? __fmul_rn(weight[c], v) : v);
  }
}

bool aligned(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

template <typename Out>
cudaError_t launch(float* x, const float* r, int n, int width, const float* weight, int divisor,
                   float eps, Out out, const void* y, size_t y_vec_bytes, cudaStream_t stream) {
  if (n <= 0 || width <= 0) return cudaSuccess;
  if (width % 4 == 0 && aligned(x, 16) && aligned(r, 16) && aligned(weight, 16) &&
      aligned(y, y_vec_bytes))
    return launch_pdl(rmsnorm_vec4_kernel<Out>, dim3(n), dim3(kThreads), 0, stream, x, r, width / 4,
                      weight, divisor, eps, out);
  return launch_pdl(rmsnorm_kernel<Out>, dim3(n), dim3(kThreads), 0, stream, x, r, width, weight,
                    divisor, eps, out);
}

}  // namespace

cudaError_t launch_rmsnorm(const float* x, int n, int width, const float* weight, int divisor,
                           float eps, float* y, cudaStream_t stream) {
  // x is only read when no residual update is given.
  return launch(const_cast<float*>(x), nullptr, n, width, weight, divisor, eps, FloatOut{y}, y, 16,
                stream);
}

cudaError_t launch_add_rmsnorm(float* x, const float* r, int n, int width, const float* weight,
                               int divisor, float eps, float* y, cudaStream_t stream) {
  return launch(x, r, n, width, weight, divisor, eps, FloatOut{y}, y, 16, stream);
}

cudaError_t launch_add_rmsnorm_to_half(float* x, const float* r, int n, int width,
                                       const float* weight, int divisor, float eps, uint16_t* y16,
                                       bool bf16, cudaStream_t stream) {
  return launch(x, r, n, width, weight, divisor, eps, HalfOut{y16, bf16}, y16, 8, stream);
}

}  // namespace quad::cuda
