// End to end on tiny-llama3-30m: QUAD, QuaRot and RTN W4A4/A8 folders from `quad quantize`,
// scored by `quad ppl` on WikiText-2 against the FP model. Slow (minutes).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "test_support.h"

namespace quad {
namespace {

double ppl_of(const std::filesystem::path& model, const std::filesystem::path& text) {
  auto r = test::run_quad("ppl -m '" + model.string() + "' --text '" + text.string() +
                          "' --chunks 40 --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? nlohmann::json::parse(r.out)["ppl"].get<double>() : 0.0;
}

TEST(QuantizeEndToEnd, QuadBeatsQuarotAndStaysCloseToFp) {
  QUAD_REQUIRE_ASSET(model, "models/tiny-llama3-30m");
  QUAD_REQUIRE_ASSET(text, "data/wikitext2/wiki.test.raw");
  QUAD_REQUIRE_ASSET(calib, "data/c4/c4_validation_2k.jsonl");
  const auto dir = test::temp_dir("e2eq");
  const double fp = ppl_of(model, text);
  std::map<std::string, double> ppl;
  for (std::string method : {"quad", "quarot", "rtn"}) {
    auto r = test::run_quad("quantize -m '" + model.string() + "' -o '" + (dir / method).string() +
                            "' --method " + method + " --nsamples 32 --calib '" + calib.string() +
                            "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ppl[method] = ppl_of(dir / method, text);
    std::cout << method << " W4A4/A8: ppl " << ppl[method] << " (FP " << fp << ")\n";
  }
  // Within 15% of FP either way (on this sample, QUAD W4A4/A8 has scored slightly below FP:
  // 101.67 vs 102.74 at commit 2809ef6).
  for (auto& [method, value] : ppl) EXPECT_LT(std::fabs(value - fp), 0.15 * fp) << method;
  EXPECT_LT(ppl["quad"], ppl["quarot"]);  // the outlier dimensions help
}

}  // namespace
}  // namespace quad
