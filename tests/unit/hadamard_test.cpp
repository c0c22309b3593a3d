#include "quad/quant/hadamard.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "quad/backend/backend.h"
#include "quad/core/error.h"
#include "quad/quant/galois_field.h"
#include "quad/quant/online_transforms.h"

namespace quad::hadamard {
namespace {

bool is_pow2(int v) {
  return v > 0 && (v & (v - 1)) == 0;
}

// Exact check H·Hᵀ = K·I for a ±1 matrix.
void expect_hadamard(const std::vector<int8_t>& h, int K) {
  ASSERT_EQ(h.size(), size_t(K) * K);
  for (int8_t v : h) ASSERT_TRUE(v == 1 || v == -1) << "K = " << K;
  for (int i = 0; i < K; ++i) {
    for (int j = i; j < K; ++j) {
      int dot = 0;
      for (int c = 0; c < K; ++c) dot += h[size_t(i) * K + c] * h[size_t(j) * K + c];
      ASSERT_EQ(dot, i == j ? K : 0) << "K = " << K << ", rows " << i << ", " << j;
    }
  }
}

// max |M·Mᵀ − I| for a row-major n×n matrix.
double orthogonality_error(const std::vector<double>& m, int n) {
  double err = 0;
  for (int i = 0; i < n; ++i) {
    for (int j = i; j < n; ++j) {
      double dot = 0;
      for (int c = 0; c < n; ++c) dot += m[size_t(i) * n + c] * m[size_t(j) * n + c];
      err = std::max(err, std::abs(dot - (i == j ? 1.0 : 0.0)));
    }
  }
  return err;
}

std::vector<double> random_rows(int rows, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> x(size_t(rows) * n);
  for (double& v : x) v = double(rng() >> 11) / 9007199254740992.0 * 2.0 - 1.0;  // (−1, 1)
  return x;
}

// y = x·Dᵀ, computed naively.
std::vector<double> naive_apply(const std::vector<double>& x, const std::vector<double>& d,
                                int rows, int n) {
  std::vector<double> y(size_t(rows) * n, 0.0);
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < n; ++i) {
      double s = 0;
      for (int c = 0; c < n; ++c) s += x[size_t(r) * n + c] * d[size_t(i) * n + c];
      y[size_t(r) * n + i] = s;
    }
  }
  return y;
}

// A plan with the fallback factor for an order that plan() would not pick itself.
Plan fallback_plan(int K, int pow2) {
  Plan p;
  p.n = K * pow2;
  p.K = K;
  p.pow2 = pow2;
  p.fallback = true;
  return p;
}

TEST(GaloisField, PrimePowers) {
  EXPECT_FALSE(gf::prime_power(1));
  EXPECT_FALSE(gf::prime_power(12));
  EXPECT_FALSE(gf::prime_power(171));
  auto pk = gf::prime_power(343);
  ASSERT_TRUE(pk);
  EXPECT_EQ(pk->p, 7);
  EXPECT_EQ(pk->k, 3);
  pk = gf::prime_power(139);
  ASSERT_TRUE(pk);
  EXPECT_EQ(pk->p, 139);
  EXPECT_EQ(pk->k, 1);
  EXPECT_THROW(gf::Field(15), Error);
}

// Field axioms that the search for the reducing polynomial must guarantee.
TEST(GaloisField, ExtensionFieldsAreFields) {
  for (int q : {9, 25, 27, 49, 81, 125}) {
    const gf::Field f(q);
    ASSERT_GT(f.degree(), 1);
    for (int a = 1; a < q; ++a) {
      int inverses = 0;
      for (int b = 1; b < q; ++b) inverses += f.mul(a, b) == 1;
      ASSERT_EQ(inverses, 1) << "GF(" << q << "): " << a << " has no unique inverse";
    }
    for (int a = 0; a < q; a += 3) {
      for (int b = 0; b < q; b += 2) {
        for (int c = 0; c < q; c += 5) {
          ASSERT_EQ(f.mul(a, f.add(b, c)), f.add(f.mul(a, b), f.mul(a, c)));
          ASSERT_EQ(f.mul(f.mul(a, b), c), f.mul(a, f.mul(b, c)));
        }
      }
    }
    const std::vector<int> chi = f.quadratic_character();
    int squares = 0;
    for (int v : chi) squares += v == 1;
    EXPECT_EQ(squares, (q - 1) / 2);
  }
}

