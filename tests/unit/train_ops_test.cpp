// Backward ops (training): finite-difference checks of the reference implementations, the
// adjoint identity of the online transforms' backward passes, and every backend's backward ops
// against the reference on random inputs at odd shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "quad/backend/backend.h"
#include "quad/quant/online_transforms.h"
#include "test_support.h"

namespace quad {
namespace {

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

// ‖a − b‖² / ‖b‖²
double nmse(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += double(a[i] - b[i]) * (a[i] - b[i]);
    den += double(b[i]) * b[i];
  }
  return den > 0 ? num / den : num;
}

// Checks an analytic gradient `grad` of the scalar L(x) (evaluated by `loss`) at x:
//  - along a random direction u by central differences (relative error 1e-3: fp32 storage of
//    the op outputs gives ~1e-6 noise here, truncation O(eps²) is smaller still);
//  - at a few single coordinates (absolute 2e-3 + 1e-2 relative).
void expect_gradient(const std::function<double(const std::vector<float>&)>& loss,
                     std::vector<float> x, const std::vector<float>& grad, const char* what) {
  ASSERT_EQ(x.size(), grad.size());
  const double eps = 1e-3;
  const auto u = test::random_normal(x.size(), 99);
  auto shifted = [&](double t) {
    std::vector<float> y = x;
    for (size_t i = 0; i < y.size(); ++i) y[i] = float(double(x[i]) + t * u[i]);
    return loss(y);
  };
  const double fd = (shifted(eps) - shifted(-eps)) / (2 * eps);
  const double an = dot(grad, u);
  EXPECT_NEAR(fd, an, 1e-3 * std::max(1.0, std::fabs(an))) << what << " (directional)";
  for (size_t i : {size_t(0), x.size() / 3, x.size() - 1}) {
    std::vector<float> y = x;
    y[i] = float(x[i] + eps);
    const double up = loss(y);
    y[i] = float(x[i] - eps);
    const double down = loss(y);
    const double fdi = (up - down) / (2 * eps);
    EXPECT_NEAR(fdi, grad[i], 2e-3 + 1e-2 * std::fabs(grad[i])) << what << " coordinate " << i;
  }
}

class TrainOps : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> ref = make_ref_backend();
};

TEST_F(TrainOps, RmsNormBackward) {
  for (auto [n, width, divisor, weighted] : {std::tuple{3, 72, 64, false}, {2, 33, 33, true}}) {
    const auto x = test::random_normal(size_t(n) * width, 1, 2.0f);
    const auto w = test::random_normal(width, 2);
    const auto r = test::random_normal(x.size(), 3);  // L = Σ r ⊙ y
    const float* wp = weighted ? w.data() : nullptr;
    auto loss = [&](const std::vector<float>& xx) {
      std::vector<float> y(xx.size());
      ref->rmsnorm(xx.data(), n, width, wp, divisor, 1e-5f, y.data());
      return dot(y, r);
    };
    std::vector<float> dx(x.size());
    ref->rmsnorm_backward(x.data(), r.data(), n, width, wp, divisor, 1e-5f, dx.data());
    expect_gradient(loss, x, dx, "rmsnorm");
  }
}

TEST_F(TrainOps, RopeBackward) {
  const int n = 5, heads = 3, hd = 16;
  std::vector<float> inv_freq(hd / 2);
  for (int i = 0; i < hd / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / hd);
  const RopeTable table = RopeTable::build(inv_freq, 32);
  const std::vector<int32_t> pos = {0, 7, 3, 31, 12};
  const auto x = test::random_normal(size_t(n) * heads * hd, 4);
  const auto r = test::random_normal(x.size(), 5);
  auto loss = [&](const std::vector<float>& xx) {
    std::vector<float> y = xx;
    ref->rope(y.data(), n, heads, hd, pos.data(), table);
    return dot(y, r);
  };
  std::vector<float> d = r;
  ref->rope_backward(d.data(), n, heads, hd, pos.data(), table);
  expect_gradient(loss, x, d, "rope");
}

