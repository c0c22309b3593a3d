// fp32 → fp64 copy of a column block, the input of the fp64 Gram matrices (cuBLAS dsyrk) and
// of the offline weight transforms, and the fp64 → fp32 rounding of their results.
#include "grid_stride.cuh"
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

__global__ void narrow_kernel(const double* x, size_t n, float* out) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    out[i] = __double2float_rn(x[i]);
}

}  // namespace

cudaError_t launch_narrow(const double* x, size_t n, float* out, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  narrow_kernel<<<grid_stride_blocks(n), kGridStrideThreads, 0, stream>>>(x, n, out);
  return cudaGetLastError();
}

cudaError_t launch_widen_columns(const float* x, int n, int ld, int col, int k, double* out,
                                 cudaStream_t stream) {
  const size_t total = size_t(n) * k;
  if (total == 0) return cudaSuccess;
  widen_columns_kernel<<<grid_stride_blocks(total), kGridStrideThreads, 0, stream>>>(x, n, ld, col,
                                                                                     k, out);
  return cudaGetLastError();
}

}  // namespace quad::cuda