TEST(HadamardConstruct, SpecOrdersAreHadamard) {
  for (int K : {1, 2, 4, 8, 12, 20, 24, 28, 36, 40, 52, 60, 108, 140}) {
    const auto h = construct(K);
    ASSERT_TRUE(h) << "K = " << K;
    expect_hadamard(*h, K);
  }
  EXPECT_EQ(construction_name(1), "sylvester");
  EXPECT_EQ(construction_name(64), "sylvester");
  EXPECT_EQ(construction_name(12), "paley1(q=11)");
  EXPECT_EQ(construction_name(28), "paley1(q=27)");  // GF(3^3)
  EXPECT_EQ(construction_name(36), "paley2(q=17)");
  EXPECT_EQ(construction_name(40), "S2⊗paley1(q=19)");
  EXPECT_EQ(construction_name(52), "paley2(q=25)");  // GF(5^2)
  EXPECT_EQ(construction_name(140), "paley1(q=139)");
}

// Every order up to 256 that any construction reaches, plus two from large extension fields.
TEST(HadamardConstruct, AllConstructibleOrdersAreHadamard) {
  std::set<int> built;
  for (int K = 1; K <= 256; ++K) {
    const auto h = construct(K);
    EXPECT_EQ(h.has_value(), !construction_name(K).empty()) << "K = " << K;
    if (!h) continue;
    built.insert(K);
    expect_hadamard(*h, K);
  }
  // Paley I over GF(7^3) and GF(3^5)... 244 = 3^5 + 1.
  EXPECT_EQ(construction_name(344), "paley1(q=343)");
  expect_hadamard(*construct(344), 344);
  EXPECT_EQ(construction_name(244), "paley1(q=243)");
  EXPECT_EQ(construction_name(100), "paley2(q=49)");
  // Multiples of 4 up to 256 that none of the constructions reach.
  const std::set<int> missing = {92, 116, 156, 172, 184, 188, 232, 236};
  for (int K = 4; K <= 256; K += 4) EXPECT_EQ(built.count(K) == 0, missing.count(K) == 1) << K;
  // No ±1 Hadamard matrix exists for other orders.
  for (int K : {3, 6, 10, 11, 14, 22, 43}) EXPECT_FALSE(construct(K)) << K;
}

TEST(HadamardConstruct, Deterministic) {
  EXPECT_EQ(*construct(52), *construct(52));
}

TEST(HadamardPlan, RejectsBadSizes) {
  EXPECT_THROW(plan(0), Error);
  EXPECT_THROW(plan(-3), Error);
  EXPECT_THROW(plan(64, -1), Error);
  try {
    plan(0);
  } catch (const Error& e) {
    EXPECT_EQ(e.module(), "hadamard");
  }
}

void expect_valid(const Plan& p, int n) {
  EXPECT_EQ(p.n, n);
  EXPECT_EQ(size_t(p.K) * p.pow2, size_t(n)) << n;
  EXPECT_TRUE(is_pow2(p.pow2)) << n;
  EXPECT_EQ(p.fallback, !construct(p.K).has_value()) << n;
}

