// Causal GQA attention, one block per (head, token): the keys visible to the token are read in
// tiles of kTile; each thread scores one key of the tile, the block keeps the running maximum
// and sum of the online softmax, and each thread accumulates its own output dimensions over the
// tile's values (coalesced across the block). Correct first: the tiled flash-attention kernel
// of the next phase replaces it.
#include <math.h>

#include "kernels.h"
#include "reduce.cuh"

namespace quad::cuda {

namespace {

constexpr int kThreads = 128;
constexpr int kTile = kThreads;                                  // keys per tile: one per thread
constexpr int kDimsPerThread = kMaxAttentionHeadDim / kThreads;  // output dims a thread owns

__global__ void attention_kernel(const float* q, int n_heads, int n_kv_heads, int hd,
                                 const float* k, const float* v, int pos0, int i_base, float scale,
                                 float* out) {
  extern __shared__ float q_s[];  // (hd) this token's query for this head
  __shared__ float p_s[kTile];    // the tile's softmax numerators
  __shared__ float scratch[32];
  const int h = blockIdx.x, i = i_base + int(blockIdx.y), tid = threadIdx.x;
  const int kvh = h / (n_heads / n_kv_heads);
  const int len = pos0 + i + 1;  // causal: keys 0..pos0+i
  const size_t kv_stride = size_t(n_kv_heads) * hd;
  const float* qi = q + (size_t(i) * n_heads + h) * hd;
  for (int c = tid; c < hd; c += kThreads) q_s[c] = qi[c];
  __syncthreads();

  float acc[kDimsPerThread];
#pragma unroll
  for (int j = 0; j < kDimsPerThread; ++j) acc[j] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  for (int t0 = 0; t0 < len; t0 += kTile) {
    const int t = t0 + tid;
    float s = -INFINITY;
    if (t < len) {
      const float* kt = k + size_t(t) * kv_stride + size_t(kvh) * hd;
      float dot = 0.0f;
      for (int c = 0; c < hd; ++c) dot += q_s[c] * kt[c];
      s = dot * scale;
    }
    const float m_new = fmaxf(m, block_reduce(s, MaxOp{}, -INFINITY, scratch));
    const float p = t < len ? expf(s - m_new) : 0.0f;
    const float alpha = expf(m - m_new);  // 0 on the first tile (m = −inf)
    l = l * alpha + block_reduce(p, SumOp{}, 0.0f, scratch);
    p_s[tid] = p;
    __syncthreads();
    const int tile_len = min(kTile, len - t0);
#pragma unroll
    for (int j = 0; j < kDimsPerThread; ++j) {
      const int c = tid + j * kThreads;
      if (c < hd) {
        float a = acc[j] * alpha;
        const float* vc = v + size_t(t0) * kv_stride + size_t(kvh) * hd + c;
        for (int u = 0; u < tile_len; ++u) a += p_s[u] * vc[size_t(u) * kv_stride];
        acc[j] = a;
      }
    }
    m = m_new;
    __syncthreads();  // p_s is rewritten by the next tile
  }
  float* o = out + (size_t(i) * n_heads + h) * hd;
#pragma unroll
  for (int j = 0; j < kDimsPerThread; ++j) {
    const int c = tid + j * kThreads;
    if (c < hd) o[c] = acc[j] / l;
  }
}

// One block per score row (head h, query i of the chunk): softmax over the visible keys
// [0, len), zeros after them, in place. exp in fp32 like the reference's float expf.
__global__ void causal_softmax_kernel(float* s, int rows, int L, int first_len) {
  __shared__ float scratch[32];
  const int h = blockIdx.y, i = blockIdx.x, tid = threadIdx.x;
  float* row = s + (size_t(h) * rows + i) * L;
  const int len = min(L, first_len + i);
  float m = -INFINITY;
  for (int j = tid; j < len; j += blockDim.x) m = fmaxf(m, row[j]);
  m = block_reduce(m, MaxOp{}, -INFINITY, scratch);
  float sum = 0.0f;
  for (int j = tid; j < len; j += blockDim.x) {
    const float e = expf(row[j] - m);
    row[j] = e;
    sum += e;
  }
  sum = block_reduce(sum, SumOp{}, 0.0f, scratch);
  const float inv = 1.0f / sum;
  for (int j = tid; j < L; j += blockDim.x) row[j] = j < len ? row[j] * inv : 0.0f;
}

}  // namespace

cudaError_t launch_causal_softmax(float* scores, int heads, int rows, int L, int first_len,
                                  cudaStream_t stream) {
  if (heads <= 0 || rows <= 0 || L <= 0) return cudaSuccess;
  if (heads > 65535 || first_len < 1) return cudaErrorInvalidValue;
  causal_softmax_kernel<<<dim3(rows, heads), 256, 0, stream>>>(scores, rows, L, first_len);
  return cudaGetLastError();
}

cudaError_t launch_attention(const float* q, int n, int n_heads, int n_kv_heads, int hd,
                             const float* k, const float* v, int pos0, float scale, float* out,
                             cudaStream_t stream) {
  if (n <= 0 || n_heads <= 0) return cudaSuccess;
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || hd <= 0 || hd > kMaxAttentionHeadDim ||
      n_heads > 65535)
    return cudaErrorInvalidValue;
  constexpr int kMaxGridY = 65535;
  for (int i_base = 0; i_base < n; i_base += kMaxGridY) {
    const dim3 grid(n_heads, min(kMaxGridY, n - i_base));
    attention_kernel<<<grid, kThreads, sizeof(float) * hd, stream>>>(q, n_heads, n_kv_heads, hd, k,
                                                                     v, pos0, i_base, scale, out);
    if (cudaError_t err = cudaGetLastError(); err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace quad::cuda
