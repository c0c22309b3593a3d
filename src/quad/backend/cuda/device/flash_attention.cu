// Causal GQA prefill attention on fp16 tensor cores, flash-attention style (FA2 loop order): a
// block holds 64 query rows of one head (16 per warp) and walks the visible keys in tiles of
// 64. K and V are first converted from the fp32 cache to fp16 once (not once per query block);
// their tiles then stream into shared memory with cp.async through three stages: tile it + 2
// loads while the scores of tile it + 1 are computed on the tensor cores, interleaved with the
// softmax and P·V of tile it. Per tile: S = Q·Kᵀ with mma.m16n8k16 into fp32 (Q's A
// fragments held in registers, read from global memory once and pre-scaled by scale·log2 e, so
// the scores come out in log2 units; K's B fragments by ldmatrix), causal mask, online softmax in
// fp32 (running max and per-thread partial sums, exp2 on the MUFU unit), P rounded to fp16 and
// reused as the A operand of O += P·V straight from the S accumulators, V's B fragments by
// ldmatrix.trans from its row-major tile. Only the first tile-diagonal is masked; tiles past a
// warp's last query are skipped; the blocks with the most keys start first (over all heads). fp32
// in, fp32 out; q, k, v and P are rounded to fp16 (the backend uses it only with reduced precision
// allowed).
#include <cuda_fp16.h>
#include <math.h>

#include "dynamic_smem.cuh"
#include "half_convert.cuh"
#include "kernels.h"
#include "quad_mma.cuh"
#include "rope_pair.cuh"

namespace quad::cuda {

namespace {

constexpr int kRows = 64;  // query rows per block, 16 per warp
constexpr int kKeys = 64;  // keys per tile
constexpr int kThreads = 128;
constexpr int kStages = 3;  // K/V tiles in shared memory

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// 2^x by the MUFU unit (ex2.approx.ftz: ~2 ulp, subnormal results flushed; they only scale
// probabilities far below the row's largest).
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

template <int HD>
constexpr int kStride = HD + 8;  // halves per row of a K or V tile (padding: conflict-free reads)
template <int HD>
constexpr size_t kStageBytes = size_t(2) * kKeys* kStride<HD> * sizeof(__half);  // K and V tile

// One warp's 16 query rows against one 64-key tile: S (16 × 64) in mma accumulators.
using Scores = float[kKeys / 8][4];

// s = Q·Kᵀ for the tile Ks (64 keys × HD, row stride kStride). K's B fragments by ldmatrix
// (non-transposed: the tile is Kᵀ column-major): matrix j of the x4 load covers keys nf·8 .. +8
// and columns kk·32 + 8j .. +8, i.e. (b0, b1) of the k-steps 2·kk and 2·kk + 1.
template <int HD>
__device__ __forceinline__ void tile_scores(Scores& s, const uint32_t (&qa)[HD / 16][4],
                                            const __half* Ks, int lane) {
  constexpr int S = kStride<HD>;
  const __half* kr = Ks + (lane & 7) * S + 8 * (lane >> 3);
#pragma unroll
  for (int nf = 0; nf < kKeys / 8; ++nf) s[nf][0] = s[nf][1] = s[nf][2] = s[nf][3] = 0.f;
    // k-steps outside: consecutive mma's go to different accumulators.
#pragma unroll
  for (int kk = 0; kk < HD / 32; ++kk) {
#pragma unroll
    for (int nf = 0; nf < kKeys / 8; ++nf) {
      unsigned b[4];
      ldmatrix_x4(b, kr + nf * 8 * S + kk * 32);
      mma_f16(s[nf], qa[2 * kk][0], qa[2 * kk][1], qa[2 * kk][2], qa[2 * kk][3], b[0], b[1]);
      mma_f16(s[nf], qa[2 * kk + 1][0], qa[2 * kk + 1][1], qa[2 * kk + 1][2], qa[2 * kk + 1][3],
              b[2], b[3]);
    }
  }
}

// The running softmax state of a thread's two rows (g and g + 8) and their output.
template <int HD>
struct RowState {
  float o[HD / 8][4];
  float m[2], l[2];  // running max (log2 units) and this thread's partial sums
};

// Online softmax of the scores s (log2 units) of keys kt0 .. kt0 + 63, then O += P·V with the tile
// Vs. Masked: keys after the row's query (qpos) and keys past the cache (len), when needs_mask.
template <int HD>
__device__ __forceinline__ void softmax_and_pv(Scores& s, RowState<HD>& st, const __half* Vs,
                                               int kt0, bool needs_mask, const int (&qpos)[2],
                                               int len, int lane) {
  constexpr int S = kStride<HD>;
  const int t = lane % 4;
  float mx[2] = {st.m[0], st.m[1]};
#pragma unroll
  for (int nf = 0; nf < kKeys / 8; ++nf)
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int key = kt0 + nf * 8 + 2 * t + (c & 1), r = c >> 1;
      float x = s[nf][c];
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
    alpha[r] = fast_exp2(st.m[r] - base);
    st.m[r] = mx[r];
    mx[r] = base;
    st.l[r] *= alpha[r];
  }
#pragma unroll
  for (int d = 0; d < HD / 8; ++d) {
    st.o[d][0] *= alpha[0];
    st.o[d][1] *= alpha[0];
    st.o[d][2] *= alpha[1];
    st.o[d][3] *= alpha[1];
  }
#pragma unroll
  for (int nf = 0; nf < kKeys / 8; ++nf)
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const float p = fast_exp2(s[nf][c] - mx[c >> 1]);
      s[nf][c] = p;
      st.l[c >> 1] += p;
    }
    // O += P·V: the S accumulators of n-fragments 2j, 2j+1 are the A fragment of key step j.
    // ldmatrix.x4.trans over keys j·16 + (lane % 16) and columns dp·16 + 8·(lane / 16) gives the
    // B fragments (b0, b1) of the column blocks 2·dp and 2·dp + 1.
#pragma unroll
  for (int j = 0; j < kKeys / 16; ++j) {
    const uint32_t a0 = pack_half2(s[2 * j][0], s[2 * j][1]);
    const uint32_t a1 = pack_half2(s[2 * j][2], s[2 * j][3]);
    const uint32_t a2 = pack_half2(s[2 * j + 1][0], s[2 * j + 1][1]);
    const uint32_t a3 = pack_half2(s[2 * j + 1][2], s[2 * j + 1][3]);
    const __half* vr = Vs + (j * 16 + (lane & 15)) * S + 8 * (lane >> 4);
#pragma unroll
    for (int dp = 0; dp < HD / 16; ++dp) {
      unsigned b[4];
      ldmatrix_x4_trans(b, vr + dp * 16);
      mma_f16(st.o[2 * dp], a0, a1, a2, a3, b[0], b[1]);
      mma_f16(st.o[2 * dp + 1], a0, a1, a2, a3, b[2], b[3]);
    }
  }
}