TEST(HadamardPlan, SpecTableSizes) {
  struct Case {
    int n, head_num, K;
  };
  // QUAD-SPEC §3.8, where the spec's K is constructible.
  const Case cases[] = {{4096, 0, 1},    {14336, 0, 28}, {5120, 0, 40},  {5120, 40, 40},
                        {13824, 0, 108}, {3072, 0, 24},  {3072, 24, 24}, {1536, 0, 24},
                        {1536, 12, 12},  {8960, 0, 140}, {3584, 0, 28},  {8192, 0, 1},
                        {2048, 0, 1},    {32, 0, 1},     {24, 0, 24},    {12, 0, 12},
                        {40, 0, 40},     {28, 0, 28}};
  for (const Case& c : cases) {
    const Plan p = plan(c.n, c.head_num);
    expect_valid(p, c.n);
    EXPECT_EQ(p.K, c.K) << "n = " << c.n << ", head_num = " << c.head_num;
    EXPECT_FALSE(p.fallback);
  }
  EXPECT_EQ(plan(14336).describe(), "28 (paley1(q=27)) ⊗ Sylvester 512");
  EXPECT_EQ(plan(4096).describe(), "Sylvester 4096");
  // head_num restricts the last four orders: 1536 is 24 ⊗ 64 unless the heads ask for 12 ⊗ 128.
  EXPECT_EQ(plan(1536, 12).describe(), "12 (paley1(q=11)) ⊗ Sylvester 128");
  EXPECT_EQ(plan(1536, 16).K, 3 * 4);  // neither 24 nor 12 allowed: 3, 6 fail, 12 is first
  expect_valid(plan(1536, 16), 1536);
}

// 172 and 156 are not reachable; sizes built on them still get a valid factorization.
TEST(HadamardPlan, UnconstructibleSpecOrders) {
  EXPECT_FALSE(construct(172));
  EXPECT_FALSE(construct(156));
  EXPECT_EQ(construction_name(172), "");
  for (int n : {11008, 156 * 64, 172 * 64, 18944, 1408, 172, 156, 43, 22, 1}) {
    const Plan p = plan(n);
    expect_valid(p, n);
    EXPECT_NE(p.K, 172);
    EXPECT_NE(p.K, 156);
  }
  EXPECT_EQ(plan(11008).K, 344);  // 43·256: 43, 86, 172 fail, 344 = 7^3 + 1
  EXPECT_EQ(plan(1408).K, 44);    // 11·128: 11, 22 fail, 44 = 43 + 1
  EXPECT_EQ(plan(18944).K, 148);  // 37·512: 148 = 2(73 + 1)
  const Plan tiny = plan(172);    // stories260K's MLP: 43·4, nothing reaches 43, 86 or 172
  EXPECT_TRUE(tiny.fallback);
  EXPECT_EQ(tiny.K, 43);
  EXPECT_EQ(tiny.pow2, 4);
}

TEST(HadamardPlan, FallbackIsLoggedOncePerOrder) {
  testing::internal::CaptureStderr();
  const Plan p = plan(77 * 2);  // no Hadamard of order 77 or 154
  plan(77 * 2);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(p.fallback);
  EXPECT_EQ(p.K, 77);
  EXPECT_EQ(err,
            "hadamard: no Hadamard matrix of order 77; using a seeded random orthogonal 77x77 "
            "factor (block mixing), n = 154\n");
  EXPECT_NE(p.describe().find("fallback"), std::string::npos);
}

TEST(HadamardDense, Orthogonal) {
  std::vector<Plan> plans;
  for (int n : {1, 2, 8, 12, 48, 28 * 4, 40 * 2, 52, 64, 172, 154}) plans.push_back(plan(n));
  plans.push_back(fallback_plan(11, 16));
  plans.push_back(fallback_plan(3, 1));
  for (const Plan& p : plans) {
    EXPECT_LT(orthogonality_error(dense(p), p.n), 1e-12) << p.describe();
  }
}

TEST(HadamardDense, FallbackFactorIsDeterministicAndScaled) {
  const Plan p = fallback_plan(11, 128);
  const std::vector<double> a = factor_matrix(p), b = factor_matrix(p);
  EXPECT_EQ(a, b);
  std::vector<double> normalized(a);
  for (double& v : normalized) v /= std::sqrt(11.0);
  EXPECT_LT(orthogonality_error(normalized, 11), 1e-12);
  // A genuinely mixing matrix, not ±identity.
  int off_diagonal = 0;
  for (int i = 0; i < 11; ++i) {
    for (int j = 0; j < 11; ++j) off_diagonal += i != j && std::abs(a[i * 11 + j]) > 1e-3;
  }
  EXPECT_GT(off_diagonal, 100);
}

