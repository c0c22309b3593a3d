// The op harness: every backend's ops against the reference backend on random inputs (never
// zeros) at odd shapes, compared by normalized error with a per-op tolerance.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "quad/backend/backend.h"
#include "quad/backend/memory.h"
#include "quad/quant/weight_quant.h"
#include "quad/tensor/dtype.h"
#include "test_support.h"

namespace quad {
namespace {

// ‖a − b‖² / ‖b‖²
double nmse(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += double(a[i] - b[i]) * (a[i] - b[i]);
    den += double(b[i]) * b[i];
  }
  return den > 0 ? num / den : num;
}

// fp32 GEMM/softmax accumulation vs the double-accumulating reference: 1e-10 NMSE is ~1e-5
// relative error, far above fp32 rounding over these lengths and far below any indexing bug.
constexpr double kTol = 1e-10;

class BackendOps : public ::testing::TestWithParam<std::string> {
 protected:
  // "cuda" is listed when compiled in; without a GPU it skips (tests/cuda covers it there).
  void SetUp() override {
    if (!backend_available(GetParam())) GTEST_SKIP() << GetParam() << " is not usable here";
    be = make_backend(GetParam());
  }
  std::unique_ptr<Backend> ref = make_ref_backend();
  std::unique_ptr<Backend> be;
};

TEST_P(BackendOps, Linear) {
  for (auto [n, in, out, bias] :
       {std::tuple{1, 37, 19, false}, {7, 64, 33, true}, {33, 129, 65, true}, {5, 3, 1, false}}) {
    auto x = test::random_normal(size_t(n) * in, 1), w = test::random_normal(size_t(out) * in, 2),
         b = test::random_normal(out, 3);
    std::vector<float> y0(size_t(n) * out), y1(size_t(n) * out, 7.0f);
    ref->linear(x.data(), n, in, w.data(), out, bias ? b.data() : nullptr, y0.data());
    be->linear(x.data(), n, in, w.data(), out, bias ? b.data() : nullptr, y1.data());
    EXPECT_LT(nmse(y1, y0), kTol) << n << "x" << in << "->" << out;
  }
}

// 16-bit weights (fp16, bf16): every backend against the reference's fp32 linear on the widened
// weights (the same products, so the fp32-GEMM tolerance), at the GEMV (n = 1) and blocked-GEMM
// paths, widths that leave 8- and 32-wide tails, and more rows than one 64-row tile. The cuda
// backend runs these on tensor cores with x rounded to the weights' type: its reference gets
// the same rounded x.
void expect_half_linear_matches(Backend& ref, Backend& be, bool bf16) {
  auto to16 = [bf16](float v) { return bf16 ? f32_to_bf16(v) : f32_to_f16(v); };
  auto from16 = [bf16](uint16_t h) { return bf16 ? bf16_to_f32(h) : f16_to_f32(h); };
  for (auto [n, in, out, bias] : {std::tuple{1, 37, 19, false},
                                  {1, 576, 300, true},
                                  {3, 64, 129, true},
                                  {130, 45, 70, false}}) {
    auto x = test::random_normal(size_t(n) * in, 11), w = test::random_normal(size_t(out) * in, 12);
    const auto b = test::random_normal(out, 13);
    std::vector<uint16_t> w16(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      w16[i] = to16(w[i]);
      w[i] = from16(w16[i]);
    }
    std::vector<float> x_ref = x;
    if (be.name() == "cuda")
      for (float& v : x_ref) v = from16(to16(v));
    std::vector<float> y0(size_t(n) * out), y1(size_t(n) * out, 7.0f);
    ref.linear(x_ref.data(), n, in, w.data(), out, bias ? b.data() : nullptr, y0.data());
    if (bf16)
      be.linear_bf16(x.data(), n, in, w16.data(), out, bias ? b.data() : nullptr, y1.data());
    else
      be.linear_f16(x.data(), n, in, w16.data(), out, bias ? b.data() : nullptr, y1.data());
    EXPECT_LT(nmse(y1, y0), kTol) << n << "x" << in << "->" << out;
  }
}

TEST_P(BackendOps, LinearF16) {
  expect_half_linear_matches(*ref, *be, false);
}

TEST_P(BackendOps, LinearBf16) {
  expect_half_linear_matches(*ref, *be, true);
}

// The outlier part of a QUAD layer: fp16 weights, x at fp32 precision on every backend (cuda's
// linear_f16 would round x to fp16: NMSE ~1e-8 here, against ~1e-14 for the fp16 pair).
TEST_P(BackendOps, OutlierLinearF16KeepsTheInputPrecise) {
  for (auto [n, in, out] : {std::tuple{1, 16, 70}, {5, 64, 129}, {130, 37, 64}}) {
    const auto x = test::random_normal(size_t(n) * in, 21);
    auto w = test::random_normal(size_t(out) * in, 22);
    std::vector<uint16_t> w16(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      w16[i] = f32_to_f16(w[i]);
      w[i] = f16_to_f32(w16[i]);
    }
    std::vector<float> y0(size_t(n) * out), y1(size_t(n) * out, 7.0f);
    ref->linear(x.data(), n, in, w.data(), out, nullptr, y0.data());
    be->outlier_linear_f16(x.data(), n, in, w16.data(), out, y1.data());
    EXPECT_LT(nmse(y1, y0), 1e-11) << n << "x" << in << "->" << out;
  }
}

TEST_P(BackendOps, RmsNorm) {
  for (auto [n, width, divisor, weighted] :
       {std::tuple{1, 64, 64, true}, {9, 71, 71, true}, {4, 72, 64, false}}) {
    auto x = test::random_normal(size_t(n) * width, 4, 3.0f), w = test::random_normal(width, 5);
    std::vector<float> y0(x.size()), y1(x.size());
    ref->rmsnorm(x.data(), n, width, weighted ? w.data() : nullptr, divisor, 1e-5f, y0.data());
    be->rmsnorm(x.data(), n, width, weighted ? w.data() : nullptr, divisor, 1e-5f, y1.data());
    EXPECT_LT(nmse(y1, y0), 1e-12);
  }
}

// The residual add fused with the next norm: x must hold the exact sum, y its norm. Widths
// that take cuda's float4 path (64, 8200: past the rows it keeps in registers) and its scalar
// one (71).
TEST_P(BackendOps, AddRmsNorm) {
  for (auto [n, width, divisor, weighted] : {std::tuple{1, 64, 64, true},
                                             {9, 71, 71, true},
                                             {3, 8200, 8192, true},
                                             {4, 72, 64, false}}) {
    auto x0 = test::random_normal(size_t(n) * width, 21, 3.0f), x1 = x0;
    const auto r = test::random_normal(x0.size(), 22), w = test::random_normal(width, 23);
    std::vector<float> y0(x0.size()), y1(x0.size(), 5.0f);
    ref->add(x0.data(), r.data(), x0.size());
    ref->rmsnorm(x0.data(), n, width, weighted ? w.data() : nullptr, divisor, 1e-5f, y0.data());
    be->add_rmsnorm(x1.data(), r.data(), n, width, weighted ? w.data() : nullptr, divisor, 1e-5f,
                    y1.data());
    EXPECT_EQ(x1, x0) << n << "x" << width;
    EXPECT_LT(nmse(y1, y0), 1e-12) << n << "x" << width;
  }
}

TEST_P(BackendOps, Rope) {
  std::vector<float> inv{1.0f, 0.3f, 0.01f, 1e-4f, 0.7f};
  RopeTable table = RopeTable::build(inv, 64);
  const int n = 6, heads = 3, hd = 10;
  auto x0 = test::random_normal(size_t(n) * heads * hd, 6), x1 = x0;
  std::vector<int32_t> pos{0, 5, 17, 18, 40, 63};
  ref->rope(x0.data(), n, heads, hd, pos.data(), table);
  be->rope(x1.data(), n, heads, hd, pos.data(), table);
  EXPECT_LT(nmse(x1, x0), 1e-14);
  // position 0 is the identity
  auto x2 = test::random_normal(size_t(heads) * hd, 7), x3 = x2;
  int32_t p0 = 0;
  be->rope(x3.data(), 1, heads, hd, &p0, table);
  EXPECT_EQ(x2, x3);
}

TEST_P(BackendOps, AttentionPrefillAndDecode) {
  for (auto [n, pos0, H, Hkv, hd] :
       {std::tuple{1, 0, 4, 2, 8}, {13, 0, 6, 2, 16}, {1, 29, 8, 4, 8}, {5, 11, 3, 1, 12}}) {
    const int len = pos0 + n;
    auto q = test::random_normal(size_t(n) * H * hd, 8),
         k = test::random_normal(size_t(len) * Hkv * hd, 9),
         v = test::random_normal(size_t(len) * Hkv * hd, 10);
    std::vector<float> o0(q.size()), o1(q.size(), 3.0f);
    ref->attention(q.data(), n, H, Hkv, hd, k.data(), v.data(), pos0, o0.data());
    be->attention(q.data(), n, H, Hkv, hd, k.data(), v.data(), pos0, o1.data());
    EXPECT_LT(nmse(o1, o0), kTol) << n << " " << pos0 << " " << H << "/" << Hkv;
  }
}

TEST_P(BackendOps, RopeAttention) {
  std::vector<float> inv{1.0f, 0.3f, 0.01f, 1e-4f};
  const RopeTable table = RopeTable::build(inv, 64);
  const int n = 9, pos0 = 4, H = 4, Hkv = 2, hd = 8, len = pos0 + n;
  const auto q = test::random_normal(size_t(n) * H * hd, 31),
             k = test::random_normal(size_t(len) * Hkv * hd, 32),
             v = test::random_normal(size_t(len) * Hkv * hd, 33);
  std::vector<int32_t> pos(n);
  for (int i = 0; i < n; ++i) pos[i] = pos0 + i;
  auto q0 = q, k0 = k, q1 = q, k1 = k;
  std::vector<float> o0(q.size()), o1(q.size(), 3.0f);
  ref->rope(q0.data(), n, H, hd, pos.data(), table);
  ref->rope(k0.data() + size_t(pos0) * Hkv * hd, n, Hkv, hd, pos.data(), table);
  ref->attention(q0.data(), n, H, Hkv, hd, k0.data(), v.data(), pos0, o0.data());
  be->rope_attention(q1.data(), n, H, Hkv, hd, k1.data(), v.data(), pos0, pos.data(), table,
                     o1.data());
  EXPECT_LT(nmse(k1, k0), 1e-14);
  EXPECT_LT(nmse(o1, o0), kTol);
}

TEST_P(BackendOps, SiluMulAndAdd) {
  const size_t n = 10007;
  auto g = test::random_normal(n, 11, 4.0f), u = test::random_normal(n, 12);
  std::vector<float> y0(n), y1(n);
  ref->silu_mul(g.data(), u.data(), n, y0.data());
  be->silu_mul(g.data(), u.data(), n, y1.data());
  EXPECT_LT(nmse(y1, y0), 1e-12);
  auto a0 = test::random_normal(n, 13), a1 = a0;
  ref->add(a0.data(), g.data(), n);
  be->add(a1.data(), g.data(), n);
  EXPECT_EQ(a0, a1);
}

TEST_P(BackendOps, ActQuant) {
  for (auto [bits, skip] : {std::pair{4, 0}, {8, 0}, {4, 5}}) {
    ActQuantSpec spec{bits, skip, 0.9f};
    auto x0 = test::random_normal(7 * 67, 14), x1 = x0;
    ref->act_quant(x0.data(), 7, 67, spec);
    be->act_quant(x1.data(), 7, 67, spec);
    EXPECT_EQ(x0, x1);
  }
}

std::vector<int8_t> random_codes(size_t n, int lo, int hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<int8_t> v(n);
  for (auto& c : v) c = int8_t(dist(rng));
  return v;
}

// Integer GEMMs: int32 accumulation is exact, and the epilogue is the same formula, so the
// results must be identical.
TEST_P(BackendOps, IntGemmAndInt4Gemm) {
  for (auto [n, k, out] : {std::tuple{1, 30, 5}, {7, 64, 33}, {33, 130, 17}, {2, 1408, 3}}) {
    auto xq = random_codes(size_t(n) * k, -128, 127, 20),
         w8 = random_codes(size_t(out) * k, -128, 127, 21);
    auto w4 = random_codes(size_t(out) * k, -8, 7, 22);
    auto sx = test::random_normal(n, 23), sw = test::random_normal(out, 24);
    std::vector<float> y0(size_t(n) * out), y1(y0.size(), 5.0f);
    ref->int_gemm(xq.data(), sx.data(), n, k, w8.data(), sw.data(), out, y0.data());
    be->int_gemm(xq.data(), sx.data(), n, k, w8.data(), sw.data(), out, y1.data());
    EXPECT_EQ(y0, y1) << "int8 " << n << "x" << k << "x" << out;
    const auto packed = pack_int4(w4.data(), out, k);
    ref->int_gemm(xq.data(), sx.data(), n, k, w4.data(), sw.data(), out, y0.data());
    be->int4_gemm(xq.data(), sx.data(), n, k, packed.data(), sw.data(), out, y1.data());
    EXPECT_EQ(y0, y1) << "int4 " << n << "x" << k << "x" << out;
  }
}

// quantize_rows produces exactly the codes behind act_quant's fake quantization.
TEST_P(BackendOps, QuantizeRowsMatchesFakeQuantization) {
  const int n = 6, width = 77, skip = 5;
  auto x = test::random_normal(size_t(n) * width, 25, 2.0f);
  for (int bits : {4, 8}) {
    std::vector<int8_t> codes(size_t(n) * (width - skip));
    std::vector<float> scales(n);
    be->quantize_rows(x.data() + skip, n, width - skip, width, bits, 0.9f, codes.data(),
                      scales.data());
    auto fake = x;
    ref->act_quant(fake.data(), n, width, ActQuantSpec{bits, skip, 0.9f});
    for (int i = 0; i < n; ++i)
      for (int c = 0; c < width - skip; ++c)
        ASSERT_EQ(float(codes[size_t(i) * (width - skip) + c]) * scales[i],
                  fake[size_t(i) * width + skip + c]);
  }
}

// The fp64 Gram accumulation of calibration: a column block of strided rows, added onto an
// accumulator that already holds values, in the backend's memory, with x in host memory and
// in the backend's. fp32 products are exact in fp64, so only the order of the fp64 sums differs
// from the plain loop: 1e-13 of the largest entry. The lower triangle must stay untouched.
TEST_P(BackendOps, GramAccumulate) {
  for (auto [n, ld, col, k] : {std::tuple{1, 5, 0, 5}, {37, 70, 3, 61}, {130, 129, 64, 65}}) {
    const auto x = test::random_normal(size_t(n) * ld, 11);
    std::vector<double> start(size_t(k) * k);
    const auto seed = test::random_normal(start.size(), 12);
    for (size_t i = 0; i < start.size(); ++i) start[i] = seed[i];
    std::vector<double> want = start;
    for (int i = 0; i < k; ++i)
      for (int j = i; j < k; ++j)
        for (int t = 0; t < n; ++t)
          want[size_t(i) * k + j] +=
              double(x[size_t(t) * ld + col + i]) * double(x[size_t(t) * ld + col + j]);
    double scale = 0;
    for (double v : want) scale = std::max(scale, std::fabs(v));
    for (bool x_in_backend : {false, true}) {
      BackendArray<double> acc;
      BackendArray<float> dx;
      const float* xp = x.data();
      if (x_in_backend) {
        xp = dx.ensure(be->memory(), x.size());
        be->copy(dx.data(), x.data(), sizeof(float) * x.size());
      }
      be->copy(acc.ensure(be->memory(), start.size()), start.data(), sizeof(double) * start.size());
      be->gram_accumulate(xp, n, ld, col, k, acc.data());
      std::vector<double> got(start.size());
      be->copy(got.data(), acc.data(), sizeof(double) * got.size());
      double err = 0;
      for (int i = 0; i < k; ++i) {
        for (int j = 0; j < k; ++j) {
          const size_t e = size_t(i) * k + j;
          if (j >= i)
            err = std::max(err, std::fabs(got[e] - want[e]));
          else
            ASSERT_EQ(got[e], start[e]) << "lower triangle (" << i << ", " << j << ")";
        }
      }
      EXPECT_LT(err, 1e-13 * scale) << n << " rows, columns " << col << "+" << k;
      // finish_gram: scaled, mirrored, the diagonal to the host; exactly the host's arithmetic.
      const double factor = 2.0 / (n + 1);
      std::vector<double> diag(k, -1.0), finished(start.size());
      be->finish_gram(acc.data(), k, factor, diag.data());
      be->copy(finished.data(), acc.data(), sizeof(double) * finished.size());
      for (int i = 0; i < k; ++i) {
        ASSERT_EQ(diag[i], got[size_t(i) * k + i] * factor) << i;
        for (int j = 0; j < k; ++j)
          ASSERT_EQ(finished[size_t(i) * k + j],
                    got[size_t(std::min(i, j)) * k + std::max(i, j)] * factor)
              << "(" << i << ", " << j << ")";
      }
    }
  }
}

TEST_P(BackendOps, ZeroFillsHostAndBackendMemory) {
  const auto seed = test::random_normal(1001, 13);
  BackendArray<float> a;
  be->copy(a.ensure(be->memory(), seed.size()), seed.data(), sizeof(float) * seed.size());
  be->zero(a.data() + 1, sizeof(float) * 999);
  std::vector<float> got(seed.size());
  be->copy(got.data(), a.data(), sizeof(float) * got.size());
  EXPECT_EQ(got.front(), seed.front());
  EXPECT_EQ(got.back(), seed.back());
  for (int i = 1; i < 1000; ++i) ASSERT_EQ(got[i], 0.0f) << i;
}

// X ← A·X·Bᵀ per row (the online Hadamards in Kronecker form), with and without B, x in host
// memory and in the backend's, against the reference backend's loops (fp64 sums).
TEST_P(BackendOps, KronTransform) {
  for (auto [rows, outer, inner, with_b] :
       {std::tuple{1, 1, 8, true}, {5, 7, 16, true}, {33, 12, 32, true}, {9, 8, 64, false}}) {
    const size_t count = size_t(rows) * outer * inner;
    const auto x = test::random_normal(count, 21),
               a = test::random_normal(size_t(outer) * outer, 22),
               b = test::random_normal(size_t(inner) * inner, 23);
    std::vector<float> want = x;
    ref->kron_transform(want.data(), rows, outer, a.data(), inner, with_b ? b.data() : nullptr);
    for (bool in_backend : {false, true}) {
      std::vector<float> got = x;
      BackendArray<float> dx;
      float* p = got.data();
      if (in_backend) {
        p = dx.ensure(be->memory(), count);
        be->copy(p, x.data(), sizeof(float) * count);
      }
      be->kron_transform(p, rows, outer, a.data(), inner, with_b ? b.data() : nullptr);
      if (in_backend) be->copy(got.data(), p, sizeof(float) * count);
      EXPECT_LT(nmse(got, want), kTol) << rows << " x (" << outer << " x " << inner << ")";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BackendOps, ::testing::ValuesIn(backend_names()),
                         [](const auto& info) { return info.param; });

// The reference quantizer itself: codes stay on the grid, skipped columns are untouched,
// values above clip·max saturate.
TEST(RefActQuant, GridSkipAndSaturation) {
  auto ref = make_ref_backend();
  std::vector<float> x{100.0f, -3.0f, 7.0f, -7.0f, 1.0f, 0.2f};
  ActQuantSpec spec{4, 1, 0.9f};
  auto y = x;
  ref->act_quant(y.data(), 1, 6, spec);
  EXPECT_EQ(y[0], 100.0f);  // outlier part untouched
  const float scale = 7.0f / 7.0f * 0.9f;
  for (int i = 1; i < 6; ++i) {
    const float code = y[i] / scale;
    EXPECT_NEAR(code, std::nearbyint(code), 1e-5);
    EXPECT_GE(code, -8.0f);
    EXPECT_LE(code, 7.0f);
  }
  EXPECT_FLOAT_EQ(y[2], 7 * scale);  // 7 / 0.9 = 7.78 -> saturates at code 7
  // A single huge value takes the scale: it saturates at code 7, everything else rounds to 0.
  std::vector<float> spike{1000.0f, 1.0f, -1.0f, 0.5f, -60.0f};
  ref->act_quant(spike.data(), 1, 5, ActQuantSpec{4, 0, 0.9f});
  const float spike_scale = 1000.0f / 7.0f * 0.9f;
  EXPECT_FLOAT_EQ(spike[0], 7 * spike_scale);
  EXPECT_EQ(spike[1], 0.0f);
  EXPECT_EQ(spike[3], 0.0f);
  EXPECT_FLOAT_EQ(spike[4], 0.0f);  // -60 / 128.6 = -0.47 -> 0
  // The most negative code -8 is reachable.
  std::vector<float> neg{-10.0f, 7.0f};
  ref->act_quant(neg.data(), 1, 2, ActQuantSpec{4, 0, 0.8f});
  const float neg_scale = 10.0f / 7.0f * 0.8f;  // -10 / 1.143 = -8.75 -> -8
  EXPECT_FLOAT_EQ(neg[0], -8 * neg_scale);
  std::vector<float> zeros(8, 0.0f);
  ref->act_quant(zeros.data(), 1, 8, spec);
  EXPECT_EQ(zeros, std::vector<float>(8, 0.0f));
}

}  // namespace
}  // namespace quad
