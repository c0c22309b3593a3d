#include "quad/quant/galois_field.h"

#include "quad/core/error.h"

namespace quad::gf {
namespace {

// Remainder of f modulo the monic polynomial g over Z_p (coefficients lowest first).
std::vector<int> poly_mod(std::vector<int> f, const std::vector<int>& g, int p) {
  const int dg = static_cast<int>(g.size()) - 1;
  for (int i = static_cast<int>(f.size()) - 1; i >= dg; --i) {
    const int c = f[i];
    if (c == 0) continue;
    for (int j = 0; j <= dg; ++j) f[i - dg + j] = ((f[i - dg + j] - c * g[j]) % p + p) % p;
  }
  f.resize(dg);
  return f;
}

// The monic polynomial of degree `degree` whose lower coefficients are the base-p digits of
// `index`.
std::vector<int> monic_from_index(int index, int degree, int p) {
  std::vector<int> g(degree + 1, 0);
  for (int i = 0; i < degree; ++i, index /= p) g[i] = index % p;
  g[degree] = 1;
  return g;
}

int int_pow(int base, int exp) {
  int r = 1;
  for (int i = 0; i < exp; ++i) r *= base;
  return r;
}

// f (monic, degree k) is irreducible iff no monic polynomial of degree 1..k/2 divides it.
bool irreducible(const std::vector<int>& f, int p) {
  const int k = static_cast<int>(f.size()) - 1;
  for (int d = 1; d <= k / 2; ++d) {
    for (int index = 0, count = int_pow(p, d); index < count; ++index) {
      const std::vector<int> rem = poly_mod(f, monic_from_index(index, d, p), p);
      bool zero = true;
      for (int c : rem) zero = zero && c == 0;
      if (zero) return false;
    }
  }
  return true;
}

}  // namespace

std::optional<PrimePower> prime_power(int q) {
  if (q < 2) return std::nullopt;
  int p = q;
  for (int d = 2; d <= q / d; ++d) {
    if (q % d == 0) {
      p = d;
      break;
    }
  }
  int k = 0;
  for (int r = q; r > 1; r /= p, ++k) {
    if (r % p != 0) return std::nullopt;
  }
  return PrimePower{p, k};
}

Field::Field(int q) {
  const auto pk = prime_power(q);
  if (!pk) fail("hadamard", "GF({}) does not exist: {} is not a prime power", q, q);
  p_ = pk->p;
  k_ = pk->k;
  q_ = q;
  if (k_ == 1) {
    modulus_ = {0, 1};
    return;
  }
  // Lower coefficients as a base-p number: the search order is deterministic.
  for (int index = 0; index < q_; ++index) {
    std::vector<int> f = monic_from_index(index, k_, p_);
    if (f[0] != 0 && irreducible(f, p_)) {
      modulus_ = std::move(f);
      return;
    }
  }
  fail("hadamard", "no irreducible polynomial of degree {} over GF({})", k_, p_);  // unreachable
}

std::vector<int> Field::digits(int a) const {
  std::vector<int> d(k_);
  for (int i = 0; i < k_; ++i, a /= p_) d[i] = a % p_;
  return d;
}

int Field::encode(const std::vector<int>& d) const {
  int a = 0;
  for (int i = k_ - 1; i >= 0; --i) a = a * p_ + d[i];
  return a;
}

int Field::add(int a, int b) const {
  if (k_ == 1) return (a + b) % p_;
  std::vector<int> da = digits(a), db = digits(b);
  for (int i = 0; i < k_; ++i) da[i] = (da[i] + db[i]) % p_;
  return encode(da);
}

int Field::sub(int a, int b) const {
  if (k_ == 1) return (a - b + p_) % p_;
  std::vector<int> da = digits(a), db = digits(b);
  for (int i = 0; i < k_; ++i) da[i] = (da[i] - db[i] + p_) % p_;
  return encode(da);
}

int Field::mul(int a, int b) const {
  if (k_ == 1) return static_cast<int>(static_cast<long long>(a) * b % p_);
  const std::vector<int> da = digits(a), db = digits(b);
  std::vector<int> prod(2 * k_ - 1, 0);
  for (int i = 0; i < k_; ++i) {
    for (int j = 0; j < k_; ++j) prod[i + j] = (prod[i + j] + da[i] * db[j]) % p_;
  }
  return encode(poly_mod(std::move(prod), modulus_, p_));
}

std::vector<int> Field::quadratic_character() const {
  std::vector<int> chi(q_, -1);
  chi[0] = 0;
  for (int x = 1; x < q_; ++x) chi[mul(x, x)] = 1;
  return chi;
}

}  // namespace quad::gf
