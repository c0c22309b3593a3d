#include "quad/backend/cpu/kernels/linear_f16.h"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "quad/backend/cpu/serial_blas.h"
#include "quad/tensor/dtype.h"

namespace quad::kernels {

namespace {

// 8 weights widened to fp32: fp16 by F16C, bf16 by a 16-bit shift into the high half.
template <bool BF16>
__m256 widen8(const uint16_t* w) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w));
  if constexpr (BF16)
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  else
    return _mm256_cvtph_ps(h);
}

template <bool BF16>
float widen1(uint16_t h) {
  return BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

// Σ_j x[j]·w[j] over one row: four 8-wide FMA chains, the tail scalar.
template <bool BF16>
float dot16(const float* x, const uint16_t* w, int in) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  int j = 0;
  for (; j + 32 <= in; j += 32) {
    acc0 = _mm256_fmadd_ps(widen8<BF16>(w + j), _mm256_loadu_ps(x + j), acc0);
    acc1 = _mm256_fmadd_ps(widen8<BF16>(w + j + 8), _mm256_loadu_ps(x + j + 8), acc1);
    acc2 = _mm256_fmadd_ps(widen8<BF16>(w + j + 16), _mm256_loadu_ps(x + j + 16), acc2);
    acc3 = _mm256_fmadd_ps(widen8<BF16>(w + j + 24), _mm256_loadu_ps(x + j + 24), acc3);
  }
  for (; j + 8 <= in; j += 8)
    acc0 = _mm256_fmadd_ps(widen8<BF16>(w + j), _mm256_loadu_ps(x + j), acc0);
  const __m256 acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  float sum = _mm_cvtss_f32(s);
  for (; j < in; ++j) sum += x[j] * widen1<BF16>(w[j]);
  return sum;
}

constexpr int kBlock = 64;  // rows widened per tile in the GEMM path

template <bool BF16>
void linear16(const float* x, int n, int in, const uint16_t* w16, int out, const float* bias,
              float* y) {
  if (n == 1) {
#pragma omp parallel for schedule(static) if (size_t(out) * in > (1u << 18))
    for (int o = 0; o < out; ++o)
      y[o] = dot16<BF16>(x, w16 + size_t(o) * in, in) + (bias ? bias[o] : 0.0f);
    return;
  }
  const int blocks = (out + kBlock - 1) / kBlock;
  const SerialBlas serial_blas;
#pragma omp parallel
  {
    std::vector<float> tile(size_t(kBlock) * in);  // (rows, in) widened weights
#pragma omp for schedule(dynamic)
    for (int b = 0; b < blocks; ++b) {
      const int o0 = b * kBlock, rows = std::min(kBlock, out - o0);
      const uint16_t* src = w16 + size_t(o0) * in;
      size_t i = 0;
      for (; i + 8 <= size_t(rows) * in; i += 8)
        _mm256_storeu_ps(tile.data() + i, widen8<BF16>(src + i));
      for (; i < size_t(rows) * in; ++i) tile[i] = widen1<BF16>(src[i]);
      // BLAS runs single-threaded inside the parallel region (SerialBlas).
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, rows, in, 1.0f, x, in, tile.data(),
                  in, 0.0f, y + o0, out);
      if (bias)
        for (int t = 0; t < n; ++t)
          for (int r = 0; r < rows; ++r) y[size_t(t) * out + o0 + r] += bias[o0 + r];
    }
  }
}

}  // namespace

void linear_f16(const float* x, int n, int in, const uint16_t* w16, int out, const float* bias,
                float* y) {
  linear16<false>(x, n, in, w16, out, bias, y);
}

void linear_bf16(const float* x, int n, int in, const uint16_t* w16, int out, const float* bias,
                 float* y) {
  linear16<true>(x, n, in, w16, out, bias, y);
}

}  // namespace quad::kernels
