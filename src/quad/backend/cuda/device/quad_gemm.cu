// The integer GEMMs of the QUAD linear layer with the fused epilogue (quad_linear.h):
//  - tiled: 128×128 output tiles, 8 warps of 64×32, k in steps of 256 codes through a 3-stage
//    cp.async pipeline; activations are mma's A operand, weights its B operand; both read from
//    shared memory as one 16-byte (4-bit) or 32-byte (8-bit) run per thread and 128 codes; low
//    and high nibbles in separate accumulators (5-7% faster than one; a 128×256 tile spilled);
//  - gemv (M ≤ 16): roles swapped (16 weight rows are the A operand, up to 16 tokens the B
//    operand), weights streamed straight from device memory into registers, four k blocks of
//    loads in flight per thread, 8 warps splitting K and reducing through shared memory; the
//    epilogue's constants are loaded and the outlier products formed while weights are in flight.
// Epilogue: Σ a·q from the offset sums (exact in int32), · s_x · s_w in fp32, plus the outlier
// product (fp16 weights times the tokens' fp16 pair; tensor cores, fp32 accumulation) and the
// bias, stored as bf16.
#include <algorithm>

#include "dynamic_smem.cuh"
#include "quad_epilogue.cuh"
#include "quad_linear.h"
#include "quad_mma.cuh"

