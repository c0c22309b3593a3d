// RMSNorm, one block per row: the sum of squares in double (as the reference does), then
// y = weight ⊙ (x · inv) in fp32.
#include "kernels.h"
#include "reduce.cuh"

namespace quad::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void rmsnorm_kernel(const float* x, int width, const float* weight, int divisor,
                               float eps, float* y) {
  __shared__ double scratch[32];
  const float* xi = x + size_t(blockIdx.x) * width;
  float* yi = y + size_t(blockIdx.x) * width;
  double ss = 0;
  for (int c = threadIdx.x; c < width; c += blockDim.x) ss += double(xi[c]) * double(xi[c]);
  ss = block_reduce(ss, SumOp{}, 0.0, scratch);
  const float inv = float(1.0 / sqrt(ss / divisor + double(eps)));
  for (int c = threadIdx.x; c < width; c += blockDim.x) {
    const float v = __fmul_rn(xi[c], inv);
    yi[c] = weight ? __fmul_rn(weight[c], v) : v;
  }
}

}  // namespace

cudaError_t launch_rmsnorm(const float* x, int n, int width, const float* weight, int divisor,
                           float eps, float* y, cudaStream_t stream) {
  if (n <= 0 || width <= 0) return cudaSuccess;
  rmsnorm_kernel<<<n, kThreads, 0, stream>>>(x, width, weight, divisor, eps, y);
  return cudaGetLastError();
}

}  // namespace quad::cuda
