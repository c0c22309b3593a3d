// Helpers shared by the hadamard_*.cpp files; not part of the public interface.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace quad::hadamard::detail {

inline bool is_pow2(long long v) {
  return v > 0 && (v & (v - 1)) == 0;
}

// How construct(K) builds order K; kind None when no construction reaches K.
struct Recipe {
  enum class Kind { None, Sylvester, Paley1, Paley2, Doubling };
  Kind kind = Kind::None;
  int q = 0;  // the field order for Paley I / II
};
Recipe recipe(int K);

// Sylvester entry S[i][j] = (-1)^popcount(i & j) (natural order).
inline int sylvester_entry(int i, int j) {
  return (__builtin_popcount(unsigned(i & j)) & 1) ? -1 : 1;
}

// A standard normal deviate by Box–Muller from two 53-bit uniforms (std::normal_distribution
// is implementation-defined; this is the same on every build).
double gaussian(std::mt19937_64& rng);

// A Haar-distributed random orthogonal K×K matrix (row-major): Q of the QR decomposition of a
// K×K Gaussian matrix drawn from `seed`, with column signs fixed so that diag(R) > 0.
std::vector<double> random_orthogonal(int K, uint64_t seed);

}  // namespace quad::hadamard::detail
