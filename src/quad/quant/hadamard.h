// Hadamard matrices and transforms (QUAD-SPEC §3.7–3.8, DESIGN §3).
//
// A normalized Hadamard-type transform of size n is H_n = (A_K ⊗ S_{n/K}) / √n where S_{2^k} is
// the ±1 Sylvester matrix (natural order) and A_K a K×K matrix with A_K·A_Kᵀ = K·I. A vector of
// length n is viewed as a K × (n/K) row-major array: A_K mixes the outer (slow) index and the
// Sylvester transform the inner one. Applying the transform to a row vector x computes x·H_nᵀ.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace quad::hadamard {

// A ±1 Hadamard matrix of order K (row-major, K×K, H·Hᵀ = K·I) built by Sylvester (K a power of
// two), Paley I (K = q + 1, q ≡ 3 mod 4 a prime power), Paley II (K = 2(q + 1), q ≡ 1 mod 4 a
// prime power), or a Kronecker product of a smaller construction with S_2; nullopt if none of
// these gives order K. Deterministic.
std::optional<std::vector<int8_t>> construct(int K);
// Which construction construct(K) uses ("sylvester", "paley1(q=11)", ...), or "" if none.
std::string construction_name(int K);

// How a size n is split: n = K · 2^k.
struct Plan {
  int n = 0;
  int K = 1;              // the non-power-of-two factor (1 when n is a power of two)
  int pow2 = 0;           // n / K
  bool fallback = false;  // no ±1 Hadamard of order K: A_K is a seeded random orthogonal matrix
                          // scaled by √K (logged once, DESIGN §3)
  std::string describe() const;  // e.g. "12 (paley1(q=11)) ⊗ Sylvester 128"
};

// Chooses K for n: the spec's preference list (172, 156, 140, 108, 60, 52, 36, 28, then
// 40, 24, 20, 12, the last four only when head_num is 0 or equals K) restricted to orders we can
// construct, then any constructible K = n / 2^j (largest power of two first), else the odd part
// of n with the fallback. Throws quad::Error for n <= 0.
Plan plan(int n, int head_num = 0);

// The K×K factor A_K of a plan as doubles (±1 entries, or √K × random orthogonal for a fallback,
// drawn from a fixed seed so the offline and online halves agree).
std::vector<double> factor_matrix(const Plan& p);

// The dense normalized n×n matrix H_n (row-major), for offline weight transforms and tests.
std::vector<double> dense(const Plan& p);

// The fast in-place transform x ← x·H_nᵀ for every row of x (rows × n): a fast Walsh–Hadamard
// transform on the inner index and a dense K×K multiply on the outer one, scaled by 1/√n.
class Transform {
 public:
  explicit Transform(Plan p);
  const Plan& plan() const { return plan_; }
  void apply(float* x, int rows) const;
  void apply(double* x, int rows) const;
  // x ← x·H_n for every row: the transpose, i.e. the backward pass of apply (H_n is orthogonal,
  // so this is also its inverse). Differs from apply only when A_K is not symmetric.
  void apply_transposed(float* x, int rows) const;

 private:
  Plan plan_;
  std::vector<double> a_;   // A_K (K×K)
  std::vector<double> at_;  // A_Kᵀ
};

// A random-sign Hadamard rotation R = D·H_nᵀ (D diagonal ±1 drawn from `seed`), as a dense
// orthogonal n×n matrix, row-major (QUAD-SPEC §3.7a).
std::vector<double> random_hadamard(int n, uint64_t seed);

}  // namespace quad::hadamard