namespace quad::cuda {

namespace {

constexpr int kThreads = 256;

// ---------------------------------------------------------------- tiled (prefill) kernel

template <int ABITS, int NJ>
struct Tiled {
  static constexpr int BM = 128, BN = 32 * NJ, BK = 256, STAGES = 3;
  static constexpr int A_ROW = BK * ABITS / 8;  // bytes per tile row per stage
  static constexpr int B_ROW = BK / 2;
  static constexpr int A_STAGE = BM * A_ROW, B_STAGE = BN * B_ROW;
  static constexpr int STAGE = A_STAGE + B_STAGE;
  // 16-byte chunk c of row `row` lands at this chunk: conflict-free fragment reads (a quarter
  // warp reads two rows × four threads).
  __device__ static int swz_a(int c, int row) {
    return ABITS == 4 ? c ^ ((row & 1) << 2) : c ^ (row & 1);
  }
  __device__ static int swz_b(int c, int row) { return c ^ ((row & 1) << 2); }
  static size_t smem_bytes(int r) {
    return size_t(STAGES) * STAGE + (r > 0 ? size_t(BM + BN) * (2 * r + 16) : 0);
  }
};

// Low and high nibbles go to separate accumulators (the high ones unshifted, i.e. ×16 per
// 4-bit operand), which widens a word with one mask instead of a mask and a shift-and-mask;
// the epilogue adds acc_hi / 256 (A4) or / 16 (A8), exact because those are multiples.
template <int ABITS, int NJ, typename OutT>
__global__ void __launch_bounds__(kThreads, 1)
    quad_tiled_kernel(QuadActivations act, int M, QuadWeights w, OutT* y) {
  using T = Tiled<ABITS, NJ>;
  extern __shared__ __align__(128) uint8_t smem[];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int g = lane / 4, t = lane % 4;
  const int m0 = blockIdx.y * T::BM, n0 = blockIdx.x * T::BN;
  const int wm = (warp / 4) * 64, wn = (warp % 4) * 8 * NJ;
  const int N = w.N, K = w.K, r = w.r;
  const int a_ld = quad_row_bytes(K, ABITS), nb = quad_padded_k(K) / kQuadBlockK;
  const int n_padded = quad_padded_n(N);
  const int KT = (quad_padded_k(K) + T::BK - 1) / T::BK;
  const uint8_t* A = act.codes;
  const uint8_t* B = w.codes;

  // The outlier tiles (fp16, rows padded by 16 bytes): the tokens' hi part and the weights',
  // fetched first in their own group; the tokens' lo part goes to the first stage's space once
  // the main loop is done with it (at r = 128 and 8-bit inputs a third tile would not fit).
  const int ost = 2 * r + 16, cpr = r / 8;  // cpr: 16-byte chunks per row
  uint8_t* sAo = smem + T::STAGES * T::STAGE;
  uint8_t* sWo = sAo + T::BM * ost;
  uint8_t* sAl = smem;
  auto load_outlier = [&](uint8_t* dst, const __half* src, int rows, int row0, int limit) {
    for (int id = tid; id < rows * cpr; id += kThreads) {
      const int row = id / cpr, c = id % cpr;
      const bool valid = row0 + row < limit;
      const __half* p = valid ? src + size_t(row0 + row) * r + c * 8 : src;
      cp_async16(dst + row * ost + c * 16, p, valid);
    }
  };
  if (r > 0) {
    load_outlier(sAo, act.outlier, T::BM, m0, M);
    load_outlier(sWo, w.outlier, T::BN, n0, N);
  }
  cp_async_commit();

  auto load_stage = [&](int stage, int kt) {
    uint8_t* sA = smem + stage * T::STAGE;
    uint8_t* sB = sA + T::A_STAGE;
    constexpr int CA = T::A_ROW / 16, CB = T::B_ROW / 16;
#pragma unroll
    for (int i = 0; i < T::BM * CA / kThreads; ++i) {
      const int id = tid + i * kThreads, row = id / CA, c = id % CA;
      const int gbyte = kt * T::A_ROW + c * 16;
      const bool valid = m0 + row < M && gbyte < a_ld;
      const uint8_t* p = valid ? A + size_t(m0 + row) * a_ld + gbyte : A;
      cp_async16(sA + row * T::A_ROW + T::swz_a(c, row) * 16, p, valid);
    }
    // Tile-major weights: consecutive threads read 16 rows × 64 contiguous bytes (1 KiB).
    static_assert(CB == 8, "two 64-byte k blocks per stage row");
#pragma unroll
    for (int i = 0; i < T::BN * CB / kThreads; ++i) {
      const int id = tid + i * kThreads;
      const int c4 = id % 4, r16 = (id / 4) % 16, blk = (id / 64) % 2, grp = id / 128;
      const int row = grp * 16 + r16, c = blk * 4 + c4, kblock = 2 * kt + blk;
      const bool valid = n0 + row < n_padded && kblock < nb;
      const uint8_t* p =
          valid ? B + (size_t((n0 + row) / 16) * nb + kblock) * 1024 + r16 * 64 + c4 * 16 : B;
      cp_async16(sB + row * T::B_ROW + T::swz_b(c, row) * 16, p, valid);
    }
  };

  int acc[4][NJ][4], acc_hi[4][NJ][4];
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int nj = 0; nj < NJ; ++nj)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][nj][e] = acc_hi[mi][nj][e] = 0;

#pragma unroll
  for (int s = 0; s < T::STAGES - 1; ++s) {
    if (s < KT) load_stage(s, s);
    cp_async_commit();
  }

  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<T::STAGES - 2>();
    __syncthreads();
    if (kt + T::STAGES - 1 < KT) load_stage((kt + T::STAGES - 1) % T::STAGES, kt + T::STAGES - 1);
    cp_async_commit();

