// Choosing the factorization n = K · 2^k and building the K×K factor and the dense H_n.
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>

#include "quad/core/error.h"
#include "quad/quant/hadamard.h"
#include "quad/quant/hadamard_internal.h"

namespace quad::hadamard {
namespace {

// The orders QuaRot/QUAD tabulate, in get_hadK's order; the second group only when head_num
// is unspecified or equals K (QUAD-SPEC §3.8).
constexpr int kPreferred[] = {172, 156, 140, 108, 60, 52, 36, 28};
constexpr int kHeadOrders[] = {40, 24, 20, 12};

// The fallback factor's seed; fixed so that the offline and online halves build the same matrix.
constexpr uint64_t kFallbackSeed = 0x5155414448414441ull;  // "QUADHADA"

bool constructible(int K) {
  return detail::recipe(K).kind != detail::Recipe::Kind::None;
}

Plan make_plan(int n, int K, bool fallback) {
  Plan p;
  p.n = n;
  p.K = K;
  p.pow2 = n / K;
  p.fallback = fallback;
  return p;
}

void log_fallback_once(int K, int n) {
  static std::mutex mutex;
  static std::set<int> logged;
  std::lock_guard lock(mutex);
  if (!logged.insert(K).second) return;
  std::fprintf(stderr,
               "hadamard: no Hadamard matrix of order %d; using a seeded random orthogonal %dx%d "
               "factor (block mixing), n = %d\n",
               K, K, K, n);
}

// Random orthogonal factors are O(K³) to build: keep them for later Transforms of the same K.
std::vector<double> fallback_factor(int K) {
  static std::mutex mutex;
  static std::map<int, std::vector<double>> cache;
  std::lock_guard lock(mutex);
  auto it = cache.find(K);
  if (it == cache.end()) {
    std::vector<double> a = detail::random_orthogonal(K, kFallbackSeed + uint64_t(K));
    const double root_k = std::sqrt(double(K));
    for (double& v : a) v *= root_k;
    it = cache.emplace(K, std::move(a)).first;
  }
  return it->second;
}

}  // namespace

std::string Plan::describe() const {
  std::string outer;
  if (K > 1) {
    outer = fmt::format("{} ({})", K,
                        fallback ? "seeded random orthogonal, fallback" : construction_name(K));
  }
  if (outer.empty()) return fmt::format("Sylvester {}", pow2);
  if (pow2 == 1) return outer;
  return fmt::format("{} ⊗ Sylvester {}", outer, pow2);
}

Plan plan(int n, int head_num) {
  if (n <= 0) fail("hadamard", "Hadamard size must be positive, got {}", n);
  if (head_num < 0) fail("hadamard", "head count must be >= 0, got {}", head_num);
  auto fits = [n](int K) { return n % K == 0 && detail::is_pow2(n / K) && constructible(K); };
  for (int K : kPreferred) {
    if (fits(K)) return make_plan(n, K, false);
  }
  for (int K : kHeadOrders) {
    if ((head_num == 0 || head_num == K) && fits(K)) return make_plan(n, K, false);
  }
  int odd = n;
  while (odd % 2 == 0) odd /= 2;
  // K = odd · 2^i for growing i, i.e. the largest power-of-two quotient first.
  for (long long K = odd; K <= n; K *= 2) {
    if (constructible(int(K))) return make_plan(n, int(K), false);
  }
  log_fallback_once(odd, n);
  return make_plan(n, odd, true);
}

std::vector<double> factor_matrix(const Plan& p) {
  if (p.K < 1) fail("hadamard", "invalid plan: K = {}", p.K);
  if (p.fallback) return fallback_factor(p.K);
  const auto h = construct(p.K);
  if (!h) fail("hadamard", "no Hadamard matrix of order {} (plan for n = {})", p.K, p.n);
  return std::vector<double>(h->begin(), h->end());
}

std::vector<double> dense(const Plan& p) {
  if (p.K < 1 || p.pow2 < 1 || !detail::is_pow2(p.pow2) || size_t(p.K) * p.pow2 != size_t(p.n)) {
    fail("hadamard", "invalid plan: n = {}, K = {}, pow2 = {}", p.n, p.K, p.pow2);
  }
  const std::vector<double> a = factor_matrix(p);
  const size_t n = size_t(p.n), P = size_t(p.pow2);
  const double scale = 1.0 / std::sqrt(double(p.n));
  // H[(a·P + s), (b·P + t)] = A[a][b] · S[s][t] / √n.
  std::vector<double> h(n * n);
  for (size_t r = 0; r < n; ++r) {
    for (size_t c = 0; c < n; ++c) {
      h[r * n + c] =
          a[(r / P) * p.K + c / P] * detail::sylvester_entry(int(r % P), int(c % P)) * scale;
    }
  }
  return h;
}

}  // namespace quad::hadamard