TEST(HadamardDense, SylvesterIsSymmetric) {
  const std::vector<double> h = dense(plan(64));
  for (int i = 0; i < 64; ++i) {
    for (int j = 0; j < 64; ++j) {
      EXPECT_EQ(h[i * 64 + j], h[j * 64 + i]);
      EXPECT_EQ(std::abs(h[i * 64 + j]), 0.125);
    }
  }
}

template <typename T>
double apply_error(const Plan& p, const std::vector<double>& d, int rows, uint64_t seed) {
  const std::vector<double> x = random_rows(rows, p.n, seed);
  const std::vector<double> want = naive_apply(x, d, rows, p.n);
  std::vector<T> y(x.begin(), x.end());
  Transform(p).apply(y.data(), rows);
  double err = 0;
  for (size_t i = 0; i < y.size(); ++i) err = std::max(err, std::abs(double(y[i]) - want[i]));
  return err;
}

TEST(HadamardTransform, MatchesDense) {
  std::vector<Plan> plans;
  for (int n : {8, 12 * 16, 1408, 1536, 28 * 32, 172, 40 * 4}) plans.push_back(plan(n));
  plans.push_back(fallback_plan(11, 128));  // tiny-qwen2's 1408 with the odd factor alone
  uint64_t seed = 1;
  for (const Plan& p : plans) {
    const std::vector<double> d = dense(p);
    for (int rows : {1, 3, 7}) {
      EXPECT_LT(apply_error<float>(p, d, rows, seed++), 1e-5) << p.describe() << ", rows " << rows;
      EXPECT_LT(apply_error<double>(p, d, rows, seed++), 1e-12)
          << p.describe() << ", rows " << rows;
    }
  }
}

TEST(HadamardTransform, ZeroRowsIsANoOp) {
  float x = 1.0f;
  Transform(plan(8)).apply(&x, 0);
  EXPECT_EQ(x, 1.0f);
}

TEST(HadamardTransform, SylvesterIsInvolutory) {
  for (int n : {1, 2, 64, 4096}) {
    const Transform t(plan(n));
    const std::vector<double> x = random_rows(5, n, 42);
    std::vector<double> y(x);
    t.apply(y.data(), 5);
    if (n > 1) {
      EXPECT_NE(y, x);
    }
    t.apply(y.data(), 5);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(y[i], x[i], 1e-13) << n;
  }
}

TEST(HadamardTransform, PreservesNormForLargeSizes) {
  for (int n : {14336, 11008, 18944}) {
    const std::vector<double> x = random_rows(3, n, 7);
    std::vector<float> y(x.begin(), x.end());
    Transform(plan(n)).apply(y.data(), 3);
    for (int r = 0; r < 3; ++r) {
      double nx = 0, ny = 0;
      for (int i = 0; i < n; ++i) {
        nx += x[size_t(r) * n + i] * x[size_t(r) * n + i];
        ny += double(y[size_t(r) * n + i]) * y[size_t(r) * n + i];
      }
      EXPECT_NEAR(ny / nx, 1.0, 1e-5) << n;
    }
  }
}

TEST(RandomHadamard, OrthogonalAndSeeded) {
  for (int n : {64, 12, 40}) {
    const std::vector<double> a = random_hadamard(n, 1), b = random_hadamard(n, 2);
    EXPECT_LT(orthogonality_error(a, n), 1e-12);
    EXPECT_LT(orthogonality_error(b, n), 1e-12);
    EXPECT_NE(a, b);
    EXPECT_EQ(a, random_hadamard(n, 1));
    // R = D·Hᵀ: every row of R is ± a column of H.
    const std::vector<double> h = dense(plan(n));
    for (int i = 0; i < n; ++i) {
      const double sign = a[size_t(i) * n] / h[i];
      EXPECT_EQ(std::abs(sign), 1.0);
      for (int j = 0; j < n; ++j) ASSERT_EQ(a[size_t(i) * n + j], sign * h[size_t(j) * n + i]);
    }
  }
  EXPECT_THROW(random_hadamard(0, 1), Error);
}

