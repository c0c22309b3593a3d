// Causal GQA prefill attention on fp16 tensor cores, flash-attention style (FA2 loop order): a
// block holds 64 query rows of one head (16 per warp) and walks the visible keys in tiles of
// 64. Per tile: K and V converted from the fp32 cache to fp16 in shared memory (V transposed),
// S = Q·Kᵀ with mma.m16n8k16 into fp32, causal mask, online softmax in fp32 (running max and
// per-thread partial sums), P rounded to fp16 and reused as the A operand of O += P·V straight
// from the S accumulators. Only the first tile-diagonal is masked; tiles past a warp's last
// query are skipped. fp32 in, fp32 out; q, k, v and P are rounded to fp16 (the backend uses it
// only with reduced precision allowed).
#include <cuda_fp16.h>
#include <math.h>

#include "kernels.h"
#include "quad_mma.cuh"

namespace quad::cuda {

namespace {

constexpr int kRows = 64;  // query rows per block, 16 per warp
constexpr int kKeys = 64;  // keys per tile
constexpr int kThreads = 128;

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

template <int HD>
__global__ void __launch_bounds__(kThreads)
    flash_attention_kernel(const float* q, int n, int n_heads, int n_kv_heads, const float* k,
                           const float* v, int pos0, float scale_log2, float* out) {
  constexpr int kStride = HD + 8;       // halves per row of Ks (padding: conflict-free reads)
  constexpr int kVtStride = kKeys + 8;  // halves per row of Vt
  __shared__ __align__(16) __half Ks[kRows > kKeys ? kRows : kKeys][kStride];  // also Q at first
  __shared__ __align__(16) __half Vt[HD][kVtStride];
  const int h = blockIdx.y, row0 = blockIdx.x * kRows;
  const int kvh = h / (n_heads / n_kv_heads);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const size_t q_row = size_t(n_heads) * HD, kv_row = size_t(n_kv_heads) * HD;
  const int len = pos0 + n;  // keys in the cache

  // Q tile → fp16 in Ks → A fragments in registers (rows beyond n are zeros).
  for (int e = tid * 4; e < kRows * HD; e += kThreads * 4) {
    const int r = e / HD, c = e % HD;
    float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
    if (row0 + r < n)
      x = *reinterpret_cast<const float4*>(q + size_t(row0 + r) * q_row + size_t(h) * HD + c);
    *reinterpret_cast<uint2*>(&Ks[r][c]) = make_uint2(pack_half2(x.x, x.y), pack_half2(x.z, x.w));
  }
  __syncthreads();
  uint32_t qa[HD / 16][4];
  const int wr = warp * 16;  // this warp's first row in the block
#pragma unroll
  for (int ks = 0; ks < HD / 16; ++ks) {
    qa[ks][0] = *reinterpret_cast<const uint32_t*>(&Ks[wr + g][ks * 16 + 2 * t]);
    qa[ks][1] = *reinterpret_cast<const uint32_t*>(&Ks[wr + g + 8][ks * 16 + 2 * t]);
    qa[ks][2] = *reinterpret_cast<const uint32_t*>(&Ks[wr + g][ks * 16 + 2 * t + 8]);
    qa[ks][3] = *reinterpret_cast<const uint32_t*>(&Ks[wr + g + 8][ks * 16 + 2 * t + 8]);
  }

  float o[HD / 8][4];
#pragma unroll
  for (int d = 0; d < HD / 8; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // rows g and g + 8
  const int qpos[2] = {pos0 + row0 + wr + g, pos0 + row0 + wr + g + 8};
  const int warp_last = pos0 + min(n - 1, row0 + wr + 15);     // last query of the warp
  const int block_last = pos0 + min(n - 1, row0 + kRows - 1);  // ... and of the block

  for (int kt0 = 0; kt0 <= block_last; kt0 += kKeys) {
    __syncthreads();  // the previous tile (or Q) is consumed
    for (int e = tid * 4; e < kKeys * HD; e += kThreads * 4) {
      const int r = e / HD, c = e % HD, key = kt0 + r;
      float4 x = make_float4(0.f, 0.f, 0.f, 0.f), y = x;
      if (key < len) {
        x = *reinterpret_cast<const float4*>(k + size_t(key) * kv_row + size_t(kvh) * HD + c);
        y = *reinterpret_cast<const float4*>(v + size_t(key) * kv_row + size_t(kvh) * HD + c);
      }
      *reinterpret_cast<uint2*>(&Ks[r][c]) = make_uint2(pack_half2(x.x, x.y), pack_half2(x.z, x.w));
      Vt[c][r] = __float2half_rn(y.x);
      Vt[c + 1][r] = __float2half_rn(y.y);
      Vt[c + 2][r] = __float2half_rn(y.z);
      Vt[c + 3][r] = __float2half_rn(y.w);
    }
    __syncthreads();
    if (kt0 > warp_last) continue;  // every key of the tile is in this warp's future

    float s[kKeys / 8][4];
#pragma unroll
    for (int nf = 0; nf < kKeys / 8; ++nf) {
      s[nf][0] = s[nf][1] = s[nf][2] = s[nf][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < HD / 16; ++ks) {
        const uint32_t b0 = *reinterpret_cast<const uint32_t*>(&Ks[nf * 8 + g][ks * 16 + 2 * t]);
        const uint32_t b1 =
            *reinterpret_cast<const uint32_t*>(&Ks[nf * 8 + g][ks * 16 + 2 * t + 8]);
        mma_f16(s[nf], qa[ks][0], qa[ks][1], qa[ks][2], qa[ks][3], b0, b1);
      }
    }
    // Scale to log2 units, mask (future keys and keys past the cache), new row maxima.
    const bool needs_mask = kt0 + kKeys - 1 > pos0 + row0 + wr || kt0 + kKeys > len;
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int nf = 0; nf < kKeys / 8; ++nf)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int key = kt0 + nf * 8 + 2 * t + (c & 1), r = c >> 1;
        float x = s[nf][c] * scale_log2;
        if (needs_mask && (key > qpos[r] || key >= len)) x = -INFINITY;
        s[nf][c] = x;
        mx[r] = fmaxf(mx[r], x);
      }
    float alpha[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      // A row with every key so far masked (only rows past n) keeps m = −inf: use 0 as base.
      const float base = mx[r] == -INFINITY ? 0.f : mx[r];
      alpha[r] = exp2f(m[r] - base);
      m[r] = mx[r];
      mx[r] = base;
      l[r] *= alpha[r];
    }
#pragma unroll
    for (int d = 0; d < HD / 8; ++d) {
      o[d][0] *= alpha[0];
      o[d][1] *= alpha[0];
      o[d][2] *= alpha[1];
      o[d][3] *= alpha[1];
    }
#pragma unroll
    for (int nf = 0; nf < kKeys / 8; ++nf)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const float p = exp2f(s[nf][c] - mx[c >> 1]);
        s[nf][c] = p;
        l[c >> 1] += p;
      }
      // O += P·V: the S accumulators of n-fragments 2j, 2j+1 are the A fragment of key step j.
#pragma unroll
    for (int j = 0; j < kKeys / 16; ++j) {
      const uint32_t a0 = pack_half2(s[2 * j][0], s[2 * j][1]);
      const uint32_t a1 = pack_half2(s[2 * j][2], s[2 * j][3]);
      const uint32_t a2 = pack_half2(s[2 * j + 1][0], s[2 * j + 1][1]);
      const uint32_t a3 = pack_half2(s[2 * j + 1][2], s[2 * j + 1][3]);
#pragma unroll
      for (int d = 0; d < HD / 8; ++d) {
        const uint32_t b0 = *reinterpret_cast<const uint32_t*>(&Vt[d * 8 + g][j * 16 + 2 * t]);
        const uint32_t b1 = *reinterpret_cast<const uint32_t*>(&Vt[d * 8 + g][j * 16 + 2 * t + 8]);
        mma_f16(o[d], a0, a1, a2, a3, b0, b1);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = row0 + wr + g + 8 * r;
    if (i >= n) continue;
    const float inv = 1.0f / l[r];
    float* dst = out + size_t(i) * q_row + size_t(h) * HD;
#pragma unroll
    for (int d = 0; d < HD / 8; ++d)
      *reinterpret_cast<float2*>(dst + d * 8 + 2 * t) =
          make_float2(o[d][2 * r] * inv, o[d][2 * r + 1] * inv);
  }
}

}  // namespace

bool flash_attention_supported(int hd) {
  return hd == 64 || hd == 128;
}

cudaError_t launch_flash_attention(const float* q, int n, int n_heads, int n_kv_heads, int hd,
                                   const float* k, const float* v, int pos0, float scale,
                                   float* out, cudaStream_t stream) {
  if (n <= 0 || n_heads <= 0) return cudaSuccess;
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || !flash_attention_supported(hd) ||
      n_heads > 65535 || pos0 < 0)
    return cudaErrorInvalidValue;
  const dim3 grid((n + kRows - 1) / kRows, n_heads);
  const float scale_log2 = scale * 1.4426950408889634f;  // exp(x) = exp2(x · log2 e)
  if (hd == 64)
    flash_attention_kernel<64>
        <<<grid, kThreads, 0, stream>>>(q, n, n_heads, n_kv_heads, k, v, pos0, scale_log2, out);
  else
    flash_attention_kernel<128>
        <<<grid, kThreads, 0, stream>>>(q, n, n_heads, n_kv_heads, k, v, pos0, scale_log2, out);
  return cudaGetLastError();
}

}  // namespace quad::cuda
