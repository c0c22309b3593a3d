// `quad eval` on the two real tiny models: the Llama-3 tokenizer prepends BOS, the Qwen2 one does
// not (lm-eval's HFLM follows the tokenizer's default); scores are reproducible run to run and
// every task's numbers are well-formed. Slow (a few minutes on a busy 2-core machine).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "quad/io/tokenizer.h"
#include "test_support.h"

namespace quad {
namespace {

nlohmann::json eval_json(const std::filesystem::path& model, const std::filesystem::path& data) {
  auto r = test::run_quad("eval -m '" + model.string() + "' --data '" + data.string() +
                          "' --tasks all --limit 10 -t 1 --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = r.exit_code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json::object();
  for (auto& t : j["tasks"]) t.erase("seconds");
  return j;
}

class EvalModels : public ::testing::TestWithParam<std::string> {};

TEST_P(EvalModels, AllTasksReproducibleAndWellFormed) {
  QUAD_REQUIRE_ASSET(model, "models/" + GetParam());
  QUAD_REQUIRE_ASSET(data, "data/zeroshot");
  const bool bos = Tokenizer::load(model.string()).adds_bos();
  EXPECT_EQ(bos, GetParam() != "tiny-qwen2-27m");
  const nlohmann::json a = eval_json(model, data), b = eval_json(model, data);
  ASSERT_EQ(a["tasks"].size(), 9u);
  EXPECT_EQ(a["tasks"], b["tasks"]);
  double sum = 0;
  for (const auto& t : a["tasks"]) {
    SCOPED_TRACE(t["task"].get<std::string>());
    EXPECT_EQ(t["items"], 10);
    const double acc = t["acc"];
    EXPECT_GE(acc, 0.0);
    EXPECT_LE(acc, 1.0);
    // lm-eval's stderr of a 0/1 mean: sqrt(p (1 - p) / (n - 1)).
    EXPECT_NEAR(t["acc_stderr"].get<double>(), std::sqrt(acc * (1 - acc) / 9), 1e-12);
    sum += t["paper_metric"].get<double>();
  }
  EXPECT_NEAR(a["average"].get<double>(), sum / 9, 1e-12);
}

INSTANTIATE_TEST_SUITE_P(Models, EvalModels,
                         ::testing::Values("tiny-llama3-30m", "tiny-qwen2-27m"));

}  // namespace
}  // namespace quad
