// The fast transform x ← x·H_nᵀ: a fast Walsh–Hadamard transform on each of the K blocks of
// 2^k contiguous entries, then the K×K mix across blocks (QUAD-SPEC §3.7b–c, §12 items 7, 22).
//
// The hot loops use GCC's vector extension (256-bit vectors): plain loops were vectorized
// differently at -O2 and -O3, and at both the K×K mix kept its accumulators in memory.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "quad/core/error.h"
#include "quad/quant/hadamard.h"
#include "quad/quant/hadamard_internal.h"

// The vector helpers below have internal linkage, so GCC's note that passing 256-bit vectors
// by value changes the ABI when AVX is off (builds without -march) does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace quad::hadamard {
namespace {

template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(32)));
};
template <typename T>
using Vec = typename VecOf<T>::type;
template <typename T>
constexpr int kLanes = int(sizeof(Vec<T>) / sizeof(T));

template <typename T>
Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
void store(T* p, const Vec<T>& v) {
  std::memcpy(p, &v, sizeof v);
}

// Butterflies (lo, hi) ← (lo + hi, lo − hi) over h entries.
template <typename T>
void butterfly2(T* lo, T* hi, int h) {
  int j = 0;
  for (; j + kLanes<T> <= h; j += kLanes<T>) {
    const Vec<T> a = load(lo + j), b = load(hi + j);
    store(lo + j, a + b);
    store(hi + j, a - b);
  }
  for (; j < h; ++j) {
    const T a = lo[j], b = hi[j];
    lo[j] = a + b;
    hi[j] = a - b;
  }
}

// Two stages (h and 2h) at once over four runs of h entries: one pass instead of two.
template <typename T>
void butterfly4(T* p0, T* p1, T* p2, T* p3, int h) {
  int j = 0;
  for (; j + kLanes<T> <= h; j += kLanes<T>) {
    const Vec<T> x0 = load(p0 + j), x1 = load(p1 + j), x2 = load(p2 + j), x3 = load(p3 + j);
    const Vec<T> a = x0 + x1, b = x0 - x1, c = x2 + x3, d = x2 - x3;
    store(p0 + j, a + c);
    store(p1 + j, b + d);
    store(p2 + j, a - c);
    store(p3 + j, b - d);
  }
  for (; j < h; ++j) {
    const T a = p0[j] + p1[j], b = p0[j] - p1[j], c = p2[j] + p3[j], d = p2[j] - p3[j];
    p0[j] = a + c;
    p1[j] = b + d;
    p2[j] = a - c;
    p3[j] = b - d;
  }
}

// In-place unnormalized Walsh–Hadamard transform (natural order) of v[0..len), len = 2^k.
template <typename T>
void fwht(T* v, int len) {
  int h = 1;
  if (len >= 8) {  // stages 1, 2, 4 within groups of 8 entries, in scalar registers
    for (int i = 0; i < len; i += 8) {
      T* g = v + i;
      const T a0 = g[0] + g[1], a1 = g[0] - g[1], a2 = g[2] + g[3], a3 = g[2] - g[3];
      const T a4 = g[4] + g[5], a5 = g[4] - g[5], a6 = g[6] + g[7], a7 = g[6] - g[7];
      const T b0 = a0 + a2, b1 = a1 + a3, b2 = a0 - a2, b3 = a1 - a3;
      const T b4 = a4 + a6, b5 = a5 + a7, b6 = a4 - a6, b7 = a5 - a7;
      g[0] = b0 + b4;
      g[1] = b1 + b5;
      g[2] = b2 + b6;
      g[3] = b3 + b7;
      g[4] = b0 - b4;
      g[5] = b1 - b5;
      g[6] = b2 - b6;
      g[7] = b3 - b7;
    }
    h = 8;
  }
  for (; 4 * h <= len; h *= 4) {
    for (int i = 0; i < len; i += 4 * h)
      butterfly4(v + i, v + i + h, v + i + 2 * h, v + i + 3 * h, h);
  }
  for (; h < len; h *= 2) {
    for (int i = 0; i < len; i += 2 * h) butterfly2(v + i, v + i + h, h);
  }
}

