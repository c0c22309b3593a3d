// Causal GQA attention in fp32, one block per (head, token): decode steps and short prefills
// (longer ones run as GEMMs or on the flash kernel). head_dim 64 and 128 run
// attention_rows_kernel (keys split across warps, dimensions across lanes); other head sizes the
// first kernel: the keys visible to the token read in tiles of kTile, each thread scoring one key
// of the tile, the block keeping the running maximum and sum of the online softmax, each thread
// accumulating its own output dimensions over the tile's values.
#include <math.h>

#include "kernels.h"
#include "pdl.cuh"
#include "reduce.cuh"
#include "rope_pair.cuh"

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
  pdl_wait();
  pdl_allow_next();
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

// The same attention for head_dim = 32·DPL, the keys split across WARPS warps: lane l holds
// dimensions [l·DPL, (l + 1)·DPL) of q, of each key and value row it reads (coalesced), a key's
// score is a warp sum (shuffles), four keys at a time for independent loads. Each warp keeps its
// own online softmax over keys w, w + WARPS, ...; the warps' partial results are combined at the
// end. For decode steps (one query per head over a long cache) this reads the cache at the
// memory system's pace instead of one key row per thread.
//
// One query row: qv its lane's dimensions, keys/values [0, len) at kb/vb + t·kv_stride (kb, vb
// already at the head and lane), except key len − 1 from new_k / new_v (shared memory, whole
// rows) when those are given; out the row's output.
template <int DPL, int WARPS>
__device__ void attend_row(const float (&qv)[DPL], const float* kb, const float* vb,
                           size_t kv_stride, int len, const float* new_k, const float* new_v,
                           float scale, float* out) {
  constexpr int hd = 32 * DPL, kKeys = 4;
  __shared__ float s_m[WARPS], s_l[WARPS];
  __shared__ float s_acc[WARPS][hd];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  auto key = [&](int t) {
    return new_k && t == len - 1 ? new_k + lane * DPL : kb + size_t(t) * kv_stride;
  };
  auto value = [&](int t) {
    return new_v && t == len - 1 ? new_v + lane * DPL : vb + size_t(t) * kv_stride;
  };
  float acc[DPL];
#pragma unroll
  for (int d = 0; d < DPL; ++d) acc[d] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  for (int t0 = warp * kKeys; t0 < len; t0 += WARPS * kKeys) {
    float s[kKeys];
#pragma unroll
    for (int j = 0; j < kKeys; ++j) {
      s[j] = 0.0f;
      if (t0 + j < len) {
        const float* kt = key(t0 + j);
#pragma unroll
        for (int d = 0; d < DPL; ++d) s[j] += qv[d] * kt[d];
      }
    }
#pragma unroll
    for (int off = 16; off > 0; off /= 2)
#pragma unroll
      for (int j = 0; j < kKeys; ++j) s[j] += __shfl_xor_sync(0xffffffffu, s[j], off);
#pragma unroll
    for (int j = 0; j < kKeys; ++j) {
      if (t0 + j >= len) break;
      const float sj = s[j] * scale, m_new = fmaxf(m, sj);
      const float alpha = expf(m - m_new), p = expf(sj - m_new);
      const float* vt = value(t0 + j);
      l = l * alpha + p;
#pragma unroll
      for (int d = 0; d < DPL; ++d) acc[d] = acc[d] * alpha + p * vt[d];
      m = m_new;
    }
  }
  if (lane == 0) s_m[warp] = m, s_l[warp] = l;
#pragma unroll
  for (int d = 0; d < DPL; ++d) s_acc[warp][lane * DPL + d] = acc[d];
  __syncthreads();
  float m_all = -INFINITY;
#pragma unroll
  for (int w = 0; w < WARPS; ++w) m_all = fmaxf(m_all, s_m[w]);
  for (int c = threadIdx.x; c < hd; c += 32 * WARPS) {
    float num = 0.0f, den = 0.0f;
#pragma unroll
    for (int w = 0; w < WARPS; ++w) {
      if (s_m[w] == -INFINITY) continue;  // a warp that saw no key
      const float f = expf(s_m[w] - m_all);
      num += s_acc[w][c] * f;
      den += s_l[w] * f;
    }
    out[c] = num / den;
  }
}

template <int DPL, int WARPS>
__global__ void attention_rows_kernel(const float* q, int n_heads, int n_kv_heads, const float* k,
                                      const float* v, int pos0, int i_base, float scale,
                                      float* out) {
  constexpr int hd = 32 * DPL;
  pdl_wait();
  pdl_allow_next();
  const int h = blockIdx.x, i = i_base + int(blockIdx.y), lane = threadIdx.x % 32;
  const int kvh = h / (n_heads / n_kv_heads);
  const size_t kv_stride = size_t(n_kv_heads) * hd;
  const float* qi = q + (size_t(i) * n_heads + h) * hd + lane * DPL;
  float qv[DPL];
#pragma unroll
  for (int d = 0; d < DPL; ++d) qv[d] = qi[d];
  attend_row<DPL, WARPS>(qv, k + size_t(kvh) * hd + lane * DPL, v + size_t(kvh) * hd + lane * DPL,
                         kv_stride, pos0 + i + 1, nullptr, nullptr, scale,
                         out + (size_t(i) * n_heads + h) * hd);
}