    const uint8_t* sA = smem + (kt % T::STAGES) * T::STAGE;
    const uint8_t* sB = sA + T::A_STAGE;
#pragma unroll
    for (int bb = 0; bb < T::BK / kQuadBlockK; ++bb) {
      uint4 bq[NJ];
#pragma unroll
      for (int nj = 0; nj < NJ; ++nj) {
        const int row = wn + nj * 8 + g;
        bq[nj] =
            *reinterpret_cast<const uint4*>(sB + row * T::B_ROW + T::swz_b(4 * bb + t, row) * 16);
      }
      // k32 steps in pairs (sp, sp+1): one mma over their low nibbles, one over their high.
      constexpr unsigned kHi = 0xF0F0F0F0u;
      uint4 aq[4][2][ABITS == 4 ? 1 : 2];  // [mi][row g / g+8][16-byte run]
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int p = 0; p < (ABITS == 4 ? 1 : 2); ++p) {
            const int row = wm + mi * 16 + g + 8 * h;
            const int c = ABITS == 4 ? 4 * bb + t : 8 * bb + 2 * t + p;
            aq[mi][h][p] =
                *reinterpret_cast<const uint4*>(sA + row * T::A_ROW + T::swz_a(c, row) * 16);
          }
#pragma unroll
      for (int sp = 0; sp < 4; sp += 2) {
        unsigned bl0[NJ], bl1[NJ], bh0[NJ], bh1[NJ];
#pragma unroll
        for (int nj = 0; nj < NJ; ++nj) {
          const unsigned w0 = word_of(bq[nj], sp), w1 = word_of(bq[nj], sp + 1);
          bl0[nj] = lo_nibbles(w0), bl1[nj] = lo_nibbles(w1);
          bh0[nj] = w0 & kHi, bh1[nj] = w1 & kHi;
        }
#pragma unroll
        for (int mi = 0; mi < 4; ++mi) {
          unsigned l[4], hh[4];  // operand words a0..a3 of the low and the high mma
          if constexpr (ABITS == 4) {
            const unsigned g0 = word_of(aq[mi][0][0], sp), g1 = word_of(aq[mi][0][0], sp + 1);
            const unsigned e0 = word_of(aq[mi][1][0], sp), e1 = word_of(aq[mi][1][0], sp + 1);
            l[0] = lo_nibbles(g0), l[1] = lo_nibbles(e0), l[2] = lo_nibbles(g1),
            l[3] = lo_nibbles(e1);
            hh[0] = g0 & kHi, hh[1] = e0 & kHi, hh[2] = g1 & kHi, hh[3] = e1 & kHi;
          } else {
            // Step s of row h: words (s·b0, s·b1) = run s / 2, words 2(s % 2) and +1.
            const int p = sp / 2;
            l[0] = word_of(aq[mi][0][p], 0), l[1] = word_of(aq[mi][1][p], 0);
            l[2] = word_of(aq[mi][0][p], 2), l[3] = word_of(aq[mi][1][p], 2);
            hh[0] = word_of(aq[mi][0][p], 1), hh[1] = word_of(aq[mi][1][p], 1);
            hh[2] = word_of(aq[mi][0][p], 3), hh[3] = word_of(aq[mi][1][p], 3);
          }
#pragma unroll
          for (int nj = 0; nj < NJ; ++nj) {
            if constexpr (ABITS == 4) {
              mma_u8u8(acc[mi][nj], l[0], l[1], l[2], l[3], bl0[nj], bl1[nj]);
              mma_u8u8(acc_hi[mi][nj], hh[0], hh[1], hh[2], hh[3], bh0[nj], bh1[nj]);
            } else {
              mma_s8u8(acc[mi][nj], l[0], l[1], l[2], l[3], bl0[nj], bl1[nj]);
              mma_s8u8(acc_hi[mi][nj], hh[0], hh[1], hh[2], hh[3], bh0[nj], bh1[nj]);
            }
          }
        }
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads();
  if (r > 0) load_outlier(sAl, act.outlier_lo, T::BM, m0, M);  // in flight during the scales
  cp_async_commit();

  // Epilogue: integer sums → fp32 with the scales, then the outlier product on top.
  float out[4][NJ][4];
  float sx[4][2], sw[NJ][2];
  int sa[4][2], sq[NJ][2];
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = m0 + wm + mi * 16 + g + 8 * h;
      sx[mi][h] = row < M ? act.scales[row] : 0.0f;
      sa[mi][h] = row < M ? act.sums[row] : 0;
    }
#pragma unroll
  for (int nj = 0; nj < NJ; ++nj)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int col = n0 + wn + nj * 8 + 2 * t + e;
      sw[nj][e] = col < N ? w.scales[col] : 0.0f;
      sq[nj][e] = col < N ? w.sums[col] : 0;
    }
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int nj = 0; nj < NJ; ++nj)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int h = e / 2, c = e % 2;
        const int sum = acc[mi][nj][e] + (acc_hi[mi][nj][e] >> (ABITS == 4 ? 8 : 4));
        const int v = corrected(sum, ABITS, sa[mi][h], sq[nj][c], K);
        out[mi][nj][e] = float(v) * sx[mi][h] * sw[nj][c];
      }

  if (r > 0) {
    cp_async_wait<0>();
    __syncthreads();
    for (int kk = 0; kk < r / 16; ++kk) {
      unsigned bf[NJ / 2][4];
#pragma unroll
      for (int p = 0; p < NJ / 2; ++p) {
        const int row = wn + p * 16 + (lane % 8) + 8 * (lane / 16);
        ldmatrix_x4(bf[p], sWo + row * ost + (kk * 16 + 8 * ((lane / 8) & 1)) * 2);
      }
#pragma unroll
      for (int part = 1; part >= 0; --part) {  // the lo rows, then the hi rows
        unsigned af[4][4];
#pragma unroll
        for (int mi = 0; mi < 4; ++mi) {
          const int row = wm + mi * 16 + (lane % 8) + 8 * ((lane / 8) & 1);
          ldmatrix_x4(af[mi], (part ? sAl : sAo) + row * ost + (kk * 16 + 8 * (lane / 16)) * 2);
        }
#pragma unroll
        for (int mi = 0; mi < 4; ++mi)
#pragma unroll
          for (int nj = 0; nj < NJ; ++nj)
            mma_f16(out[mi][nj], af[mi][0], af[mi][1], af[mi][2], af[mi][3],
                    bf[nj / 2][2 * (nj % 2)], bf[nj / 2][2 * (nj % 2) + 1]);
      }
    }
  }

  const bool pairs = N % 2 == 0;