// One register tile of Y = A·X: R rows of A times a strip of 2 vectors of X (2·kLanes columns).
// a has row stride K, x row stride P, y row stride ldy.
template <typename T, int R>
void mix_tile(const T* a, int K, const T* x, int P, T* y, int ldy) {
  constexpr int L = kLanes<T>;
  Vec<T> acc[R][2] = {};
  for (int b = 0; b < K; ++b) {
    const Vec<T> x0 = load(x + size_t(b) * P), x1 = load(x + size_t(b) * P + L);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const T w = a[size_t(r) * K + b];
      acc[r][0] += w * x0;
      acc[r][1] += w * x1;
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    store(y + size_t(r) * ldy, acc[r][0]);
    store(y + size_t(r) * ldy + L, acc[r][1]);
  }
}

// Scalar version for the columns that do not fill a vector tile (P < 2·kLanes).
template <typename T>
void mix_column(const T* a, int K, const T* x, int P, T* y, int ldy, int rows) {
  for (int r = 0; r < rows; ++r) {
    T acc = 0;
    for (int b = 0; b < K; ++b) acc += a[size_t(r) * K + b] * x[size_t(b) * P];
    y[size_t(r) * ldy] = acc;
  }
}

// Columns of the K × P view are mixed per strip of kStrip columns, so that the temporary
// (K × kStrip) stays in L1 and can be copied back in place.
constexpr int kStrip = 64;

// y_i = Σ_b A[i][b] · x_b for the K blocks x_b (length P) of one row; `a` includes 1/√n.
template <typename T>
void mix_blocks(T* row, const T* a, int K, int P, T* tmp) {
  constexpr int kTileRows = 4, kTileCols = 2 * kLanes<T>;
  const int width = std::min(P, kStrip);
  for (int t0 = 0; t0 < P; t0 += width) {
    const T* x = row + t0;
    int c = 0;
    for (; c + kTileCols <= width; c += kTileCols) {
      int i = 0;
      for (; i + kTileRows <= K; i += kTileRows) {
        mix_tile<T, kTileRows>(a + size_t(i) * K, K, x + c, P, tmp + size_t(i) * width + c, width);
      }
      for (; i < K; ++i)
        mix_tile<T, 1>(a + size_t(i) * K, K, x + c, P, tmp + size_t(i) * width + c, width);
    }
    for (; c < width; ++c) mix_column(a, K, x + c, P, tmp + c, width, K);
    for (int r = 0; r < K; ++r) {
      std::copy(tmp + size_t(r) * width, tmp + size_t(r + 1) * width, row + size_t(r) * P + t0);
    }
  }
}

template <typename T>
void apply_rows(const Plan& p, const std::vector<double>& a_double, T* x, int rows) {
  if (rows < 0) fail("hadamard", "negative row count {}", rows);
  if (rows == 0) return;
  const int n = p.n, K = p.K, P = p.pow2;
  const double inv_sqrt_n = 1.0 / std::sqrt(double(n));
  std::vector<T> a(a_double.size());  // A_K / √n in the working precision
  for (size_t i = 0; i < a.size(); ++i) a[i] = T(a_double[i] * inv_sqrt_n);

#pragma omp parallel if (rows > 1)
  {
    std::vector<T> tmp(K > 1 ? size_t(K) * std::min(P, kStrip) : 0);
#pragma omp for schedule(static)
    for (int r = 0; r < rows; ++r) {
      T* row = x + size_t(r) * n;
      for (int b = 0; b < K; ++b) fwht(row + size_t(b) * P, P);
      if (K == 1) {
        for (int i = 0; i < n; ++i) row[i] *= T(inv_sqrt_n);
      } else {
        mix_blocks(row, a.data(), K, P, tmp.data());
      }
    }
  }
}

}  // namespace

Transform::Transform(Plan p) : plan_(std::move(p)) {
  if (plan_.K < 1 || !detail::is_pow2(plan_.pow2) ||
      size_t(plan_.K) * plan_.pow2 != size_t(plan_.n)) {
    fail("hadamard", "invalid plan: n = {}, K = {}, pow2 = {}", plan_.n, plan_.K, plan_.pow2);
  }
  a_ = factor_matrix(plan_);
  const int K = plan_.K;
  at_.resize(a_.size());
  for (int i = 0; i < K; ++i)
    for (int j = 0; j < K; ++j) at_[size_t(j) * K + i] = a_[size_t(i) * K + j];
}

void Transform::apply(float* x, int rows) const {
  apply_rows(plan_, a_, x, rows);
}
void Transform::apply(double* x, int rows) const {
  apply_rows(plan_, a_, x, rows);
}
// The Sylvester factor is symmetric, so only the K×K mix changes.
void Transform::apply_transposed(float* x, int rows) const {
  apply_rows(plan_, at_, x, rows);
}

}  // namespace quad::hadamard