TEST_F(TrainOps, SiluMulBackward) {
  const size_t n = 301;
  const auto g = test::random_normal(n, 6, 2.0f), u = test::random_normal(n, 7);
  const auto r = test::random_normal(n, 8);
  std::vector<float> dg(n), du(n);
  ref->silu_mul_backward(g.data(), u.data(), r.data(), n, dg.data(), du.data());
  auto loss_g = [&](const std::vector<float>& gg) {
    std::vector<float> y(n);
    ref->silu_mul(gg.data(), u.data(), n, y.data());
    return dot(y, r);
  };
  auto loss_u = [&](const std::vector<float>& uu) {
    std::vector<float> y(n);
    ref->silu_mul(g.data(), uu.data(), n, y.data());
    return dot(y, r);
  };
  expect_gradient(loss_g, g, dg, "silu_mul d_gate");
  expect_gradient(loss_u, u, du, "silu_mul d_up");
}

TEST_F(TrainOps, LinearBackward) {
  const int n = 6, in = 37, out = 19;
  const auto x = test::random_normal(size_t(n) * in, 9),
             w = test::random_normal(size_t(out) * in, 10);
  const auto r = test::random_normal(size_t(n) * out, 11);
  std::vector<float> dx(x.size()), dw(w.size());
  ref->linear_backward_input(r.data(), n, out, w.data(), in, dx.data());
  ref->linear_backward_weight(r.data(), n, out, x.data(), in, dw.data());
  auto loss_x = [&](const std::vector<float>& xx) {
    std::vector<float> y(r.size());
    ref->linear(xx.data(), n, in, w.data(), out, nullptr, y.data());
    return dot(y, r);
  };
  auto loss_w = [&](const std::vector<float>& ww) {
    std::vector<float> y(r.size());
    ref->linear(x.data(), n, in, ww.data(), out, nullptr, y.data());
    return dot(y, r);
  };
  expect_gradient(loss_x, x, dx, "linear dx");
  expect_gradient(loss_w, w, dw, "linear dw");
}

TEST_F(TrainOps, AttentionBackward) {
  const int n = 7, H = 4, Hkv = 2, hd = 8;
  const auto q = test::random_normal(size_t(n) * H * hd, 12);
  const auto k = test::random_normal(size_t(n) * Hkv * hd, 13);
  const auto v = test::random_normal(size_t(n) * Hkv * hd, 14);
  const auto r = test::random_normal(q.size(), 15);
  auto run = [&](const std::vector<float>& qq, const std::vector<float>& kk,
                 const std::vector<float>& vv) {
    std::vector<float> out(qq.size());
    ref->attention(qq.data(), n, H, Hkv, hd, kk.data(), vv.data(), 0, out.data());
    return dot(out, r);
  };
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  ref->attention_backward(q.data(), k.data(), v.data(), r.data(), n, H, Hkv, hd, dq.data(),
                          dk.data(), dv.data());
  expect_gradient([&](const std::vector<float>& x) { return run(x, k, v); }, q, dq, "dq");
  expect_gradient([&](const std::vector<float>& x) { return run(q, x, v); }, k, dk, "dk");
  expect_gradient([&](const std::vector<float>& x) { return run(q, k, x); }, v, dv, "dv");
}

// For a linear transform T, apply_backward must be the adjoint: ⟨T(x), y⟩ = ⟨x, Tᵀ(y)⟩. The
// sizes include non-symmetric Paley factors (12 = paley1(q=11), 20 = paley1(q=19)).
TEST_F(TrainOps, OnlineTransformsBackwardIsTheAdjoint) {
  std::vector<std::pair<std::shared_ptr<InputTransform>, int>> transforms = {
      {std::make_shared<HadamardInput>(192), 192},
      {std::make_shared<HadamardInput>(320), 320},
      {std::make_shared<HadamardInput>(256), 256},
      {std::make_shared<HeadMixInput>(12, 8), 96},
      {std::make_shared<HeadMixInput>(8, 4), 32}};
  for (const auto& [t, width] : transforms) {
    const int rows = 3;
    const auto x = test::random_normal(size_t(rows) * width, 16);
    const auto y = test::random_normal(size_t(rows) * width, 17);
    std::vector<float> tx = x, ty = y;
    t->apply(tx.data(), rows, width);
    t->apply_backward(ty.data(), rows, width);
    EXPECT_NEAR(dot(tx, y), dot(x, ty), 1e-4 * std::sqrt(double(x.size()))) << t->describe();
  }
}

// Every backend's backward ops against the reference (1e-10 NMSE, as the forward harness).
class BackwardOps : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!backend_available(GetParam())) GTEST_SKIP() << GetParam() << " is not usable here";
    be = make_backend(GetParam());
  }
  std::unique_ptr<Backend> ref = make_ref_backend();
  std::unique_ptr<Backend> be;
};

