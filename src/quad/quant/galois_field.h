// Arithmetic in the finite field GF(q), q = p^k an odd prime power, for the Paley Hadamard
// constructions (QUAD-SPEC §3.8). An element is encoded as an integer in [0, q) whose base-p
// digits are the coefficients (lowest first) of a polynomial of degree < k; products are reduced
// modulo the first monic irreducible polynomial of degree k in lexicographic order, so the field
// and everything built from it are deterministic.
#pragma once

#include <optional>
#include <vector>

namespace quad::gf {

struct PrimePower {
  int p = 0;  // the prime
  int k = 0;  // the exponent, >= 1
};

// q = p^k with p prime and k >= 1, or nullopt (also for q < 2).
std::optional<PrimePower> prime_power(int q);

class Field {
 public:
  // Throws quad::Error if q is not a prime power.
  explicit Field(int q);

  int order() const { return q_; }
  int characteristic() const { return p_; }
  int degree() const { return k_; }
  // Coefficients c_0..c_k of the reducing polynomial (c_k = 1); {0, 1} (x) when k = 1.
  const std::vector<int>& modulus() const { return modulus_; }

  int add(int a, int b) const;
  int sub(int a, int b) const;
  int mul(int a, int b) const;

  // chi[x] for every element x: 0 for x = 0, +1 for a nonzero square, -1 for a non-square.
  std::vector<int> quadratic_character() const;

 private:
  std::vector<int> digits(int a) const;
  int encode(const std::vector<int>& digits) const;

  int p_ = 0;
  int k_ = 0;
  int q_ = 0;
  std::vector<int> modulus_;
};

}  // namespace quad::gf