// Three K/V tile stages: tiles it and it + 1 in use while it + 2 loads. The scores of tile it + 1
// are issued before the softmax of tile it, so the tensor cores work while the ALUs do the
// softmax (236 µs against 290 without, 8B attention at 2048 tokens, H200).
// kHalfOut: out is 16-bit (bf16 when out_bf16, else fp16) instead of fp32.
template <int HD, bool kRope, bool kHalfOut>
__global__ void __launch_bounds__(kThreads)
    flash_attention_kernel(const float* q, int q_ld, int n, int n_heads, int n_kv_heads,
                           const __half* k16, const __half* v16, int pos0, float scale_log2,
                           const float* rope_cos, const float* rope_sin, void* out, bool out_bf16) {
  constexpr int S = kStride<HD>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __half* const tiles = reinterpret_cast<__half*>(smem_raw);  // per stage: K tile, then V tile
  // Heads vary fastest and query tiles run from the last (most keys) to the first, so the grid
  // is dispatched longest blocks first across all heads, and a GQA group's heads read the same
  // K/V tiles at about the same time.
  const int h = blockIdx.x, row0 = (gridDim.y - 1 - blockIdx.y) * kRows;
  const int kvh = h / (n_heads / n_kv_heads);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const size_t q_row = size_t(n_heads) * HD, kv_row = size_t(n_kv_heads) * HD;
  const int len = pos0 + n;  // keys in the cache
  const int wr = warp * 16;  // this warp's first row in the block

  // Q's A fragments, rounded to fp16 (rows beyond n are zeros), pre-scaled so that the scores
  // come out in log2 units. With the RoPE tables, q is rotated here: a thread's fragments hold
  // both columns c and c + HD/2 of every pair (k-steps ks and ks + HD/32), rotated with the
  // rope kernel's roundings, so the values are those of rope() then attention().
  uint32_t qa[HD / 16][4];
  auto load = [&](int r, int c) {
    return *reinterpret_cast<const float2*>(q + size_t(row0 + wr + r) * q_ld + size_t(h) * HD + c);
  };
  auto pack = [&](float2 x) { return pack_half2(x.x * scale_log2, x.y * scale_log2); };
#pragma unroll
  for (int ks = 0; ks < HD / 32; ++ks)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = e % 2 == 0 ? g : g + 8, c = ks * 16 + 2 * t + (e >= 2 ? 8 : 0);
      if (row0 + wr + r >= n) {
        qa[ks][e] = qa[ks + HD / 32][e] = 0u;
        continue;
      }
      float2 lo = load(r, c), hi = load(r, c + HD / 2);
      if (kRope) {
        const size_t at = size_t(pos0 + row0 + wr + r) * (HD / 2) + c;
        const float2 cs = *reinterpret_cast<const float2*>(rope_cos + at);
        const float2 sn = *reinterpret_cast<const float2*>(rope_sin + at);
        const float2 a = lo, b = hi;
        lo = make_float2(rope_lo(a.x, b.x, cs.x, sn.x), rope_lo(a.y, b.y, cs.y, sn.y));
        hi = make_float2(rope_hi(a.x, b.x, cs.x, sn.x), rope_hi(a.y, b.y, cs.y, sn.y));
      }
      qa[ks][e] = pack(lo);
      qa[ks + HD / 32][e] = pack(hi);
    }

  RowState<HD> st;
