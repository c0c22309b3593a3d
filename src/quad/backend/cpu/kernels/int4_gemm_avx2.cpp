// AVX2 int4 GEMM (the library's baseline ISA, x86-64-v3). Same scheme as the AVX-512 kernel
// (u = w + 8 as the unsigned operand, −8·Σx in the epilogue) with vpmaddubsw instead of
// vpdpbusd: 32 packed bytes (64 columns, half of a prepared 128-column block) per step.
// int16 bounds of vpmaddubsw: a pair gives |u·x + u·x| ≤ 2·15·128 = 3840 and the low + high
// nibble sum ≤ 7680, far from saturation; vpmaddwd with ones then widens to int32.
#include <immintrin.h>

#include <cstring>

#include "quad/backend/cpu/kernels/int4_gemm.h"
#include "quad/backend/cpu/kernels/int4_gemm_tiling.h"

namespace quad::kernels {

namespace {

static_assert(kBlock == 128, "two 32-byte loads of packed weights cover one prepared block");

// Chunk s of a row (32 bytes) covers half s % 2 of prepared block s / 2.
inline size_t x_offset(int s) {
  return size_t(s / 2) * kBlock + size_t(s % 2) * 32;
}

template <int R, int T>
inline void dot_chunk(__m256i (&acc)[R][T], const __m256i (&b)[R], const int8_t* x, size_t ldx) {
  const __m256i low = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(0x08);
  const __m256i ones = _mm256_set1_epi16(1);
  for (int r = 0; r < R; ++r) {
    const __m256i lo = _mm256_xor_si256(_mm256_and_si256(b[r], low), eight);
    const __m256i hi = _mm256_xor_si256(_mm256_and_si256(_mm256_srli_epi16(b[r], 4), low), eight);
    for (int t = 0; t < T; ++t) {
      const int8_t* xt = x + size_t(t) * ldx;
      const __m256i xe = _mm256_load_si256(reinterpret_cast<const __m256i*>(xt));
      const __m256i xo = _mm256_load_si256(reinterpret_cast<const __m256i*>(xt + 64));
      const __m256i p =
          _mm256_add_epi16(_mm256_maddubs_epi16(lo, xe), _mm256_maddubs_epi16(hi, xo));
      acc[r][t] = _mm256_add_epi32(acc[r][t], _mm256_madd_epi16(p, ones));
    }
  }
}

inline int32_t reduce_add(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

template <int R, int T>
void compute_tile(const TileArgs& a) {
  __m256i acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_si256();
  __m256i b[R];
  for (int s = 0; s < a.steps; ++s) {
    for (int r = 0; r < R; ++r)
      b[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.w + r * a.ldw + size_t(s) * 32));
    dot_chunk<R, T>(acc, b, a.x + x_offset(s), a.ldx);
  }
  if (a.tail > 0) {
    // No byte-masked loads in AVX2: copy the tail into zeroed buffers (zeros meet the zero
    // padding of x).
    alignas(32) uint8_t buf[R][32] = {};
    for (int r = 0; r < R; ++r) {
      std::memcpy(buf[r], a.w + r * a.ldw + size_t(a.steps) * 32, size_t(a.tail));
      b[r] = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf[r]));
    }
    dot_chunk<R, T>(acc, b, a.x + x_offset(a.steps), a.ldx);
  }
  for (int t = 0; t < T; ++t) {
    for (int r = 0; r < R; ++r) {
      // Unsigned arithmetic: modular like the vector lanes, so the result is exact whenever
      // Σ w·x fits int32 (k < 2·10⁶), even if Σ (w + 8)·x does not.
      const uint32_t sum = uint32_t(reduce_add(acc[r][t])) - 8u * uint32_t(a.xsum[t]);
      a.y[size_t(t) * a.ldy + r] = float(int32_t(sum)) * a.sx[t] * a.sw[r];
    }
  }
}

// The shared tiling's policy (int4_gemm_tiling.h).
struct Avx2 {
  static constexpr int kChunkBytes = 32;
  template <int R, int T>
  static void tile(const TileArgs& a) {
    compute_tile<R, T>(a);
  }
};

}  // namespace

void gemm_s8_s4_avx2(const PreparedX& xp, const float* sx, int n, int k, const uint8_t* w_packed,
                     const float* sw, int out, float* y) {
  // 16 ymm registers: R·T accumulators + 2·R unpacked weights + temporaries. A few tokens: one
  // row per tile, so that each thread reads one sequential weight stream (faster from DRAM).
  if (n <= 4) return run_tiles<Avx2, 1, 4, 4>(xp, sx, n, k, w_packed, sw, out, y);
  return run_tiles<Avx2, 2, 4, 64>(xp, sx, n, k, w_packed, sw, out, y);
}

}  // namespace quad::kernels
