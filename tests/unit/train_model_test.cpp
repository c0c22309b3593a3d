// Fine-tuning on a whole quantized model (stories260K, QUAD r = 8, RTN weights): the training
// forward pass equals the deployed model's, the gradients of the trainable parameters match
// finite differences (masked prompts included), packing sequences into one micro-batch changes
// nothing, and the optimizer follows its formulas.
#include <gtest/gtest.h>

#include <cmath>

#include "quad/backend/backend.h"
#include "quad/io/tokenizer.h"
#include "quad/model/model.h"
#include "quad/quant/pipeline.h"
#include "quad/train/loss.h"
#include "quad/train/model_grad.h"
#include "quad/train/optimizer.h"
#include "test_support.h"

namespace quad::train {
namespace {

// stories260K quantized in-process (W4A4/A8, r = 8, RTN: seconds). With act_quant false the
// activation and KV quantizers are removed so the loss is a smooth function of the parameters.
Model quantized_model(bool act_quant) {
  const auto dir = test::asset("models/stories260K");
  const Tokenizer tok = Tokenizer::load(dir.string());
  Model m = Model::load(dir.string());
  Recipe r;
  r.rank = 8;
  r.gptq = false;
  r.p_nsamples = 4;
  r.p_seqlen = 64;
  r.calib_path = test::asset("data/c4/c4_validation_2k.jsonl").string();
  auto backend = make_cpu_backend();
  quantize_model(m, tok, r, *backend, false);
  if (!act_quant) {
    for (auto& L : m.layers)
      for (Linear* lin : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down})
        lin->input_quant = ActQuantSpec{};
    m.kv_quant = nullptr;
  }
  return m;
}

Example example(int len, int seed, int masked_prefix, int vocab) {
  Example e;
  for (int i = 0; i < len; ++i) e.tokens.push_back((i * 131 + seed * 977 + 7) % vocab);
  e.target.assign(len, 1);
  for (int i = 0; i < masked_prefix; ++i) e.target[i] = 0;
  return e;
}

#define REQUIRE_MODEL_ASSETS()                          \
  QUAD_REQUIRE_ASSET(model_dir_, "models/stories260K"); \
  QUAD_REQUIRE_ASSET(calib_, "data/c4/c4_validation_2k.jsonl")

// The deployed model computes linears with integer GEMMs, training with fake quantization and
// fp GEMMs on the same codes and scales: the loss agrees up to rounding (1e-4 relative; a wrong
// scale, transform or masked row would move it by far more). The ref backend accumulates in
// double, so both paths feed the 4-bit activation quantizer the same values: with fp32 BLAS a
// last-bit difference can flip a code at a rounding boundary and move the loss by ~1e-3.
TEST(TrainModel, ForwardMatchesTheDeployedModel) {
  REQUIRE_MODEL_ASSETS();
  Model m = quantized_model(true);
  const int V = m.config.vocab_size;
  const Example a = example(19, 1, 0, V), b = example(11, 2, 4, V);
  double want = 0;
  int targets = 0;
  auto backend = make_ref_backend();
  for (const Example* e : {&a, &b}) {
    const int n = int(e->tokens.size());
    KVCache cache(m.config, n);
    ForwardScratch s;
    std::vector<float> logits(size_t(n) * V);
    forward(m, *backend, e->tokens.data(), n, 0, cache, s, logits.data(), n);
    std::vector<int32_t> labels(n, -1);
    for (int i = 0; i + 1 < n; ++i)
      if (e->target[i + 1]) labels[i] = e->tokens[i + 1];
    want += cross_entropy(logits.data(), labels.data(), n, V);
    targets += e->num_targets();
  }
  TrainableModel tm(m);
  ModelGrad mg(tm, *backend);
  const LossSum got = mg.forward_loss(pack({&a, &b}));
  EXPECT_EQ(got.targets, targets);
  EXPECT_EQ(targets, 18 + 7);
  EXPECT_NEAR(got.sum, want, 1e-4 * want);
}

// Perturbs every parameter multiplicatively, value·(1 + t·u), so scales (~1e-2) and outlier
// weights (~1e-1) move in proportion; returns the mean loss.
double loss_along(ModelGrad& mg, TrainableModel& tm, const PackedBatch& batch,
                  const std::vector<std::vector<float>>& base,
                  const std::vector<std::vector<float>>& u, double t) {
  auto& ps = tm.params();
  for (size_t p = 0; p < ps.size(); ++p)
    for (size_t i = 0; i < ps[p].size; ++i)
      ps[p].value[i] = float(base[p][i] * (1.0 + t * u[p][i]));
  tm.refresh();
  const LossSum s = mg.forward_loss(batch);
  return s.mean();
}

TEST(TrainModel, GradientsMatchFiniteDifferences) {
  REQUIRE_MODEL_ASSETS();
  Model m = quantized_model(false);
  const int V = m.config.vocab_size;
  const Example a = example(9, 3, 0, V), b = example(12, 4, 5, V);  // b: masked prompt
  const PackedBatch batch = pack({&a, &b});
  auto backend = make_ref_backend();
  TrainableModel tm(m);
  ModelGrad mg(tm, *backend);
  const LossSum l0 = mg.forward_backward(batch, 1.0f / float(batch.num_targets()));
  ASSERT_EQ(l0.targets, 8 + 7);

  std::vector<std::vector<float>> base, u;
  double directional = 0;
  for (size_t p = 0; p < tm.params().size(); ++p) {
    const Param& prm = tm.params()[p];
    base.emplace_back(prm.value, prm.value + prm.size);
    u.push_back(test::random_normal(prm.size, 1000 + uint32_t(p)));
    for (size_t i = 0; i < prm.size; ++i) directional += double(prm.grad[i]) * base[p][i] * u[p][i];
  }
  const double eps = 1e-3;
  const double fd =
      (loss_along(mg, tm, batch, base, u, eps) - loss_along(mg, tm, batch, base, u, -eps)) /
      (2 * eps);
  EXPECT_NEAR(fd, directional, 2e-3 * std::fabs(directional)) << "all parameters at once";

  // Each parameter tensor of the first and the last layer on its own (7 scale vectors and 5
  // outlier blocks per layer), so a gradient landing in the wrong tensor cannot hide in the sum.
  const int last = m.config.num_layers - 1;
  int checked = 0;
  for (size_t p = 0; p < tm.params().size(); ++p) {
    const Param& prm = tm.params()[p];
    const bool first_or_last =
        prm.name.find("layers.0.") != std::string::npos ||
        prm.name.find("layers." + std::to_string(last) + ".") != std::string::npos;
    if (!first_or_last) continue;
    std::vector<std::vector<float>> only(base.size());
    for (size_t q = 0; q < base.size(); ++q) only[q].assign(base[q].size(), 0.0f);
    only[p] = u[p];
    double want = 0;
    for (size_t i = 0; i < prm.size; ++i) want += double(prm.grad[i]) * base[p][i] * u[p][i];
    const double h = 1e-2;
    const double got =
        (loss_along(mg, tm, batch, base, only, h) - loss_along(mg, tm, batch, base, only, -h)) /
        (2 * h);
    EXPECT_NEAR(got, want, 2e-2 * std::fabs(want) + 2e-5) << prm.name;
    ++checked;
  }
  EXPECT_EQ(checked, 2 * 12);  // 7 scales + 5 outlier blocks per layer
}

// One micro-batch of three packed sequences gives the same loss and gradients as three
// micro-batches of one (segments must not see each other; positions restart per sequence).
// The ref backend's row results do not depend on how many rows a GEMM has (fp32 BLAS kernels
// do, by the last bit, which can flip a 4-bit activation code).
TEST(TrainModel, PackingSequencesChangesNothing) {
  REQUIRE_MODEL_ASSETS();
  Model m = quantized_model(true);
  const int V = m.config.vocab_size;
  const Example a = example(10, 5, 0, V), b = example(7, 6, 3, V), c = example(13, 7, 0, V);
  auto backend = make_ref_backend();
  TrainableModel tm(m);
  ModelGrad mg(tm, *backend);
  const float scale = 1.0f / float(a.num_targets() + b.num_targets() + c.num_targets());
  double separate = 0, separate_fwd = 0;
  for (const Example* e : {&a, &b, &c}) separate_fwd += mg.forward_loss(pack({e})).sum;
  EXPECT_NEAR(mg.forward_loss(pack({&a, &b, &c})).sum, separate_fwd, 1e-5 * separate_fwd);
  for (const Example* e : {&a, &b, &c}) separate += mg.forward_backward(pack({e}), scale).sum;
  EXPECT_NEAR(separate, separate_fwd, 1e-5 * separate_fwd);
  std::vector<std::vector<float>> g1;
  for (Param& p : tm.params()) g1.push_back(p.grad);
  tm.zero_grad();
  const double packed = mg.forward_backward(pack({&a, &b, &c}), scale).sum;
  EXPECT_NEAR(packed, separate, 1e-5 * separate);
  double num = 0, den = 0;
  for (size_t p = 0; p < g1.size(); ++p)
    for (size_t i = 0; i < g1[p].size(); ++i) {
      const double d = tm.params()[p].grad[i] - g1[p][i];
      num += d * d;
      den += double(g1[p][i]) * g1[p][i];
    }
  EXPECT_GT(den, 0.0);
  EXPECT_LT(num / den, 1e-8);
}

// An example whose every token is masked contributes no loss and no gradient.
TEST(TrainModel, FullyMaskedExampleHasNoGradient) {
  REQUIRE_MODEL_ASSETS();
  Model m = quantized_model(true);
  const Example e = example(9, 8, 9, m.config.vocab_size);
  auto backend = make_cpu_backend();
  TrainableModel tm(m);
  ModelGrad mg(tm, *backend);
  const LossSum s = mg.forward_backward(pack({&e}), 1.0f);
  EXPECT_EQ(s.targets, 0);
  EXPECT_EQ(s.sum, 0.0);
  for (const Param& p : tm.params())
    for (float g : p.grad) ASSERT_EQ(g, 0.0f) << p.name;
}

TEST(Optimizer, AdamWFollowsTorchFormulas) {
  std::vector<float> w = {0.5f, -1.0f, 2.0f};
  std::vector<Param> ps(1);
  ps[0].name = "w";
  ps[0].value = w.data();
  ps[0].size = 3;
  ps[0].grad = {0.1f, -0.2f, 0.0f};
  ps[0].m.assign(3, 0.0f);
  ps[0].v.assign(3, 0.0f);
  const AdamWConfig cfg{0.9, 0.999, 1e-8, 0.1};
  adamw_step(ps, cfg, 0.01, 1);
  // Step 1: m̂ = g, v̂ = g², so the update is lr·g/(|g| + eps) after decay w·(1 − lr·wd).
  EXPECT_NEAR(w[0], 0.5 * (1 - 0.001) - 0.01 * 0.1 / (0.1 + 1e-8), 1e-7);
  EXPECT_NEAR(w[1], -1.0 * (1 - 0.001) + 0.01, 1e-7);
  EXPECT_NEAR(w[2], 2.0 * (1 - 0.001), 1e-7);
  EXPECT_NEAR(ps[0].m[0], 0.01, 1e-8);
  EXPECT_NEAR(ps[0].v[1], 0.001 * 0.04, 1e-10);
}

TEST(Optimizer, WarmupThenCosine) {
  EXPECT_DOUBLE_EQ(learning_rate(0, 100, 10, 1e-3, 0.0), 1e-4);
  EXPECT_DOUBLE_EQ(learning_rate(9, 100, 10, 1e-3, 0.0), 1e-3);
  EXPECT_NEAR(learning_rate(10, 100, 10, 1e-3, 0.0), 1e-3, 1e-12);
  EXPECT_NEAR(learning_rate(55, 100, 10, 1e-3, 1e-4), 0.5 * (1e-3 + 1e-4), 1e-12);
  EXPECT_NEAR(learning_rate(100, 100, 10, 1e-3, 1e-4), 1e-4, 1e-12);
  EXPECT_GT(learning_rate(30, 100, 10, 1e-3, 0.0), learning_rate(31, 100, 10, 1e-3, 0.0));
}

TEST(Optimizer, ClipsTheGlobalNorm) {
  std::vector<float> a = {0, 0}, b = {0};
  std::vector<Param> ps(2);
  ps[0].value = a.data();
  ps[0].size = 2;
  ps[0].grad = {3.0f, 0.0f};
  ps[1].value = b.data();
  ps[1].size = 1;
  ps[1].grad = {4.0f};
  EXPECT_NEAR(clip_grad_norm(ps, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(ps[0].grad[0], 0.6, 1e-6);
  EXPECT_NEAR(ps[1].grad[0], 0.8, 1e-6);
  EXPECT_NEAR(clip_grad_norm(ps, 10.0), 1.0, 1e-5);  // under the limit: unchanged
  EXPECT_NEAR(ps[1].grad[0], 0.8, 1e-6);
}

TEST(Loss, CrossEntropyGradientIsSoftmaxMinusOneHot) {
  const int n = 3, V = 5;
  auto logits = test::random_normal(size_t(n) * V, 40, 2.0f);
  const std::vector<int32_t> labels = {2, -1, 4};
  const double want = cross_entropy(logits.data(), labels.data(), n, V);
  auto grad = logits;
  const double got = cross_entropy_backward(grad.data(), labels.data(), n, V, 0.5f);
  EXPECT_NEAR(got, want, 1e-9);
  for (int c = 0; c < V; ++c) EXPECT_EQ(grad[V + c], 0.0f);  // unlabelled row
  for (int i : {0, 2}) {
    double s = 0;
    for (int c = 0; c < V; ++c) s += grad[i * V + c];
    EXPECT_NEAR(s, 0.0, 1e-6);  // 0.5·(Σ softmax − 1)
    const float eps = 1e-3f;
    auto up = logits, down = logits;
    up[i * V + 1] += eps;
    down[i * V + 1] -= eps;
    const double fd = (cross_entropy(up.data(), labels.data(), n, V) -
                       cross_entropy(down.data(), labels.data(), n, V)) /
                      (2 * eps);
    EXPECT_NEAR(0.5 * fd, grad[i * V + 1], 1e-4);
  }
}

}  // namespace
}  // namespace quad::train