// x's pair (c, c + half) rotated as the RoPE kernels rotate it (each product rounded on its own).
__device__ __forceinline__ void rotate_pair(const float* x, int c, int half, float cs, float sn,
                                            float* y) {
  const float a = x[c], b = x[c + half];
  y[c] = rope_lo(a, b, cs, sn);
  y[c + half] = rope_hi(a, b, cs, sn);
}

// One decode step straight from the joined row qkv = q | k | v of the token at position pos:
// block h rotates its query head and its kv head's new key (as split_kv_rope then rope would),
// attends over the cache's keys [0, pos) and the new one, and the first block of each kv group
// writes the new key and value into cache row pos. No block reads row pos from the cache.
template <int DPL, int WARPS>
__global__ void decode_attention_kernel(const float* qkv, int k_col, int n_heads, int n_kv_heads,
                                        float* k_cache, float* v_cache, int pos, const float* cos,
                                        const float* sin, float scale, float* out) {
  constexpr int hd = 32 * DPL, half = hd / 2;
  __shared__ float s_q[hd], s_k[hd], s_v[hd];
  pdl_wait();
  pdl_allow_next();
  const int h = blockIdx.x, group = n_heads / n_kv_heads, kvh = h / group, lane = threadIdx.x % 32;
  const size_t kv_stride = size_t(n_kv_heads) * hd;
  const float* k_new = qkv + k_col + size_t(kvh) * hd;
  const float* v_new = qkv + k_col + kv_stride + size_t(kvh) * hd;
  for (int c = threadIdx.x; c < half; c += blockDim.x) {
    const float cs = cos[size_t(pos) * half + c], sn = sin[size_t(pos) * half + c];
    rotate_pair(qkv + size_t(h) * hd, c, half, cs, sn, s_q);
    rotate_pair(k_new, c, half, cs, sn, s_k);
  }
  for (int c = threadIdx.x; c < hd; c += blockDim.x) s_v[c] = v_new[c];
  __syncthreads();
  if (h % group == 0)
    for (int c = threadIdx.x; c < hd; c += blockDim.x) {
      k_cache[size_t(pos) * kv_stride + size_t(kvh) * hd + c] = s_k[c];
      v_cache[size_t(pos) * kv_stride + size_t(kvh) * hd + c] = s_v[c];
    }
  float qv[DPL];
#pragma unroll
  for (int d = 0; d < DPL; ++d) qv[d] = s_q[lane * DPL + d];
  attend_row<DPL, WARPS>(qv, k_cache + size_t(kvh) * hd + lane * DPL,
                         v_cache + size_t(kvh) * hd + lane * DPL, kv_stride, pos + 1, s_k, s_v,
                         scale, out + size_t(h) * hd);
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

bool decode_attention_supported(int hd) {
  return hd == 64 || hd == 128;
}

cudaError_t launch_decode_attention(const float* qkv, int k_col, int n_heads, int n_kv_heads,
                                    int hd, float* k_cache, float* v_cache, int pos,
                                    const float* cos, const float* sin, float scale, float* out,
                                    cudaStream_t stream) {
  if (n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || pos < 0 ||
      !decode_attention_supported(hd))
    return cudaErrorInvalidValue;
  constexpr int kWarps = 8;
  const dim3 grid(n_heads), block(32 * kWarps);
  return hd == 64
             ? launch_pdl(decode_attention_kernel<2, kWarps>, grid, block, 0, stream, qkv, k_col,
                          n_heads, n_kv_heads, k_cache, v_cache, pos, cos, sin, scale, out)
             : launch_pdl(decode_attention_kernel<4, kWarps>, grid, block, 0, stream, qkv, k_col,
                          n_heads, n_kv_heads, k_cache, v_cache, pos, cos, sin, scale, out);
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
    if (decode_attention_supported(hd)) {
      // 8 warps: a decode step has only n_heads blocks, each over the whole cache.
      constexpr int kWarps = 8;
      const cudaError_t err =
          hd == 64 ? launch_pdl(attention_rows_kernel<2, kWarps>, grid, dim3(32 * kWarps), 0,
                                stream, q, n_heads, n_kv_heads, k, v, pos0, i_base, scale, out)
                   : launch_pdl(attention_rows_kernel<4, kWarps>, grid, dim3(32 * kWarps), 0,
                                stream, q, n_heads, n_kv_heads, k, v, pos0, i_base, scale, out);
      if (err != cudaSuccess) return err;
      continue;
    }
    if (cudaError_t err =
            launch_pdl(attention_kernel, grid, dim3(kThreads), sizeof(float) * hd, stream, q,
                       n_heads, n_kv_heads, hd, k, v, pos0, i_base, scale, out))
      return err;
  }
  return cudaSuccess;
}

}  // namespace quad::cuda