#pragma unroll
  for (int nj = 0; nj < NJ; ++nj) {
    const int col = n0 + wn + nj * 8 + 2 * t;
    if (col >= N) continue;
    const float b0 = w.bias ? w.bias[col] : 0.0f;
    const float b1 = w.bias && col + 1 < N ? w.bias[col + 1] : 0.0f;
#pragma unroll
    for (int mi = 0; mi < 4; ++mi)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = m0 + wm + mi * 16 + g + 8 * h;
        if (row >= M) continue;
        const float v0 = out[mi][nj][2 * h] + b0, v1 = out[mi][nj][2 * h + 1] + b1;
        if (pairs || col + 1 >= N) {
          store_out(y, N, row, col, v0, v1, pairs && col + 1 < N);
        } else {
          store_out(y, N, row, col, v0, 0.0f, false);
          store_out(y, N, row, col + 1, v1, 0.0f, false);
        }
      }
  }
}

// ---------------------------------------------------------------- gemv (decode) kernel

constexpr int kGemvWarps = kThreads / 32;
constexpr int kGemvMaxR = 128;  // check_args' bound on r

// The epilogue constants of one output channel, loaded before they are needed.
struct ChannelConst {
  float scale = 0.0f, bias = 0.0f;
  int sum = 0;
};