// The o_proj factor: H_{h·hd} = H_h ⊗ S_hd with the head factor on the slow index (§3.7c).
TEST(HadamardKronecker, HeadFactorization) {
  struct Case {
    int h, hd;
  };
  for (const Case c : {Case{12, 64}, Case{32, 128}, Case{8, 64}, Case{24, 128}, Case{40, 128},
                       Case{28, 128}, Case{20, 64}}) {
    const int n = c.h * c.hd;
    const Plan full = plan(n, c.h), head = plan(c.h), within = plan(c.hd);
    ASSERT_EQ(within.K, 1);
    EXPECT_EQ(full.K, head.K) << c.h;
    EXPECT_FALSE(full.fallback);

    // Apply-based check: Y = H_h · X · S_hdᵀ for each row viewed as an h×hd matrix X.
    const int rows = 3;
    const std::vector<double> x = random_rows(rows, n, uint64_t(n));
    std::vector<double> y(x), z(x), zt(size_t(rows) * n);
    Transform(full).apply(y.data(), rows);
    Transform(within).apply(z.data(), rows * c.h);  // each within-head vector
    for (int r = 0; r < rows; ++r) {
      for (int i = 0; i < c.h; ++i) {
        for (int j = 0; j < c.hd; ++j) {
          zt[size_t(r) * n + size_t(j) * c.h + i] = z[size_t(r) * n + size_t(i) * c.hd + j];
        }
      }
    }
    Transform(head).apply(zt.data(), rows * c.hd);  // mix across heads for each j
    for (int r = 0; r < rows; ++r) {
      for (int i = 0; i < c.h; ++i) {
        for (int j = 0; j < c.hd; ++j) {
          ASSERT_NEAR(y[size_t(r) * n + size_t(i) * c.hd + j],
                      zt[size_t(r) * n + size_t(j) * c.h + i], 1e-12)
              << c.h << "x" << c.hd;
        }
      }
    }

    // Dense check for the smaller sizes: H_n equals kron(H_h, S_hd) entry by entry.
    if (n > 1024) continue;
    const std::vector<double> hn = dense(full), hh = dense(head), hs = dense(within);
    for (int r = 0; r < n; ++r) {
      for (int col = 0; col < n; ++col) {
        const double want =
            hh[size_t(r / c.hd) * c.h + col / c.hd] * hs[size_t(r % c.hd) * c.hd + col % c.hd];
        ASSERT_NEAR(hn[size_t(r) * n + col], want, 1e-15) << c.h << "x" << c.hd;
      }
    }
  }
}

}  // namespace
}  // namespace quad::hadamard

namespace quad {
namespace {

// The Kronecker forms the backends run (Backend::kron_transform) are the online transforms:
// the reference backend's loops on them give apply()'s output to fp32 rounding, for a power of
// two, K·2^k sizes (12 · 128, Paley), a fallback factor (11 · 128) and the head mix.
TEST(OnlineTransformKron, MatchesApply) {
  auto ref = make_ref_backend();
  std::vector<std::unique_ptr<InputTransform>> transforms;
  for (int n : {64, 1536, 1408}) transforms.push_back(std::make_unique<HadamardInput>(n));
  transforms.push_back(std::make_unique<HeadMixInput>(8, 64));
  for (const auto& t : transforms) {
    SCOPED_TRACE(t->describe());
    const KronForm* k = t->kron_form();
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(t->kron_form(), k);  // built once
    const int rows = 3, width = k->outer * k->inner;
    std::mt19937 rng(5);
    std::normal_distribution<float> dist;
    std::vector<float> x(size_t(rows) * width);
    for (auto& v : x) v = dist(rng);
    std::vector<float> want = x, got = x;
    t->apply(want.data(), rows, width);
    ref->kron_transform(got.data(), rows, k->outer, k->a.data(), k->inner,
                        k->b.empty() ? nullptr : k->b.data());
    double err = 0;
    for (size_t i = 0; i < x.size(); ++i) err = std::max(err, double(std::fabs(got[i] - want[i])));
    EXPECT_LT(err, 1e-5);
  }
}

}  // namespace
}  // namespace quad
