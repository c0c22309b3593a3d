// Weight quantization on the GPU (QUAD-SPEC §4.1-4.2): the clipping search for per-row scales,
// and GPTQ's column-by-column work inside one block of columns (the lazy update of the later
// columns is a cuBLAS dgemm in the caller). Same expressions as quant/weight_quant.cpp and
// quant/gptq.cpp; products and differences are rounded separately (__fmul_rn, __dsub_rn, ...)
// so nvcc does not fuse what the CPU code rounds twice.
#include "grid_stride.cuh"
#include "kernels.h"
#include "reduce.cuh"

namespace quad::cuda {

namespace {

constexpr int kClipSteps = 80;  // p = 1 − i/100, i = 0..79
constexpr float kClipNorm = 2.4f;
constexpr double kMinAbsMax = 1e-5;
constexpr int kScaleThreads = 256;

__device__ int quantize_code(double w, double scale, int qmin, int qmax) {
  return int(fmin(fmax(rint(w / scale), double(qmin)), double(qmax)));
}

// One block per row: max|w|, then Σ|Q(w; s) − w|^2.4 for every candidate s (terms in float,
// sums in double); the first minimum (largest p) wins ties, as on the CPU.
__global__ void weight_scales_kernel(const float* w, int cols, int qmin, int qmax, bool clip_search,
                                     float* scales) {
  __shared__ float fscratch[32];
  __shared__ double dscratch[32];
  const float* row = w + size_t(blockIdx.x) * cols;
  float absmax = 0;
  for (int j = threadIdx.x; j < cols; j += blockDim.x) absmax = fmaxf(absmax, fabsf(row[j]));
  absmax = block_reduce(absmax, MaxOp{}, 0.0f, fscratch);
  const double range = fmax(double(absmax), kMinAbsMax);
  auto scale_at = [&](int i) { return float((1.0 - i / 100.0) * range / qmax); };
  float best_scale = scale_at(0);
  if (clip_search) {
    double best_err = 0;
    for (int i = 0; i < kClipSteps; ++i) {
      const float s = scale_at(i);
      double err = 0;
      for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float q = float(quantize_code(row[j], s, qmin, qmax));
        err += double(powf(fabsf(__fsub_rn(__fmul_rn(q, s), row[j])), kClipNorm));
      }
      err = block_reduce(err, SumOp{}, 0.0, dscratch);
      if (i == 0 || err < best_err) best_err = err, best_scale = s;
    }
  }
  if (threadIdx.x == 0) scales[blockIdx.x] = best_scale;
}

constexpr int kGptqRows = 32;  // rows (threads) per block; a column block sits in shared memory

// Columns [b0, b0 + width) of W (rows, cols; fp64) for kGptqRows rows per block: quantize column
// i, spread its scaled error over the block's later columns through row i of U, record the
// error in errT (width, rows) for the caller's update of the columns after the block.
__global__ void gptq_block_kernel(const double* W, const double* U, const float* scales, int rows,
                                  int cols, int b0, int width, int qmin, int qmax, int8_t* codes,
                                  double* errT) {
  __shared__ double block[kMaxGptqBlock * (kGptqRows + 1)];  // [column][row], padded
  const int r0 = blockIdx.x * kGptqRows, t = threadIdx.x;
  for (int idx = t; idx < kGptqRows * width; idx += kGptqRows) {
    const int rr = idx / width, jj = idx % width;
    if (r0 + rr < rows) block[jj * (kGptqRows + 1) + rr] = W[size_t(r0 + rr) * cols + b0 + jj];
  }
  __syncthreads();
  const int r = r0 + t;
  if (r >= rows) return;
  const double s = scales[r];
  for (int i = 0; i < width; ++i) {
    const double* ui = U + size_t(b0 + i) * cols + b0;
    const double wi = block[i * (kGptqRows + 1) + t];
    const int q = quantize_code(wi, s, qmin, qmax);
    codes[size_t(r) * cols + b0 + i] = int8_t(q);
    const double e = __ddiv_rn(__dsub_rn(wi, __dmul_rn(double(q), s)), ui[i]);
    for (int j = i + 1; j < width; ++j) {
      double& wj = block[j * (kGptqRows + 1) + t];
      wj = __dsub_rn(wj, __dmul_rn(e, ui[j]));
    }
    errT[size_t(i) * rows + r] = e;
  }
}

__global__ void damp_diagonal_kernel(double* a, int n, double v) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  double& aii = a[size_t(i) * n + i];
  aii = (aii == 0 ? 1.0 : aii) + v;  // a dead input counts as 1 (quant/gptq.cpp)
}

