// AVX-512 VNNI int4 GEMM. Compiled with -mavx512f/bw/vl/vnni (see the top-level CMakeLists);
// called only when the CPU has them. To keep AVX-512 code out of inline functions that other
// files share (the linker keeps one copy of each), this file uses no std templates.
//
// Scheme: vpdpbusd multiplies unsigned bytes by signed bytes, so weights enter as
// u = w + 8 ∈ [0, 15] against the signed activation codes and the epilogue subtracts 8·Σx.
// 64 packed bytes (128 columns) give the low nibbles (even columns) and the high nibbles (odd
// columns), matched by the even / odd halves of the prepared activation block; the high ones
// are used in place as 16·u (see dot_chunk), which saves a shift per chunk. Every weight row is
// dotted with a tile of T tokens while its unpacked registers are live (R rows × T tokens of
// int32 accumulators), then reduced. Exact for k < 2·10⁶ (see kFlushChunks).
#include <immintrin.h>

// GCC 12 reports its own _mm512_undefined_epi32() inside the AVX-512 shuffle intrinsics as
// uninitialized; the lanes it stands for are never read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "quad/backend/cpu/kernels/int4_gemm.h"
#include "quad/backend/cpu/kernels/int4_gemm_tiling.h"

namespace quad::kernels {

namespace {

static_assert(kBlock == 128, "one 64-byte load of packed weights covers one prepared block");

// One 64-byte chunk of packed weights per row against the matching prepared block of each
// token. With b' = b ^ 0x88 (two vpternlogd, no shift): lo = b' & 0x0F = w_even + 8 and
// hi16 = b' & 0xF0 = 16·(w_odd + 8); the hi products go to their own accumulators, divided by
// 16 when flushed (see tile).
template <int R, int T>
inline void dot_chunk(__m512i (&lo_acc)[R][T], __m512i (&hi_acc)[R][T], const __m512i (&b)[R],
                      const int8_t* x, size_t ldx) {
  const __m512i flip = _mm512_set1_epi8(char(0x88));
  const __m512i low = _mm512_set1_epi8(0x0F), high = _mm512_set1_epi8(char(0xF0));
  if constexpr (T == 1) {
    // One token (the last tile of a token block): its block is loaded once for all R rows.
    const __m512i xe = _mm512_load_si512(x), xo = _mm512_load_si512(x + 64);
    for (int r = 0; r < R; ++r) {
      const __m512i lo = _mm512_and_si512(_mm512_xor_si512(b[r], flip), low);
      const __m512i hi16 = _mm512_and_si512(_mm512_xor_si512(b[r], flip), high);
      lo_acc[r][0] = _mm512_dpbusd_epi32(lo_acc[r][0], lo, xe);
      hi_acc[r][0] = _mm512_dpbusd_epi32(hi_acc[r][0], hi16, xo);
    }
    return;
  }
  for (int r = 0; r < R; ++r) {
    const __m512i lo = _mm512_and_si512(_mm512_xor_si512(b[r], flip), low);
    const __m512i hi16 = _mm512_and_si512(_mm512_xor_si512(b[r], flip), high);
    for (int t = 0; t < T; ++t) {
      const int8_t* xt = x + size_t(t) * ldx;
      lo_acc[r][t] = _mm512_dpbusd_epi32(lo_acc[r][t], lo, _mm512_load_si512(xt));
      hi_acc[r][t] = _mm512_dpbusd_epi32(hi_acc[r][t], hi16, _mm512_load_si512(xt + 64));
    }
  }
}

// Horizontal sum of the 16 int32 lanes.
inline int32_t reduce_add(__m512i v) {
  const __m512i h = _mm512_add_epi32(v, _mm512_shuffle_i64x2(v, v, 0x4E));
  __m128i s = _mm_add_epi32(_mm512_castsi512_si128(h),
                            _mm512_castsi512_si128(_mm512_shuffle_i64x2(h, h, 0xB1)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// Chunks between flushes of the hi16 accumulators: a lane gains at most 4·240·128 per chunk,
// so 1024 chunks stay below 2³¹ and the arithmetic shift by 4 is exact. The lo accumulators and
// everything after the flush may wrap: vpdpbusd and vpaddd are modular, and the final dot
// product (|Σ w·x| ≤ 1024·k) fits int32 for k < 2·10⁶, so it comes out exact.
constexpr int kFlushChunks = 1024;

// {Σ a, Σ b, Σ c, Σ d}: transposing adds within 128-bit lanes, then the four lanes folded
// (13 instructions instead of 4 separate horizontal sums).
inline __m128i reduce_add4(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
  s = _mm512_add_epi32(s, _mm512_shuffle_i64x2(s, s, 0x4E));
  s = _mm512_add_epi32(s, _mm512_shuffle_i64x2(s, s, 0xB1));
  return _mm512_castsi512_si128(s);
}

template <int R, int T>
void compute_tile(const TileArgs& a) {
  __m512i acc[R][T], hi_acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = hi_acc[r][t] = _mm512_setzero_si512();
  auto flush = [&] {
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) {
        acc[r][t] = _mm512_add_epi32(acc[r][t], _mm512_srai_epi32(hi_acc[r][t], 4));
        hi_acc[r][t] = _mm512_setzero_si512();
      }
  };
  __m512i b[R];
  for (int s0 = 0; s0 < a.steps; s0 += kFlushChunks) {
    const int s1 = s0 + kFlushChunks < a.steps ? s0 + kFlushChunks : a.steps;
    for (int s = s0; s < s1; ++s) {
      for (int r = 0; r < R; ++r) b[r] = _mm512_loadu_si512(a.w + r * a.ldw + size_t(s) * 64);
      dot_chunk<R, T>(acc, hi_acc, b, a.x + size_t(s) * kBlock, a.ldx);
    }
    flush();
  }
  if (a.tail > 0) {
    // Masked loads do not fault past the end; the zero bytes meet zero padding in x.
    const __mmask64 m = _cvtu64_mask64((uint64_t(1) << a.tail) - 1);
    for (int r = 0; r < R; ++r)
      b[r] = _mm512_maskz_loadu_epi8(m, a.w + r * a.ldw + size_t(a.steps) * 64);
    dot_chunk<R, T>(acc, hi_acc, b, a.x + size_t(a.steps) * kBlock, a.ldx);
    flush();
  }
  if constexpr (R == 4) {
    // Four rows at once: the same int32 and float operations, in vector lanes.
    const __m128 sw4 = _mm_loadu_ps(a.sw);
    for (int t = 0; t < T; ++t) {
      const __m128i sums = reduce_add4(acc[0][t], acc[1][t], acc[2][t], acc[3][t]);
      const __m128i dot = _mm_sub_epi32(sums, _mm_set1_epi32(int32_t(8u * uint32_t(a.xsum[t]))));
      const __m128 v = _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(dot), _mm_set1_ps(a.sx[t])), sw4);
      _mm_storeu_ps(a.y + size_t(t) * a.ldy, v);
    }
  } else {
    for (int t = 0; t < T; ++t) {
      for (int r = 0; r < R; ++r) {
        // Unsigned arithmetic: modular, like the vector lanes.
        const uint32_t sum = uint32_t(reduce_add(acc[r][t])) - 8u * uint32_t(a.xsum[t]);
        a.y[size_t(t) * a.ldy + r] = float(int32_t(sum)) * a.sx[t] * a.sw[r];
      }
    }
  }
}

// One token: rows one after the other, so that each thread reads one sequential stream (the
// hardware prefetcher serves that best: measured 27 GB/s for one core, against 18 GB/s with
// four interleaved rows). Two chunks per iteration with their own accumulators hide the
// vpdpbusd latency.
void gemv_row(const PreparedX& xp, const uint8_t* w, int steps, int tail, __m512i (&acc)[4]) {
  const __m512i flip = _mm512_set1_epi8(char(0x88));
  const __m512i low = _mm512_set1_epi8(0x0F), high = _mm512_set1_epi8(char(0xF0));
  auto chunk = [&](__m512i b, const int8_t* x, __m512i& lo_acc, __m512i& hi_acc) {
    const __m512i lo = _mm512_and_si512(_mm512_xor_si512(b, flip), low);
    const __m512i hi16 = _mm512_and_si512(_mm512_xor_si512(b, flip), high);
    lo_acc = _mm512_dpbusd_epi32(lo_acc, lo, _mm512_load_si512(x));
    hi_acc = _mm512_dpbusd_epi32(hi_acc, hi16, _mm512_load_si512(x + 64));
  };
  int s = 0;
  for (; s + 1 < steps; s += 2) {
    chunk(_mm512_loadu_si512(w + size_t(s) * 64), xp.x + size_t(s) * kBlock, acc[0], acc[1]);
    chunk(_mm512_loadu_si512(w + size_t(s + 1) * 64), xp.x + size_t(s + 1) * kBlock, acc[2],
          acc[3]);
  }
  if (s < steps)
    chunk(_mm512_loadu_si512(w + size_t(s) * 64), xp.x + size_t(s) * kBlock, acc[0], acc[1]);
  if (tail > 0) {
    const __mmask64 m = _cvtu64_mask64((uint64_t(1) << tail) - 1);
    chunk(_mm512_maskz_loadu_epi8(m, w + size_t(steps) * 64), xp.x + size_t(steps) * kBlock, acc[2],
          acc[3]);
  }
}

void gemv(const PreparedX& xp, const float* sx, int k, const uint8_t* w_packed, const float* sw,
          int out, float* y) {
  const size_t ldw = size_t(k / 2);
  const int steps = int(ldw / 64), tail = int(ldw % 64);
  const bool parallel = double(out) * k >= kParallelMacs;
  const int chunk = chunk_for(ldw);
#pragma omp parallel for schedule(dynamic, chunk) if (parallel)
  for (int o = 0; o < out; ++o) {
    uint32_t sum = 0;
    // Segments of kFlushChunks keep the hi16 accumulators exact (see tile).
    for (int s0 = 0; s0 < steps || (s0 == 0 && tail > 0); s0 += kFlushChunks) {
      const int seg = steps - s0 < kFlushChunks ? steps - s0 : kFlushChunks;
      const int seg_tail = s0 + seg == steps ? tail : 0;
      __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                        _mm512_setzero_si512()};
      const PreparedX seg_x{xp.x + size_t(s0) * kBlock, xp.xsum, xp.kp};
      gemv_row(seg_x, w_packed + size_t(o) * ldw + size_t(s0) * 64, seg, seg_tail, acc);
      const __m512i total =
          _mm512_add_epi32(_mm512_add_epi32(acc[0], _mm512_srai_epi32(acc[1], 4)),
                           _mm512_add_epi32(acc[2], _mm512_srai_epi32(acc[3], 4)));
      sum += uint32_t(reduce_add(total));
    }
    sum -= 8u * uint32_t(xp.xsum[0]);
    y[o] = float(int32_t(sum)) * sx[0] * sw[o];
  }
}

// The shared tiling's policy (int4_gemm_tiling.h).
struct Avx512Vnni {
  static constexpr int kChunkBytes = 64;
  template <int R, int T>
  static void tile(const TileArgs& a) {
    compute_tile<R, T>(a);
  }
};

}  // namespace

void gemm_s8_s4_avx512vnni(const PreparedX& xp, const float* sx, int n, int k,
                           const uint8_t* w_packed, const float* sw, int out, float* y) {
  // Tile shapes measured on Zen 4 (2·R·T accumulators + 2·R unpacked registers ≤ 32). Up to
  // 64 tokens form one token block, so the weights are streamed from memory once.
  if (n == 1) return gemv(xp, sx, k, w_packed, sw, out, y);
  // A few tokens: one row per tile as well (sequential weight stream), up to 4 tokens.
  if (n <= 4) return run_tiles<Avx512Vnni, 1, 4, 4>(xp, sx, n, k, w_packed, sw, out, y);
  return run_tiles<Avx512Vnni, 4, 3, 64>(xp, sx, n, k, w_packed, sw, out, y);
}

}  // namespace quad::kernels
