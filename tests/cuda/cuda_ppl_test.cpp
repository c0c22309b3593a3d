// End to end on the GPU: `quad ppl` with --device cuda against the CPU backend on the shared
// models, FP and quantized (QUAD W4A4/A8 with fast calibration settings, quantized on the CPU),
// within 0.2% (the bound); greedy generations agree for 16 tokens. Each model is skipped
// when absent from $QUAD_ASSETS (scripts/gpu.sh carries one or more of them to the GPU machine).
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cuda_test_util.h"
#include "test_support.h"

namespace quad {
namespace {

namespace fs = std::filesystem;

constexpr double kPplRelTol = 2e-3;

nlohmann::json last_json(const test::CommandResult& r) {
  return nlohmann::json::parse(r.out.substr(r.out.rfind('{')));
}

nlohmann::json ppl(const fs::path& model, const fs::path& text, const std::string& device) {
  auto r = test::run_quad("ppl -m '" + model.string() + "' --text '" + text.string() +
                          "' --ctx 256 --chunks 4 --json --device " + device);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return nullptr;
  auto j = last_json(r);
  EXPECT_EQ(j["backend"], device);
  return j;
}

void expect_same_ppl(const fs::path& model, const fs::path& text, const std::string& what) {
  const auto cpu = ppl(model, text, "cpu"), gpu = ppl(model, text, "cuda");
  if (cpu.is_null() || gpu.is_null()) return;
  EXPECT_EQ(cpu["scored"], gpu["scored"]);
  const double a = cpu["ppl"].get<double>(), b = gpu["ppl"].get<double>();
  EXPECT_TRUE(std::isfinite(b));
  EXPECT_NEAR(b, a, kPplRelTol * a) << what;
  std::cout << what << ": ppl cpu " << a << " cuda " << b << " (rel diff " << std::fabs(b - a) / a
            << "; " << cpu["seconds"] << " s vs " << gpu["seconds"] << " s)\n";
}

void expect_same_generation(const fs::path& model, const std::string& what) {
  std::vector<int> ids[2];
  int i = 0;
  for (const char* device : {"cpu", "cuda"}) {
    auto r = test::run_quad("generate -m '" + model.string() +
                            "' -p 'Once upon a time' -n 16 --temp 0 --json --device " + device);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ids[i++] = last_json(r)["ids"].get<std::vector<int>>();
  }
  EXPECT_FALSE(ids[0].empty());
  EXPECT_EQ(ids[0], ids[1]) << what << ": greedy tokens differ";
}

class CudaPpl : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaPpl, MatchesCpuFpAndQuantized) {
  QUAD_REQUIRE_GPU();
  QUAD_REQUIRE_ASSET(model, "models/" + GetParam());
  QUAD_REQUIRE_ASSET(text, "data/wikitext2/wiki.test.raw");
  expect_same_ppl(model, text, GetParam() + " FP");
  expect_same_generation(model, GetParam() + " FP");

  const fs::path q = test::temp_dir("cudaq") / "w4a4";
  const int rank = GetParam() == "stories260K" ? 8 : 32;
  auto r = test::run_quad("quantize -m '" + model.string() + "' -o '" + q.string() + "' --calib '" +
                          text.string() + "' --rank " + std::to_string(rank) +
                          " --nsamples 4 --seqlen 128 --p-nsamples 4 --p-seqlen 128");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_ppl(q, text, GetParam() + " QUAD W4A4/A8");
  expect_same_generation(q, GetParam() + " QUAD W4A4/A8");
}

INSTANTIATE_TEST_SUITE_P(SharedModels, CudaPpl,
                         ::testing::Values("stories260K", "tiny-llama3-30m", "tiny-qwen2-27m"),
                         [](const auto& info) { return test::param_name(info.param); });

}  // namespace
}  // namespace quad