__global__ void weight_residual_kernel(const float* w, const int8_t* codes, const float* scales,
                                       int k, size_t total, double* out) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x)
    out[i] = __dsub_rn(double(w[i]), __dmul_rn(double(codes[i]), double(scales[i / k])));
}

// Tiles of 32 × 32 entries: tiles on and above the diagonal scale the upper entry and write it
// to both places; the lower tiles have nothing to do.
__global__ void finish_gram_kernel(double* a, int k, double scale) {
  if (blockIdx.y > blockIdx.x) return;
  const int i = blockIdx.y * 32 + threadIdx.y, j = blockIdx.x * 32 + threadIdx.x;
  for (int di = 0; di < 32; di += blockDim.y) {
    const int row = i + di;
    if (row >= k || j >= k || j < row) continue;
    const double v = a[size_t(row) * k + j] * scale;
    a[size_t(row) * k + j] = v;
    a[size_t(j) * k + row] = v;
  }
}

}  // namespace

cudaError_t launch_weight_scales(const float* w, int rows, int cols, int bits, bool clip_search,
                                 float* scales, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  const int qmin = -(1 << (bits - 1)), qmax = (1 << (bits - 1)) - 1;
  weight_scales_kernel<<<rows, kScaleThreads, 0, stream>>>(w, cols, qmin, qmax, clip_search,
                                                           scales);
  return cudaGetLastError();
}

cudaError_t launch_gptq_block(const double* W, const double* U, const float* scales, int rows,
                              int cols, int b0, int width, int bits, int8_t* codes, double* errT,
                              cudaStream_t stream) {
  if (rows <= 0 || width <= 0) return cudaSuccess;
  if (width > kMaxGptqBlock) return cudaErrorInvalidValue;
  const int qmin = -(1 << (bits - 1)), qmax = (1 << (bits - 1)) - 1;
  gptq_block_kernel<<<(rows + kGptqRows - 1) / kGptqRows, kGptqRows, 0, stream>>>(
      W, U, scales, rows, cols, b0, width, qmin, qmax, codes, errT);
  return cudaGetLastError();
}

cudaError_t launch_damp_diagonal(double* a, int n, double v, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  damp_diagonal_kernel<<<(n + 255) / 256, 256, 0, stream>>>(a, n, v);
  return cudaGetLastError();
}

cudaError_t launch_weight_residual(const float* w, const int8_t* codes, const float* scales,
                                   int rows, int k, double* out, cudaStream_t stream) {
  const size_t total = size_t(rows) * k;
  if (total == 0) return cudaSuccess;
  weight_residual_kernel<<<grid_stride_blocks(total), kGridStrideThreads, 0, stream>>>(
      w, codes, scales, k, total, out);
  return cudaGetLastError();
}

cudaError_t launch_finish_gram(double* a, int k, double scale, cudaStream_t stream) {
  if (k <= 0) return cudaSuccess;
  const int tiles = (k + 31) / 32;
  finish_gram_kernel<<<dim3(tiles, tiles), dim3(32, 8), 0, stream>>>(a, k, scale);
  return cudaGetLastError();
}

}  // namespace quad::cuda