// BATCH: k blocks of loads in flight per thread; MINB: blocks per SM the registers must allow
// (3 at 256 threads needs ≤ 80 registers; at 84 only 2 fit). PERSIST: a grid of at most MINB
// blocks per SM, each looping over 16-row groups with the next group's weights in flight during
// the current group's reduction and epilogue.
template <int ABITS, int NT, int BATCH, int MINB, bool PERSIST, typename OutT>
__global__ void __launch_bounds__(kThreads, MINB)
    quad_gemv_kernel(QuadActivations act, int M, QuadWeights w, OutT* y) {
  __shared__ int red[kGemvWarps][NT * 128];
  __shared__ float s_out[NT * 128];  // the outlier products of the group
  __shared__ __align__(16) __half s_wo[16 * (kGemvMaxR + 8)], s_ao[2][8 * NT * (kGemvMaxR + 8)];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int g = lane / 4, t = lane % 4;
  const int N = w.N, K = w.K, r = w.r, groups = (N + 15) / 16;
  const int a_ld = quad_row_bytes(K, ABITS);
  const int nb = quad_padded_k(K) / kQuadBlockK;
  const int kb0 = warp * nb / kGemvWarps, kb1 = (warp + 1) * nb / kGemvWarps;
  const int ost = r + 8;  // halves per padded outlier row (16-byte aligned: r % 16 == 0)
  const uint4 zero = make_uint4(0, 0, 0, 0);

  // Tile-major weights (padded rows are zero codes): k block kb of 16-row group `grp` is 1 KiB
  // at (grp · nb + kb) · 1024; a warp's two loads per k block read it contiguously.
  const uint8_t* wthread = w.codes + g * 64 + 16 * t;
  auto load_weights = [&](int grp, int kb, uint4(&wa)[BATCH][2]) {
    const uint8_t* wg = wthread + size_t(grp) * nb * 1024;
#pragma unroll
    for (int u = 0; u < BATCH; ++u) {
      const bool in = kb + u < kb1;
      const size_t off = size_t(kb + u) * 1024;
      wa[u][0] = in ? load_stream(wg + off) : zero;
      wa[u][1] = in ? load_stream(wg + off + 8 * 64) : zero;
    }
  };
  // This thread's epilogue element: token e_tok, channel e_ch of the group.
  const int e_tok = tid / 16, e_ch = tid % 16;
  auto channel_const = [&](int grp) {
    ChannelConst c;
    const int col = grp * 16 + e_ch;
    if (e_tok < 8 * NT && col < N) {
      c.scale = w.scales[col];
      c.sum = w.sums[col];
      if (w.bias) c.bias = w.bias[col];
    }
    return c;
  };
  // One 16-byte chunk of the group's outlier weights (16 channels × r halves).
  const int wo_chunks = 16 * (r / 8);
  auto outlier_chunk = [&](int grp) {
    if (tid >= wo_chunks) return zero;
    const int ch = tid / (r / 8), part = tid % (r / 8), col = grp * 16 + ch;
    return col < N ? *reinterpret_cast<const uint4*>(w.outlier + size_t(col) * r + 8 * part) : zero;
  };

  // With programmatic dependent launch this kernel starts while the quantization kernel before
  // it still runs: the first weights and every constant of the group are in flight before
  // waiting for its activations.
  int grp = blockIdx.x;
  uint4 wa[BATCH][2];
  load_weights(grp, kb0, wa);
  ChannelConst cc = channel_const(grp);
  uint4 wo_next = outlier_chunk(grp);
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  // The next kernel (launched with programmatic dependent launch) may start and wait in turn.
  asm volatile("griddepcontrol.launch_dependents;\n" ::);
  float a_scale = 0.0f;
  int a_sum = 0;
  if (e_tok < M) {
    a_scale = act.scales[e_tok];
    a_sum = act.sums[e_tok];
  }
  for (int c = tid; c < 2 * 8 * NT * (r / 8); c += kThreads) {
    const int lo = c / (8 * NT * (r / 8)), tok = c % (8 * NT * (r / 8)) / (r / 8),
              part = c % (r / 8);
    const __half* src = lo ? act.outlier_lo : act.outlier;
    const uint4 v =
        tok < M ? *reinterpret_cast<const uint4*>(src + size_t(tok) * r + 8 * part) : zero;
    *reinterpret_cast<uint4*>(s_ao[lo] + tok * ost + 8 * part) = v;
  }
  const uint8_t* xrow[NT];
  bool vx[NT];
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    vx[j] = 8 * j + g < M;
    xrow[j] = act.codes + size_t(vx[j] ? 8 * j + g : 0) * a_ld + (ABITS == 4 ? 16 : 32) * t;
  }
  // Outlier products: `tpp` threads per (token, channel) pair, combined by shuffles.
  const int pairs = M * 16;
  const int tpp = pairs <= 32 ? 8 : pairs <= 64 ? 4 : pairs <= 128 ? 2 : 1;

  for (;;) {
    if (tid < wo_chunks)
      *reinterpret_cast<uint4*>(s_wo + (tid / (r / 8)) * ost + 8 * (tid % (r / 8))) = wo_next;
    __syncthreads();  // s_ao and s_wo written; the last group's epilogue done with red, s_out
    if (r > 0) {
      // While the weights are in flight.
      const int pair = tid / tpp, part = tid % tpp;
      float o = 0.0f;
      if (pair < pairs) {
        const __half2* ao = reinterpret_cast<const __half2*>(s_ao[0] + (pair / 16) * ost);
        const __half2* al = reinterpret_cast<const __half2*>(s_ao[1] + (pair / 16) * ost);
        const __half2* wo = reinterpret_cast<const __half2*>(s_wo + (pair % 16) * ost);
        for (int i = part; i < r / 2; i += tpp) {
          const float2 a = __half22float2(ao[i]), l = __half22float2(al[i]);
          const float2 b = __half22float2(wo[i]);
          o = fmaf(a.x, b.x, fmaf(a.y, b.y, fmaf(l.x, b.x, fmaf(l.y, b.y, o))));
        }
      }
      for (int h = 1; h < tpp; h *= 2) o += __shfl_xor_sync(0xffffffffu, o, h);
      if (pair < pairs && part == 0) s_out[pair] = o;
    }

    int acc[NT][4];
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[j][e] = 0;
    for (int kb = kb0; kb < kb1; kb += BATCH) {
      if (kb != kb0) load_weights(grp, kb, wa);
      uint4 xa[BATCH][NT][ABITS == 4 ? 1 : 2];
#pragma unroll
      for (int u = 0; u < BATCH; ++u) {
        const bool in = kb + u < kb1;
        const size_t off = size_t(kb + u) * 64;
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          if constexpr (ABITS == 4) {
            xa[u][j][0] = in && vx[j] ? __ldg(reinterpret_cast<const uint4*>(xrow[j] + off)) : zero;
          } else {
#pragma unroll
            for (int p = 0; p < 2; ++p)
              xa[u][j][p] = in && vx[j]
                                ? __ldg(reinterpret_cast<const uint4*>(xrow[j] + 2 * off + 16 * p))
                                : zero;
          }
        }
      }
#pragma unroll
      for (int u = 0; u < BATCH; ++u)
#pragma unroll
        for (int s = 0; s < 4; ++s) {
          const unsigned w0 = word_of(wa[u][0], s), w8 = word_of(wa[u][1], s);
          const unsigned a0 = lo_nibbles(w0), a1 = lo_nibbles(w8);
          const unsigned a2 = hi_nibbles(w0), a3 = hi_nibbles(w8);
#pragma unroll
          for (int j = 0; j < NT; ++j) {
            if constexpr (ABITS == 4) {
              const unsigned x = word_of(xa[u][j][0], s);
              mma_u8u8(acc[j], a0, a1, a2, a3, lo_nibbles(x), hi_nibbles(x));
            } else {
              const unsigned b0 = word_of(xa[u][j][s / 2], 2 * (s % 2));
              const unsigned b1 = word_of(xa[u][j][s / 2], 2 * (s % 2) + 1);
              mma_u8s8(acc[j], a0, a1, a2, a3, b0, b1);
            }
          }
        }
    }
    // The next group's weights and constants in flight during this one's reduction.
    const int next = PERSIST ? grp + int(gridDim.x) : groups;
    ChannelConst cc_next;
    if (next < groups) {
      load_weights(next, kb0, wa);
      cc_next = channel_const(next);
      wo_next = outlier_chunk(next);
    }

    // c0: (channel g, token 2t), c1: (g, 2t+1), c2: (g+8, 2t), c3: (g+8, 2t+1); stored
    // token-major (token * 16 + channel) so that the final stores are contiguous in channels.
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int ch = g + 8 * (e / 2), tok = 8 * j + 2 * t + (e % 2);
        red[warp][tok * 16 + ch] = acc[j][e];
      }
    __syncthreads();
    const int col = grp * 16 + e_ch;
    if (e_tok < M && col < N) {
      int sum = 0;
#pragma unroll
      for (int v = 0; v < kGemvWarps; ++v) sum += red[v][tid];
      const int dot = corrected(sum, ABITS, a_sum, cc.sum, K);
      float out = float(dot) * a_scale * cc.scale;
      if (r > 0) out += s_out[tid];
      out += cc.bias;
      store_one(y + size_t(e_tok) * N + col, out);
    }
    if (next >= groups) break;
    grp = next;
    cc = cc_next;
  }
}

