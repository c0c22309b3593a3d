// Integer GEMMs of the quantized linear layers: y (n, out) = (xq · wᵀ in int32) · sx[i] · sw[o],
// with int8 weight codes (out, k) or packed int4 codes (out, k/2: two's-complement nibbles, the
// even column in the low nibble). A simple correct kernel: 64×64 output tiles, 256 threads of
// 4×4 outputs each, k in steps of 64 codes staged in shared memory as 32-bit words of four
// int8 codes, and __dp4a products. The int32 sums are exact (k < 2^17), and the epilogue is the
// CPU's float(dot) · sx[i] · sw[o], left to right, so the results match it bit for bit.
// The int8 tensor-core kernels of the next phase replace it.
#include "kernels.h"

namespace quad::cuda {

namespace {

constexpr int kTileM = 64;          // tokens per block
constexpr int kTileN = 64;          // output channels per block
constexpr int kTileK = 64;          // codes per k step
constexpr int kWords = kTileK / 4;  // 32-bit words per tile row
constexpr int kThreads = 256;       // 16 × 16, each 4 × 4 outputs
constexpr int kPad = kWords + 1;    // row stride in words (avoids bank conflicts)

__device__ int8_t nibble_code(unsigned v) {
  return int8_t(v >= 8 ? int(v) - 16 : int(v));
}

__device__ int pack4(int8_t a, int8_t b, int8_t c, int8_t d) {
  return int(uint8_t(a)) | int(uint8_t(b)) << 8 | int(uint8_t(c)) << 16 | int(uint8_t(d)) << 24;
}

// Four int8 codes of row `row` (of `rows`), columns [col, col + 4), zero past the edges.
__device__ int load_codes(const int8_t* m, int rows, int k, int row, int col) {
  if (row >= rows) return 0;
  const int8_t* p = m + size_t(row) * k;
  int8_t c[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) c[j] = col + j < k ? p[col + j] : int8_t(0);
  return pack4(c[0], c[1], c[2], c[3]);
}

struct Int8Weights {
  const int8_t* w;
  __device__ int load(int out, int k, int row, int col) const {
    return load_codes(w, out, k, row, col);
  }
};

struct Int4Weights {
  const uint8_t* w;  // (out, k/2)
  __device__ int load(int out, int k, int row, int col) const {
    if (row >= out) return 0;
    const uint8_t* p = w + size_t(row) * (k / 2);
    int8_t c[4];
#pragma unroll
    for (int j = 0; j < 4; j += 2) {  // col is a multiple of 4 and k is even
      const uint8_t b = col + j < k ? p[(col + j) / 2] : uint8_t(0);
      c[j] = nibble_code(b & 0xFu);
      c[j + 1] = nibble_code(b >> 4);
    }
    return pack4(c[0], c[1], c[2], c[3]);
  }
};

template <typename Weights>
__global__ void int_gemm_kernel(const int8_t* xq, const float* sx, int n, int k, Weights w,
                                const float* sw, int out, float* y) {
  __shared__ int xs[kTileM][kPad];
  __shared__ int ws[kTileN][kPad];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int row0 = blockIdx.y * kTileM, col0 = blockIdx.x * kTileN;
  int acc[4][4] = {};
  for (int k0 = 0; k0 < k; k0 += kTileK) {
    for (int e = threadIdx.x; e < kTileM * kWords; e += kThreads) {
      const int r = e / kWords, wd = e % kWords;
      xs[r][wd] = load_codes(xq, n, k, row0 + r, k0 + 4 * wd);
      ws[r][wd] = w.load(out, k, col0 + r, k0 + 4 * wd);
    }
    __syncthreads();
#pragma unroll 4
    for (int wd = 0; wd < kWords; ++wd) {
      int a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = xs[ty + 16 * i][wd];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = ws[tx + 16 * j][wd];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = __dp4a(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int row = row0 + ty + 16 * i;
    if (row >= n) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int col = col0 + tx + 16 * j;
      if (col < out)
        y[size_t(row) * out + col] =
            __fmul_rn(__fmul_rn(__int2float_rn(acc[i][j]), sx[row]), sw[col]);
    }
  }
}

template <typename Weights>
cudaError_t launch(const int8_t* xq, const float* sx, int n, int k, Weights w, const float* sw,
                   int out, float* y, cudaStream_t stream) {
  if (n <= 0 || out <= 0) return cudaSuccess;
  constexpr int kMaxGridY = 65535;
  const int row_tiles = (n + kTileM - 1) / kTileM;
  const int col_tiles = (out + kTileN - 1) / kTileN;
  for (int t0 = 0; t0 < row_tiles; t0 += kMaxGridY) {
    const int tiles = row_tiles - t0 < kMaxGridY ? row_tiles - t0 : kMaxGridY;
    const size_t r0 = size_t(t0) * kTileM;
    const int rows = int(n - r0 < size_t(tiles) * kTileM ? n - r0 : size_t(tiles) * kTileM);
    int_gemm_kernel<<<dim3(col_tiles, tiles), kThreads, 0, stream>>>(xq + r0 * k, sx + r0, rows, k,
                                                                     w, sw, out, y + r0 * out);
    if (cudaError_t err = cudaGetLastError(); err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace

cudaError_t launch_int_gemm(const int8_t* xq, const float* sx, int n, int k, const int8_t* wq,
                            const float* sw, int out, float* y, cudaStream_t stream) {
  return launch(xq, sx, n, k, Int8Weights{wq}, sw, out, y, stream);
}

cudaError_t launch_int4_gemm(const int8_t* xq, const float* sx, int n, int k, const uint8_t* w4,
                             const float* sw, int out, float* y, cudaStream_t stream) {
  if (k % 2 != 0) return cudaErrorInvalidValue;
  return launch(xq, sx, n, k, Int4Weights{w4}, sw, out, y, stream);
}

}  // namespace quad::cuda