TEST_P(BackwardOps, MatchReference) {
  constexpr double kTol = 1e-10;
  {  // linear
    const int n = 13, in = 67, out = 29;
    const auto x = test::random_normal(size_t(n) * in, 20);
    const auto w = test::random_normal(size_t(out) * in, 21);
    const auto dy = test::random_normal(size_t(n) * out, 22);
    std::vector<float> a(x.size()), b(x.size(), 5.0f), c(w.size()), d(w.size(), 5.0f);
    ref->linear_backward_input(dy.data(), n, out, w.data(), in, a.data());
    be->linear_backward_input(dy.data(), n, out, w.data(), in, b.data());
    EXPECT_LT(nmse(b, a), kTol) << "linear_backward_input";
    ref->linear_backward_weight(dy.data(), n, out, x.data(), in, c.data());
    be->linear_backward_weight(dy.data(), n, out, x.data(), in, d.data());
    EXPECT_LT(nmse(d, c), kTol) << "linear_backward_weight";
  }
  {  // rmsnorm
    const int n = 9, width = 72;
    const auto x = test::random_normal(size_t(n) * width, 23, 2.0f);
    const auto dy = test::random_normal(x.size(), 24);
    const auto w = test::random_normal(width, 25);
    std::vector<float> a(x.size()), b(x.size(), 5.0f);
    ref->rmsnorm_backward(x.data(), dy.data(), n, width, w.data(), 64, 1e-5f, a.data());
    be->rmsnorm_backward(x.data(), dy.data(), n, width, w.data(), 64, 1e-5f, b.data());
    EXPECT_LT(nmse(b, a), kTol) << "rmsnorm_backward";
  }
  {  // rope
    const int n = 6, heads = 3, hd = 64;
    std::vector<float> inv_freq(hd / 2);
    for (int i = 0; i < hd / 2; ++i) inv_freq[i] = std::pow(500000.0f, -2.0f * i / hd);
    const RopeTable table = RopeTable::build(inv_freq, 40);
    const std::vector<int32_t> pos = {0, 1, 2, 39, 17, 5};
    auto a = test::random_normal(size_t(n) * heads * hd, 26), b = a;
    ref->rope_backward(a.data(), n, heads, hd, pos.data(), table);
    be->rope_backward(b.data(), n, heads, hd, pos.data(), table);
    EXPECT_LT(nmse(b, a), kTol) << "rope_backward";
  }
  {  // silu_mul
    const size_t n = 9001;
    const auto g = test::random_normal(n, 27, 2.0f), u = test::random_normal(n, 28);
    const auto d = test::random_normal(n, 29);
    std::vector<float> a1(n), a2(n), b1(n, 5.0f), b2(n, 5.0f);
    ref->silu_mul_backward(g.data(), u.data(), d.data(), n, a1.data(), a2.data());
    be->silu_mul_backward(g.data(), u.data(), d.data(), n, b1.data(), b2.data());
    EXPECT_LT(nmse(b1, a1), kTol) << "silu_mul_backward d_gate";
    EXPECT_LT(nmse(b2, a2), kTol) << "silu_mul_backward d_up";
  }
  for (auto [n, H, Hkv, hd] : {std::tuple{1, 4, 2, 16}, {17, 4, 2, 16}, {33, 6, 3, 64}}) {
    const auto q = test::random_normal(size_t(n) * H * hd, 30);
    const auto k = test::random_normal(size_t(n) * Hkv * hd, 31);
    const auto v = test::random_normal(size_t(n) * Hkv * hd, 32);
    const auto d = test::random_normal(q.size(), 33);
    std::vector<float> dq0(q.size()), dk0(k.size()), dv0(v.size());
    std::vector<float> dq1(q.size(), 5.0f), dk1(k.size(), 5.0f), dv1(v.size(), 5.0f);
    ref->attention_backward(q.data(), k.data(), v.data(), d.data(), n, H, Hkv, hd, dq0.data(),
                            dk0.data(), dv0.data());
    be->attention_backward(q.data(), k.data(), v.data(), d.data(), n, H, Hkv, hd, dq1.data(),
                           dk1.data(), dv1.data());
    EXPECT_LT(nmse(dq1, dq0), kTol) << "attention dq n=" << n;
    EXPECT_LT(nmse(dk1, dk0), kTol) << "attention dk n=" << n;
    EXPECT_LT(nmse(dv1, dv0), kTol) << "attention dv n=" << n;
  }
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BackwardOps, ::testing::ValuesIn(backend_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace quad
