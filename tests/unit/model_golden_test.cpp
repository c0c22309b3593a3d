// The forward pass against Hugging Face transformers (goldens/<model>.prompts.json, fp32 on the
// bf16 weights) and the stories260K figures in assets/README.md.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "quad/backend/backend.h"
#include "quad/model/model.h"
#include "quad/model/sampler.h"
#include "test_support.h"

namespace quad {
namespace {

// Logits of the last position after running `ids` as one prefill.
std::vector<float> last_logits(const Model& m, Backend& b, const std::vector<int32_t>& ids) {
  KVCache cache(m.config, int(ids.size()));
  ForwardScratch s;
  std::vector<float> logits(m.config.vocab_size);
  forward(m, b, ids.data(), int(ids.size()), 0, cache, s, logits.data(), 1);
  return logits;
}

// Greedy continuation of `ids` by `n` tokens, decoding token by token over the KV cache.
std::vector<int32_t> greedy(const Model& m, Backend& b, std::vector<int32_t> ids, int n) {
  KVCache cache(m.config, int(ids.size()) + n);
  ForwardScratch s;
  std::vector<float> logits(m.config.vocab_size);
  forward(m, b, ids.data(), int(ids.size()), 0, cache, s, logits.data(), 1);
  for (int i = 0; i < n; ++i) {
    int32_t next = argmax(logits.data(), m.config.vocab_size);
    ids.push_back(next);
    if (i + 1 < n) forward(m, b, &next, 1, int(ids.size()) - 1, cache, s, logits.data(), 1);
  }
  return ids;
}

class PromptGoldens : public ::testing::TestWithParam<std::string> {};

// Logits to max-abs 3e-3 against the goldens (the issue asks 1e-3): the goldens themselves are
// that far from transformers in float32. scripts/hf_golden_precision.py ran transformers 5.17.0
// (the version hf_reference.json names) on these prompts on the GPU machine: strict fp32 on the
// CPU and on the GPU both differ from the goldens by 2.46e-3 (tiny-llama3-30m) and 1.45e-3
// (tiny-qwen2-27m), TF32 by 3.05e-3 / 1.75e-3. Our forward pass matches those strict-fp32
// transformers logits to 1e-4 (MatchStrictFp32Transformers below; measured 2.8e-6 on
// tiny-llama3-30m). Argmax and all greedy tokens must match the goldens exactly.
constexpr double kLogitTol = 3e-3;
TEST_P(PromptGoldens, LogitsArgmaxAndGreedyMatchTransformers) {
  const std::string model_name = GetParam();
  QUAD_REQUIRE_ASSET(dir, "models/" + model_name);
  QUAD_REQUIRE_ASSET(golden_path, "goldens/" + model_name + ".prompts.json");
  nlohmann::json golden = nlohmann::json::parse(std::ifstream(golden_path));
  Model m = Model::load(dir);
  auto backend = make_cpu_backend();
  ASSERT_GE(golden.size(), 3u);
  for (auto& [prompt, g] : golden.items()) {
    SCOPED_TRACE(prompt);
    std::vector<int32_t> ids = g["ids"].get<std::vector<int32_t>>();
    std::vector<float> logits = last_logits(m, *backend, ids);
    auto expected = g["last_logits_first8"].get<std::vector<float>>();
    for (size_t i = 0; i < expected.size(); ++i)
      EXPECT_NEAR(logits[i], expected[i], kLogitTol) << i;
    EXPECT_EQ(argmax(logits.data(), m.config.vocab_size), g["argmax_last"].get<int32_t>());
    auto want = g["greedy_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(greedy(m, *backend, ids, int(want.size() - ids.size())), want);
  }
}

// The same prompts against transformers 5.17.0 in strict fp32 (TF32 off), logits recorded by
// scripts/hf_golden_precision.py into tests/data/hf_fp32_last_logits.json (provenance inside).
TEST_P(PromptGoldens, MatchStrictFp32Transformers) {
  const std::string model_name = GetParam();
  QUAD_REQUIRE_ASSET(dir, "models/" + model_name);
  QUAD_REQUIRE_ASSET(golden_path, "goldens/" + model_name + ".prompts.json");
  const nlohmann::json golden = nlohmann::json::parse(std::ifstream(golden_path));
  const nlohmann::json hf = nlohmann::json::parse(
      std::ifstream(std::string(QUAD_SOURCE_DIR) + "/tests/data/hf_fp32_last_logits.json"));
  ASSERT_TRUE(hf.contains(model_name));
  Model m = Model::load(dir);
  auto backend = make_cpu_backend();
  ASSERT_EQ(hf[model_name].size(), golden.size());
  for (auto& [prompt, want] : hf[model_name].items()) {
    SCOPED_TRACE(prompt);
    std::vector<float> logits =
        last_logits(m, *backend, golden[prompt]["ids"].get<std::vector<int32_t>>());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(logits[i], want[i].get<double>(), 1e-4) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(SharedModels, PromptGoldens,
                         ::testing::Values("tiny-llama3-30m", "tiny-qwen2-27m"),
                         [](const auto& info) { return test::param_name(info.param); });

// assets/README.md: encode("Once upon a time") = [1, 403, 407, 261, 378]; last logits start
// [-10.13658, -5.32946, -10.13808, -10.13685, -10.13721], argmax 432.
TEST(Stories260K, LogitsMatchReadme) {
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  Model m = Model::load(dir);
  auto backend = make_cpu_backend();
  std::vector<float> logits = last_logits(m, *backend, {1, 403, 407, 261, 378});
  const float expected[] = {-10.13658f, -5.32946f, -10.13808f, -10.13685f, -10.13721f};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(logits[i], expected[i], 1e-3) << i;
  EXPECT_EQ(argmax(logits.data(), m.config.vocab_size), 432);
}

// Prefill of a whole sequence and token-by-token decode over the cache give the same logits,
// on both backends, and the two backends agree.
TEST(Forward, PrefillEqualsDecodeAndBackendsAgree) {
  QUAD_REQUIRE_ASSET(dir, "models/tiny-qwen2-27m");
  Model m = Model::load(dir);
  const int n = 12, V = m.config.vocab_size;
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = (i * 977 + 13) % V;
  for (const std::string& name : backend_names()) {
    if (!backend_available(name)) continue;  // cuda without a GPU
    SCOPED_TRACE(name);
    auto b = make_backend(name);
    KVCache c1(m.config, n), c2(m.config, n);
    ForwardScratch s1, s2;
    std::vector<float> all(size_t(n) * V), one(V);
    forward(m, *b, ids.data(), n, 0, c1, s1, all.data(), n);
    // decode: first 5 as a prefill, then one by one
    forward(m, *b, ids.data(), 5, 0, c2, s2, one.data(), 1);
    for (int v = 0; v < V; ++v) ASSERT_NEAR(one[v], all[size_t(4) * V + v], 1e-4);
    for (int i = 5; i < n; ++i) {
      forward(m, *b, &ids[i], 1, i, c2, s2, one.data(), 1);
      double max_err = 0;
      for (int v = 0; v < V; ++v)
        max_err = std::max(max_err, double(std::fabs(one[v] - all[size_t(i) * V + v])));
      EXPECT_LT(max_err, 1e-4) << "position " << i;
    }
  }
}

}  // namespace
// --dtype bf16 keeps the fp linears as bf16: lossless for a bf16 checkpoint (the same weights,
// so the logits differ only by the bf16 kernel's summation order), a real change for an fp32
// one (stories260K: its weights get rounded).
TEST(ModelDtype, Bf16StorageIsExactForBf16Checkpoints) {
  QUAD_REQUIRE_ASSET(bf16_dir, "models/tiny-llama3-30m");
  QUAD_REQUIRE_ASSET(f32_dir, "models/stories260K");
  auto backend = make_cpu_backend();
  const std::vector<int32_t> ids = {1, 403, 407, 261, 378};
  for (const auto& [dir, exact] : {std::pair{bf16_dir, true}, {f32_dir, false}}) {
    SCOPED_TRACE(dir);
    const Model m = Model::load(dir);
    Model half = Model::load(dir);
    store_fp_linears_in_bf16(half);
    EXPECT_TRUE(half.layers[0].q.weight.empty());
    EXPECT_EQ(half.layers[0].q.weight_bf16.size(), m.layers[0].q.weight.size());
    EXPECT_LT(half.weight_bytes(), m.weight_bytes());
    const auto a = last_logits(m, *backend, ids), b = last_logits(half, *backend, ids);
    double diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, double(std::fabs(a[i] - b[i])));
    if (exact)
      EXPECT_LT(diff, 1e-4);
    else
      EXPECT_GT(diff, 1e-3);
    EXPECT_LT(diff, 0.5);
  }
}

}  // namespace quad
