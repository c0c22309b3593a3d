// fp32 → fp64 copy of a column block, the input of the fp64 Gram matrices (cuBLAS dsyrk).
#include "kernels.h"

namespace quad::cuda {

namespace {

__global__ void widen_columns_kernel(const float* x, int n, int ld, int col, int k, double* out) {
  const size_t total = size_t(n) * k;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x) {
    const size_t t = i / k, c = i % k;
    out[i] = double(x[t * ld + col + c]);
  }
}

}  // namespace

cudaError_t launch_widen_columns(const float* x, int n, int ld, int col, int k, double* out,
                                 cudaStream_t stream) {
  constexpr int kThreads = 256;
  const size_t total = size_t(n) * k;
  if (total == 0) return cudaSuccess;
  const size_t blocks = (total + kThreads - 1) / kThreads;
  widen_columns_kernel<<<int(blocks < 65535u * 16u ? blocks : 65535u * 16u), kThreads, 0, stream>>>(
      x, n, ld, col, k, out);
  return cudaGetLastError();
}

}  // namespace quad::cuda