template <int ABITS, typename OutT = __nv_bfloat16, int NJ = 4>
cudaError_t launch_tiled(const QuadActivations& act, int M, const QuadWeights& w, OutT* y,
                         cudaStream_t stream) {
  using T = Tiled<ABITS, NJ>;
  const size_t smem = T::smem_bytes(w.r);
  if (cudaError_t e = allow_dynamic_smem(
          reinterpret_cast<const void*>(quad_tiled_kernel<ABITS, NJ, OutT>), smem))
    return e;
  const dim3 grid((w.N + T::BN - 1) / T::BN, (M + T::BM - 1) / T::BM);
  quad_tiled_kernel<ABITS, NJ, OutT><<<grid, kThreads, smem, stream>>>(act, M, w, y);
  return cudaGetLastError();
}

template <int ABITS, int BATCH, int MINB, bool PERSIST, typename OutT = __nv_bfloat16>
cudaError_t launch_gemv(const QuadActivations& act, int M, const QuadWeights& w, OutT* y,
                        cudaStream_t stream) {
  // Two 8-token column tiles (M > 8) need more registers: at most 2 blocks per SM there (3
  // spilled).
  constexpr int MINB2 = MINB > 2 ? 2 : MINB;
  const int groups = (w.N + 15) / 16, per_sm = M <= 8 ? MINB : MINB2;
  // Programmatic dependent launch: may start before the preceding kernel on the stream ends
  // (the kernel waits for it before reading activations).
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(PERSIST ? std::min(groups, per_sm * quad_sm_count()) : groups);
  cfg.blockDim = dim3(kThreads);
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  if (M <= 8)
    return cudaLaunchKernelEx(&cfg, quad_gemv_kernel<ABITS, 1, BATCH, MINB, PERSIST, OutT>, act, M,
                              w, y);
  return cudaLaunchKernelEx(&cfg, quad_gemv_kernel<ABITS, 2, BATCH, MINB2, PERSIST, OutT>, act, M,
                            w, y);
}

