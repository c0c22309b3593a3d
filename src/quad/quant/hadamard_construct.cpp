// ±1 Hadamard matrices of order K: Sylvester, Paley I, Paley II and doubling (QUAD-SPEC §3.8).
#include <fmt/format.h>

#include "quad/quant/galois_field.h"
#include "quad/quant/hadamard.h"
#include "quad/quant/hadamard_internal.h"

namespace quad::hadamard {
namespace detail {

Recipe recipe(int K) {
  using Kind = Recipe::Kind;
  if (K < 1) return {};
  if (is_pow2(K)) return {Kind::Sylvester, 0};
  if (K % 4 != 0) return {};  // every ±1 Hadamard order above 2 is a multiple of 4
  if (auto pk = gf::prime_power(K - 1); pk && (K - 1) % 4 == 3) return {Kind::Paley1, K - 1};
  if (auto pk = gf::prime_power(K / 2 - 1); pk && (K / 2 - 1) % 4 == 1) {
    return {Kind::Paley2, K / 2 - 1};
  }
  if (recipe(K / 2).kind != Kind::None) return {Kind::Doubling, 0};
  return {};
}

}  // namespace detail

namespace {

using Matrix = std::vector<int8_t>;

Matrix sylvester(int K) {
  Matrix h(size_t(K) * K);
  for (int i = 0; i < K; ++i) {
    for (int j = 0; j < K; ++j) h[size_t(i) * K + j] = int8_t(detail::sylvester_entry(i, j));
  }
  return h;
}

// K = q + 1, q ≡ 3 (mod 4): H = I + [[0, 1ᵀ], [-1, Q]] with Q[a][b] = χ(a − b). Q is
// antisymmetric because χ(−1) = −1, which makes H·Hᵀ = (q + 1)·I.
Matrix paley1(int q) {
  const gf::Field field(q);
  const std::vector<int> chi = field.quadratic_character();
  const int K = q + 1;
  Matrix h(size_t(K) * K);
  for (int j = 0; j < K; ++j) h[j] = 1;
  for (int a = 0; a < q; ++a) {
    int8_t* row = &h[size_t(a + 1) * K];
    row[0] = -1;
    for (int b = 0; b < q; ++b) row[b + 1] = int8_t(a == b ? 1 : chi[field.sub(a, b)]);
  }
  return h;
}

// K = 2(q + 1), q ≡ 1 (mod 4): the symmetric conference matrix C = [[0, 1ᵀ], [1, Q]] with
// every 0 replaced by [[1, −1], [−1, −1]] and every ±1 by ±[[1, 1], [1, −1]].
Matrix paley2(int q) {
  const gf::Field field(q);
  const std::vector<int> chi = field.quadratic_character();
  const int C = q + 1, K = 2 * C;
  auto conference = [&](int i, int j) {
    if (i == j) return 0;
    if (i == 0 || j == 0) return 1;
    return chi[field.sub(i - 1, j - 1)];
  };
  static constexpr int kZero[2][2] = {{1, -1}, {-1, -1}};
  static constexpr int kOne[2][2] = {{1, 1}, {1, -1}};
  Matrix h(size_t(K) * K);
  for (int i = 0; i < C; ++i) {
    for (int j = 0; j < C; ++j) {
      const int c = conference(i, j);
      for (int r = 0; r < 2; ++r) {
        for (int s = 0; s < 2; ++s) {
          h[size_t(2 * i + r) * K + 2 * j + s] = int8_t(c == 0 ? kZero[r][s] : c * kOne[r][s]);
        }
      }
    }
  }
  return h;
}

// S_2 ⊗ A = [[A, A], [A, −A]].
Matrix doubled(const Matrix& a, int half) {
  const int K = 2 * half;
  Matrix h(size_t(K) * K);
  for (int i = 0; i < K; ++i) {
    for (int j = 0; j < K; ++j) {
      const int8_t v = a[size_t(i % half) * half + j % half];
      h[size_t(i) * K + j] = (i >= half && j >= half) ? int8_t(-v) : v;
    }
  }
  return h;
}

}  // namespace

std::optional<std::vector<int8_t>> construct(int K) {
  using Kind = detail::Recipe::Kind;
  const detail::Recipe r = detail::recipe(K);
  switch (r.kind) {
    case Kind::Sylvester: return sylvester(K);
    case Kind::Paley1: return paley1(r.q);
    case Kind::Paley2: return paley2(r.q);
    case Kind::Doubling: return doubled(*construct(K / 2), K / 2);
    case Kind::None: break;
  }
  return std::nullopt;
}

std::string construction_name(int K) {
  using Kind = detail::Recipe::Kind;
  const detail::Recipe r = detail::recipe(K);
  switch (r.kind) {
    case Kind::Sylvester: return "sylvester";
    case Kind::Paley1: return fmt::format("paley1(q={})", r.q);
    case Kind::Paley2: return fmt::format("paley2(q={})", r.q);
    case Kind::Doubling: return "S2⊗" + construction_name(K / 2);
    case Kind::None: break;
  }
  return "";
}

}  // namespace quad::hadamard