#pragma unroll
  for (int d = 0; d < HD / 8; ++d) st.o[d][0] = st.o[d][1] = st.o[d][2] = st.o[d][3] = 0.f;
  st.m[0] = st.m[1] = -INFINITY;
  st.l[0] = st.l[1] = 0.f;
  const int qpos[2] = {pos0 + row0 + wr + g, pos0 + row0 + wr + g + 8};
  const int warp_last = pos0 + min(n - 1, row0 + wr + 15);     // last query of the warp
  const int block_last = pos0 + min(n - 1, row0 + kRows - 1);  // ... and of the block
  const int n_tiles = block_last / kKeys + 1;
  // Tiles past the warp's last query are all future keys for it: skipped.
  auto active = [&](int it) { return it * kKeys <= warp_last; };
  // Only tiles reaching past the warp's first query, or past the cache, need the mask.
  auto needs_mask = [&](int kt0) {
    return kt0 + kKeys - 1 > pos0 + row0 + wr || kt0 + kKeys > len;
  };

  auto k_tile = [&](int stage) { return tiles + size_t(stage) * 2 * kKeys * S; };  // V follows
  // Keys past the cache are zero-filled (and masked).
  auto load_tile = [&](int stage, int kt0) {
    __half* Ks = k_tile(stage);
    __half* Vs = Ks + kKeys * S;
    constexpr int kChunks = kKeys * HD / 8;  // 16-byte chunks per tile
    for (int c = tid; c < kChunks; c += kThreads) {
      const int r = c / (HD / 8), col = (c % (HD / 8)) * 8, key = kt0 + r;
      const bool valid = key < len;
      const size_t at = size_t(valid ? key : 0) * kv_row + size_t(kvh) * HD + col;
      cp_async16(Ks + r * S + col, k16 + at, valid);
      cp_async16(Vs + r * S + col, v16 + at, valid);
    }
  };

  // Tiles it and it + 1 in flight while it + 2 loads; stage of tile i: i % 3.
  load_tile(0, 0);
  cp_async_commit();
  if (n_tiles > 1) load_tile(1, kKeys);
  cp_async_commit();
  cp_async_wait<1>();  // tile 0
  __syncthreads();
  Scores cur;
  if (active(0)) tile_scores<HD>(cur, qa, k_tile(0), lane);
  for (int it = 0; it < n_tiles; ++it) {
    const int kt0 = it * kKeys;
    if (it + 2 < n_tiles) load_tile((it + 2) % kStages, kt0 + 2 * kKeys);
    cp_async_commit();   // possibly empty: keeps one group per iteration
    cp_async_wait<1>();  // tile it + 1 is in
    __syncthreads();
    Scores next;
    if (it + 1 < n_tiles && active(it + 1))
      tile_scores<HD>(next, qa, k_tile((it + 1) % kStages), lane);
    if (active(it))
      softmax_and_pv<HD>(cur, st, k_tile(it % kStages) + kKeys * S, kt0, needs_mask(kt0), qpos, len,
                         lane);
#pragma unroll
    for (int nf = 0; nf < kKeys / 8; ++nf)
#pragma unroll
      for (int c = 0; c < 4; ++c) cur[nf][c] = next[nf][c];
    __syncthreads();  // tile it's stage is consumed before the next iteration refills it
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    st.l[r] += __shfl_xor_sync(0xffffffffu, st.l[r], 1);
    st.l[r] += __shfl_xor_sync(0xffffffffu, st.l[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = row0 + wr + g + 8 * r;
    if (i >= n) continue;
    const float inv = 1.0f / st.l[r];
    const size_t at = size_t(i) * q_row + size_t(h) * HD + 2 * t;
#pragma unroll
    for (int d = 0; d < HD / 8; ++d) {
      const float lo = st.o[d][2 * r] * inv, hi = st.o[d][2 * r + 1] * inv;
      if constexpr (kHalfOut)
        *reinterpret_cast<uint32_t*>(static_cast<uint16_t*>(out) + at + d * 8) =
            to_half2(lo, hi, out_bf16);
      else
        *reinterpret_cast<float2*>(static_cast<float*>(out) + at + d * 8) = make_float2(lo, hi);
    }
  }
}

template <int HD, bool kRope, bool kHalfOut>
cudaError_t launch_variant(const float* q, int q_ld, int n, int n_heads, int n_kv_heads,
                           const __half* k16, const __half* v16, int pos0, float scale_log2,
                           const float* rope_cos, const float* rope_sin, void* out, bool out_bf16,
                           cudaStream_t stream) {
  const auto kernel = &flash_attention_kernel<HD, kRope, kHalfOut>;
  constexpr size_t bytes = kStages * kStageBytes<HD>;
  if (const cudaError_t e = allow_dynamic_smem(reinterpret_cast<const void*>(kernel), bytes);
      e != cudaSuccess)
    return e;
  const dim3 grid(n_heads, (n + kRows - 1) / kRows);
  kernel<<<grid, kThreads, bytes, stream>>>(q, q_ld, n, n_heads, n_kv_heads, k16, v16, pos0,
                                            scale_log2, rope_cos, rope_sin, out, out_bf16);
  return cudaGetLastError();
}

template <int HD>
cudaError_t launch_kernel(const float* q, int q_ld, int n, int n_heads, int n_kv_heads,
                          const __half* k16, const __half* v16, int pos0, float scale_log2,
                          const float* rope_cos, const float* rope_sin, float* out, uint16_t* out16,
                          bool out_bf16, cudaStream_t stream) {
  auto go = [&](auto variant, void* dst) {
    return variant(q, q_ld, n, n_heads, n_kv_heads, k16, v16, pos0, scale_log2, rope_cos, rope_sin,
                   dst, out_bf16, stream);
  };
  const bool rope = rope_cos != nullptr;
  if (out16)
    return rope ? go(launch_variant<HD, true, true>, out16)
                : go(launch_variant<HD, false, true>, out16);
  return rope ? go(launch_variant<HD, true, false>, out)
              : go(launch_variant<HD, false, false>, out);
}

}  // namespace

