// quad ppl --kl-base: the KL divergence of a model's predictions from a base model's.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

#include "quad/eval/perplexity.h"
#include "test_support.h"

namespace quad {
namespace {

TEST(PplKl, KlDivergenceOfHandMadeRows) {
  // Row 0: base uniform over 2, model (3/4, 1/4): KL = ½ln(½/¾) + ½ln(½/¼). Row 1: identical
  // rows (shifted logits are the same distribution), KL 0. Row 2: argmaxes differ.
  const std::vector<float> base = {0, 0, 1, 2, 5, 1};
  const std::vector<float> model = {float(std::log(3.0)), 0, 11, 12, 1, 5};
  int64_t agree = -1;
  const double kl = kl_divergence_sum(base.data(), model.data(), 2, 2, &agree);
  EXPECT_NEAR(kl, 0.5 * std::log(0.5 / 0.75) + 0.5 * std::log(0.5 / 0.25), 1e-7);
  EXPECT_EQ(agree, 2);
  const double kl3 = kl_divergence_sum(base.data(), model.data(), 3, 2, &agree);
  EXPECT_GT(kl3, kl + 1);  // e^4-to-1 odds swapped
  EXPECT_EQ(agree, 2);
}

TEST(PplKl, CliAgainstItselfAndAgainstAnotherTokenizer) {
  QUAD_REQUIRE_ASSET(model, "models/stories260K");
  QUAD_REQUIRE_ASSET(other, "models/tiny-llama3-30m");
  QUAD_REQUIRE_ASSET(text, "data/tinystories/tinystories_val.txt");
  const std::string base = "ppl -m '" + model.string() + "' --text '" + text.string() +
                           "' --chunks 2 --json --device cpu ";
  auto same = test::run_quad(base + "--kl-base '" + model.string() + "'");
  ASSERT_EQ(same.exit_code, 0) << same.err;
  const auto j = nlohmann::json::parse(same.out);
  EXPECT_NEAR(j["kl"].get<double>(), 0.0, 1e-9);
  EXPECT_EQ(j["top1_agreement"].get<double>(), 1.0);
  EXPECT_EQ(j["base_ppl"].get<double>(), j["ppl"].get<double>());
  auto bad = test::run_quad(base + "--kl-base '" + other.string() + "'");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("tokenizes the text differently"), std::string::npos) << bad.err;
  auto missing = test::run_quad(base + "--kl-base /nonexistent");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("/nonexistent"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace quad