// The decode kernel's tuning by shape (measured on H100, docs/cuda_kernels.md v18): long rows
// that fit 2 blocks per SM keep the 96 registers of that bound (down M = 1: 12.0 → 11.2 µs),
// other shapes run 3 blocks per SM (2 everywhere: W4A4 8B tg128 336.1 / 328.3 → 317.8 / 318.0
// tokens/s, alternating runs in one call). The persistent grid (variant 1) was faster on gate/up
// alone (12.6 → 11.7 µs) but not inside the model's decode step (W4A4 8B tg128 in one call: 328.2
// tokens/s with it, 333.3 with a block per group).
template <int ABITS, typename OutT>
cudaError_t launch_gemv_default(const QuadActivations& act, int M, const QuadWeights& w, OutT* y,
                                cudaStream_t stream) {
  if (w.K >= 8192 && (w.N + 15) / 16 <= 2 * quad_sm_count())
    return launch_gemv<ABITS, 4, 2, false, OutT>(act, M, w, y, stream);
  return launch_gemv<ABITS, 4, 3, false, OutT>(act, M, w, y, stream);
}

}  // namespace

cudaError_t launch_quad_gemm_tiled(const QuadActivations& act, int M, const QuadWeights& w,
                                   __nv_bfloat16* y, cudaStream_t stream) {
  if (cudaError_t e = check_args(act, M, w)) return e;
  if (act.natural) return cudaErrorInvalidValue;
  if (M == 0) return cudaSuccess;
  return by_act_bits(w.act_bits, [&](auto bits) {
    return launch_tiled<decltype(bits)::value>(act, M, w, y, stream);
  });
}

