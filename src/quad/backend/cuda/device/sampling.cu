// The next-token choice on the GPU (Backend::sample_token), the host's sample_from_logits
// (backend/sampling.h) step by step: the first maximum at temperature 0; else the probabilities
// exp((l − max) / T) in the host's float arithmetic (exp in double, rounded to float), ranked
// by a stable descending radix sort (ties keep index order, as the host's comparison does),
// their running sums, the kept prefix whose mass reaches top_p, and the first ranked token whose
// running sum reaches canonical × that mass. Only the token leaves the GPU.
#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include "grid_stride.cuh"
#include "kernels.h"

namespace quad::cuda {

namespace {

constexpr int kThreads = 1024;

// Whether (v2, i2) beats (v1, i1) for the first maximum; an index of n marks "none".
__device__ __forceinline__ bool beats(float v2, int i2, float v1, int i1, int n) {
  return i2 < n && (i1 >= n || v2 > v1 || (v2 == v1 && i2 < i1));
}

// The first maximum of x (n) over one block of kThreads threads, returned to every thread.
__device__ int block_argmax(const float* x, int n, float* value) {
  __shared__ float sv[kThreads / 32];
  __shared__ int si[kThreads / 32];
  float v = -FLT_MAX;
  int idx = n;
  for (int i = threadIdx.x; i < n; i += kThreads)
    if (beats(x[i], i, v, idx, n)) v = x[i], idx = i;
  auto warp_reduce = [&] {
    for (int off = 16; off > 0; off /= 2) {
      const float ov = __shfl_down_sync(0xffffffffu, v, off);
      const int oi = __shfl_down_sync(0xffffffffu, idx, off);
      if (beats(ov, oi, v, idx, n)) v = ov, idx = oi;
    }
  };
  warp_reduce();
  if (threadIdx.x % 32 == 0) sv[threadIdx.x / 32] = v, si[threadIdx.x / 32] = idx;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = sv[threadIdx.x];
    idx = si[threadIdx.x];
    warp_reduce();
    if (threadIdx.x == 0) sv[0] = v, si[0] = idx;
  }
  __syncthreads();
  *value = sv[0];
  return si[0];
}

// The smallest i < n with pred(i), or n; every thread gets it.
template <typename Pred>
__device__ int block_first(int n, Pred pred) {
  __shared__ int s_min;
  if (threadIdx.x == 0) s_min = n;
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += kThreads)
    if (pred(i)) {
      atomicMin(&s_min, i);
      break;  // this thread's later i are larger
    }
  __syncthreads();
  const int r = s_min;
  __syncthreads();
  return r;
}

__global__ void argmax_kernel(const float* x, int n, int32_t* out) {
  float v;
  const int i = block_argmax(x, n, &v);
  if (threadIdx.x == 0) *out = i < n ? i : 0;
}

__global__ void max_kernel(const float* x, int n, float* mx) {
  float v;
  block_argmax(x, n, &v);
  if (threadIdx.x == 0) *mx = v;
}

__global__ void probabilities_kernel(const float* x, int n, const float* mx, float temperature,
                                     double* prob, int32_t* index) {
  const float m = *mx;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const float arg = __fdiv_rn(__fsub_rn(x[i], m), temperature);
    prob[i] = double(float(exp(double(arg))));  // a correctly rounded expf, as the host's
    index[i] = i;
  }
}

// running: inclusive running sums of the ranked probabilities; ranked: their token ids.
__global__ void choose_kernel(const double* running, const int32_t* ranked, int n, float top_p,
                              double canonical, int32_t* out) {
  const double total = running[n - 1];
  const int first = block_first(n, [&](int i) { return running[i] / total >= double(top_p); });
  const int keep = first < n ? first + 1 : n;
  const double u = canonical * running[keep - 1];
  const int j = block_first(keep, [&](int i) { return running[i] >= u; });
  if (threadIdx.x == 0) *out = ranked[j < keep ? j : keep - 1];
}

struct Workspace {
  double *prob, *prob_ranked;
  int32_t *index, *index_ranked;
  float* mx;
  void* temp;
  size_t temp_bytes;
};

size_t align256(size_t b) {
  return (b + 255) / 256 * 256;
}

// Carves the workspace (nullptr base: only the sizes).
Workspace carve(void* base, int n, size_t* total) {
  size_t sort_bytes = 0, scan_bytes = 0;
  cub::DeviceRadixSort::SortPairsDescending(nullptr, sort_bytes, (const double*)nullptr,
                                            (double*)nullptr, (const int32_t*)nullptr,
                                            (int32_t*)nullptr, n);
  cub::DeviceScan::InclusiveSum(nullptr, scan_bytes, (const double*)nullptr, (double*)nullptr, n);
  auto* p = static_cast<char*>(base);
  size_t at = 0;
  auto take = [&](size_t bytes) {
    char* q = p ? p + at : nullptr;
    at += align256(bytes);
    return q;
  };
  Workspace w;
  w.prob = reinterpret_cast<double*>(take(sizeof(double) * n));
  w.prob_ranked = reinterpret_cast<double*>(take(sizeof(double) * n));
  w.index = reinterpret_cast<int32_t*>(take(sizeof(int32_t) * n));
  w.index_ranked = reinterpret_cast<int32_t*>(take(sizeof(int32_t) * n));
  w.mx = reinterpret_cast<float*>(take(sizeof(float)));
  w.temp_bytes = std::max(sort_bytes, scan_bytes);
  w.temp = take(w.temp_bytes);
  *total = at;
  return w;
}

}  // namespace

cudaError_t launch_argmax(const float* x, int n, int32_t* out, cudaStream_t stream) {
  if (n <= 0) return cudaErrorInvalidValue;
  argmax_kernel<<<1, kThreads, 0, stream>>>(x, n, out);
  return cudaGetLastError();
}

size_t nucleus_sample_workspace_bytes(int n) {
  size_t total = 0;
  carve(nullptr, n, &total);
  return total;
}

cudaError_t launch_nucleus_sample(const float* logits, int n, float temperature, float top_p,
                                  double canonical, void* workspace, int32_t* out,
                                  cudaStream_t stream) {
  if (n <= 0 || !(temperature > 0) || !(top_p > 0 && top_p <= 1)) return cudaErrorInvalidValue;
  size_t total = 0;
  Workspace w = carve(workspace, n, &total);
  max_kernel<<<1, kThreads, 0, stream>>>(logits, n, w.mx);
  probabilities_kernel<<<grid_stride_blocks(size_t(n)), kGridStrideThreads, 0, stream>>>(
      logits, n, w.mx, temperature, w.prob, w.index);
  if (cudaError_t e = cudaGetLastError()) return e;
  size_t temp_bytes = w.temp_bytes;
  if (cudaError_t e = cub::DeviceRadixSort::SortPairsDescending(
          w.temp, temp_bytes, w.prob, w.prob_ranked, w.index, w.index_ranked, n, 0,
          int(sizeof(double) * 8), stream))
    return e;
  // The running sums go where the unranked probabilities were.
  temp_bytes = w.temp_bytes;
  if (cudaError_t e =
          cub::DeviceScan::InclusiveSum(w.temp, temp_bytes, w.prob_ranked, w.prob, n, stream))
    return e;
  choose_kernel<<<1, kThreads, 0, stream>>>(w.prob, w.index_ranked, n, top_p, canonical, out);
  return cudaGetLastError();
}

}  // namespace quad::cuda