bool flash_attention_supported(int hd) {
  return hd == 64 || hd == 128;
}

size_t flash_attention_scratch(int len, int n_kv_heads, int hd) {
  return 2 * size_t(len) * n_kv_heads * hd;
}

cudaError_t launch_flash_attention(const float* q, int n, int n_heads, int n_kv_heads, int hd,
                                   const float* k, const float* v, int pos0, float scale,
                                   float* out, uint16_t* scratch, cudaStream_t stream,
                                   const float* rope_cos, const float* rope_sin, uint16_t* out16,
                                   bool out_bf16, int q_ld) {
  if (n <= 0 || n_heads <= 0) return cudaSuccess;
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || !flash_attention_supported(hd) ||
      (rope_cos == nullptr) != (rope_sin == nullptr) || n > 65535 * kRows || pos0 < 0 ||
      (q_ld != 0 && (q_ld < n_heads * hd || q_ld % 2 != 0)))
    return cudaErrorInvalidValue;
  if (q_ld == 0) q_ld = n_heads * hd;
  const size_t kv_count = size_t(pos0 + n) * n_kv_heads * hd;
  uint16_t* k16 = scratch;
  uint16_t* v16 = scratch + kv_count;
  if (cudaError_t e = launch_to_half(k, kv_count, k16, /*bf16=*/false, stream); e != cudaSuccess)
    return e;
  if (cudaError_t e = launch_to_half(v, kv_count, v16, /*bf16=*/false, stream); e != cudaSuccess)
    return e;
  const float scale_log2 = scale * 1.4426950408889634f;  // exp(x) = exp2(x · log2 e)
  const auto* kh = reinterpret_cast<const __half*>(k16);
  const auto* vh = reinterpret_cast<const __half*>(v16);
  return hd == 64 ? launch_kernel<64>(q, q_ld, n, n_heads, n_kv_heads, kh, vh, pos0, scale_log2,
                                      rope_cos, rope_sin, out, out16, out_bf16, stream)
                  : launch_kernel<128>(q, q_ld, n, n_heads, n_kv_heads, kh, vh, pos0, scale_log2,
                                       rope_cos, rope_sin, out, out16, out_bf16, stream);
}

}  // namespace quad::cuda