cudaError_t launch_quad_gemv_variant(const QuadActivations& act, int M, const QuadWeights& w,
                                     __nv_bfloat16* y, cudaStream_t stream, int variant) {
  if (cudaError_t e = check_args(act, M, w)) return e;
  if (M < 1 || M > 16 || act.natural || variant < 0 || variant > 4) return cudaErrorInvalidValue;
  return by_act_bits(w.act_bits, [&](auto bits) {
    constexpr int B = decltype(bits)::value;
    switch (variant) {
      case 1: return launch_gemv<B, 4, 3, true>(act, M, w, y, stream);
      case 2: return launch_gemv<B, 4, 2, false>(act, M, w, y, stream);
      case 3: return launch_gemv<B, 4, 3, false>(act, M, w, y, stream);
      case 4: return launch_gemv<B, 2, 4, true>(act, M, w, y, stream);
      default: return launch_gemv_default<B>(act, M, w, y, stream);
    }
  });
}

namespace {

template <typename OutT>
cudaError_t quad_gemm(const QuadActivations& act, int M, const QuadWeights& w, OutT* y,
                      cudaStream_t stream) {
  if (cudaError_t e = check_args(act, M, w)) return e;
  if (M == 0) return cudaSuccess;
  const bool wgmma = quad_gemm_natural(M, w);
  if (wgmma != act.natural) return cudaErrorInvalidValue;
  if (wgmma) return launch_quad_gemm_wgmma(act, M, w, y, stream);
  return by_act_bits(w.act_bits, [&](auto bits) {
    constexpr int B = decltype(bits)::value;
    return M <= 16 ? launch_gemv_default<B>(act, M, w, y, stream)
                   : launch_tiled<B, OutT>(act, M, w, y, stream);
  });
}

}  // namespace

bool quad_gemm_natural(int M, const QuadWeights& w) {
  if (M <= 16 || !quad_wgmma_available(w)) return false;
  // Measured on H100 (docs/cuda_kernels.md, M = 64 .. 8192): with 8-bit activations the wgmma
  // kernel won everywhere; with 4-bit ones the 128 x 128 mma.sync tiles won while the wgmma grid
  // (256-token x 128-channel tiles) filled less than about 3/4 of the GPU or M < 128.
  if (w.act_bits == 8) return true;
  const long blocks = long((M + 255) / 256) * ((w.N + 127) / 128);
  return M >= 128 && blocks * 4 >= 3L * quad_sm_count();
}

cudaError_t launch_quad_gemm(const QuadActivations& act, int M, const QuadWeights& w,
                             __nv_bfloat16* y, cudaStream_t stream) {
  return quad_gemm(act, M, w, y, stream);
}

cudaError_t launch_quad_gemm(const QuadActivations& act, int M, const QuadWeights& w, float* y,
                             cudaStream_t stream) {
  return quad_gemm(act, M, w, y, stream);
}

}  // namespace quad::cuda
