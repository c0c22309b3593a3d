// Seeded randomness: Gaussian deviates, random orthogonal matrices, random-sign Hadamards.
#include <cmath>
#include <numbers>

#include "quad/core/error.h"
#include "quad/quant/hadamard.h"
#include "quad/quant/hadamard_internal.h"

namespace quad::hadamard {
namespace detail {

double gaussian(std::mt19937_64& rng) {
  constexpr double kUnit = 1.0 / 9007199254740992.0;    // 2^-53
  const double u1 = double((rng() >> 11) + 1) * kUnit;  // (0, 1]: log stays finite
  const double u2 = double(rng() >> 11) * kUnit;        // [0, 1)
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

std::vector<double> random_orthogonal(int K, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const size_t k = size_t(K);
  std::vector<double> g(k * k);  // row-major, drawn row by row
  for (double& v : g) v = gaussian(rng);

  // Householder QR: reflector v_j overwrites column j of g from the diagonal down; diag(R) is
  // recorded to fix the signs of Q's columns afterwards.
  std::vector<double> v_norm2(k), r_diag(k);
  for (size_t j = 0; j < k; ++j) {
    double norm2 = 0;
    for (size_t i = j; i < k; ++i) norm2 += g[i * k + j] * g[i * k + j];
    const double norm = std::sqrt(norm2);
    const double x0 = g[j * k + j];
    const double alpha = x0 >= 0 ? -norm : norm;  // avoids cancellation in x0 − alpha
    r_diag[j] = alpha;
    const double head = x0 - alpha;
    const double vnorm2 = norm2 - x0 * x0 + head * head;
    v_norm2[j] = vnorm2;
    if (vnorm2 == 0) continue;  // zero column: identity reflector
    g[j * k + j] = head;
    for (size_t c = j + 1; c < k; ++c) {
      double dot = 0;
      for (size_t i = j; i < k; ++i) dot += g[i * k + j] * g[i * k + c];
      const double f = 2.0 * dot / vnorm2;
      for (size_t i = j; i < k; ++i) g[i * k + c] -= f * g[i * k + j];
    }
  }

  // Q = H_0 · H_1 ⋯ H_{K−1} · I, applied right to left.
  std::vector<double> q(k * k, 0.0);
  for (size_t i = 0; i < k; ++i) q[i * k + i] = 1.0;
  for (size_t jj = k; jj-- > 0;) {
    const double vnorm2 = v_norm2[jj];
    if (vnorm2 == 0) continue;
    for (size_t c = 0; c < k; ++c) {
      double dot = 0;
      for (size_t i = jj; i < k; ++i) dot += g[i * k + jj] * q[i * k + c];
      const double f = 2.0 * dot / vnorm2;
      for (size_t i = jj; i < k; ++i) q[i * k + c] -= f * g[i * k + jj];
    }
  }
  // Q ← Q · diag(sign(diag R)) makes the decomposition unique (and Q Haar-distributed).
  for (size_t c = 0; c < k; ++c) {
    if (r_diag[c] < 0) {
      for (size_t i = 0; i < k; ++i) q[i * k + c] = -q[i * k + c];
    }
  }
  return q;
}

}  // namespace detail

std::vector<double> random_hadamard(int n, uint64_t seed) {
  if (n <= 0) fail("hadamard", "Hadamard size must be positive, got {}", n);
  const std::vector<double> h = dense(plan(n));
  std::mt19937_64 rng(seed);
  std::vector<double> signs(n);
  for (double& s : signs) s = (rng() >> 63) ? -1.0 : 1.0;
  // R = D·Hᵀ: R[i][j] = d_i · H[j][i].
  const size_t m = size_t(n);
  std::vector<double> r(m * m);
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < m; ++j) r[i * m + j] = signs[i] * h[j * m + i];
  }
  return r;
}

}  // namespace quad::hadamard
