// Next-token choice: sample_from_logits' rules, the Sampler's random stream, Backend::sample_token
// on every backend against the host choice, and forward_last_logits against forward.
#include "quad/backend/sampling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/model/model.h"
#include "quad/model/sampler.h"
#include "quad/quant/random_model.h"
#include "test_support.h"

namespace quad {
namespace {

std::vector<float> spread_logits(int vocab, uint32_t seed, float scale) {
  auto x = test::random_normal(size_t(vocab), seed);
  for (float& v : x) v *= scale;
  return x;
}

TEST(SampleFromLogits, FollowsTheNucleusRules) {
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, 0.5f, 2.0f};
  EXPECT_EQ(sample_from_logits(logits.data(), 5, 0.0f, 1.0f, 0.7), 1);  // first maximum
  // A tiny top_p keeps only the most probable token (the tie goes to the lower index).
  EXPECT_EQ(sample_from_logits(logits.data(), 5, 1.0f, 1e-6f, 0.99), 1);
  // The draw walks the ranking 1, 2, 4, 0, 3: probabilities ∝ e^3, e^3, e^2, e^1, e^0.5.
  EXPECT_EQ(sample_from_logits(logits.data(), 5, 1.0f, 1.0f, 0.0), 1);
  EXPECT_EQ(sample_from_logits(logits.data(), 5, 1.0f, 1.0f, 0.45), 2);
  EXPECT_EQ(sample_from_logits(logits.data(), 5, 1.0f, 1.0f, 0.85), 4);
  EXPECT_EQ(sample_from_logits(logits.data(), 5, 1.0f, 1.0f, 0.99999), 3);
  // top_p 0.8 keeps 1, 2, 4 (mass 0.84 of the whole), so no draw reaches 0 or 3.
  EXPECT_EQ(sample_from_logits(logits.data(), 5, 1.0f, 0.8f, 0.99999), 4);
}

// The Sampler draws as before the draw moved out of the choice: uniform_real_distribution(0,
// mass) on mt19937_64(seed), so a seed gives the same generations as earlier versions.
TEST(SamplerStream, MatchesTheUniformDistributionOnTheSeed) {
  const auto logits = spread_logits(300, 5, 2.0f);
  Sampler sampler({0.8f, 0.9f, 42});
  std::mt19937_64 rng(42);
  for (int step = 0; step < 20; ++step) {
    const double c = std::generate_canonical<double, 53>(rng);
    EXPECT_EQ(sampler.sample(logits.data(), 300),
              sample_from_logits(logits.data(), 300, 0.8f, 0.9f, c))
        << "step " << step;
  }
  std::mt19937_64 a(7), b(7);
  const double via_distribution = std::uniform_real_distribution<double>(0.0, 3.5)(a);
  const double via_canonical = std::generate_canonical<double, 53>(b) * 3.5;
  EXPECT_EQ(via_distribution, via_canonical);
}

class SampleToken : public ::testing::TestWithParam<std::string> {};

// The backend's choice equals the host's on the same logits and draw: random logits (ties at the
// 0.25-step grid of the last case), every rule, vocabularies up to a Llama-3 one.
TEST_P(SampleToken, MatchesTheHostChoice) {
  if (!backend_available(GetParam())) GTEST_SKIP() << GetParam() << " is not usable here";
  auto be = make_backend(GetParam());
  for (auto [vocab, scale, grid] : {std::tuple{7, 1.0f, false},
                                    {1000, 3.0f, false},
                                    {128256, 4.0f, false},
                                    {5000, 2.0f, true}}) {
    auto logits = spread_logits(vocab, uint32_t(vocab), scale);
    if (grid)
      for (float& v : logits) v = std::round(v * 4) / 4;
    for (auto [t, p] : {std::pair{0.0f, 1.0f}, {0.7f, 0.9f}, {1.3f, 1.0f}, {1.0f, 0.3f}})
      for (double c : {0.0, 0.37, 0.9999}) {
        SCOPED_TRACE(::testing::Message() << "vocab " << vocab << " T " << t << " top_p " << p
                                          << " draw " << c << " grid " << grid);
        EXPECT_EQ(be->sample_token(logits.data(), vocab, t, p, c),
                  sample_from_logits(logits.data(), vocab, t, p, c));
      }
  }
}

INSTANTIATE_TEST_SUITE_P(AllBackends, SampleToken, ::testing::ValuesIn(backend_names()),
                         [](const auto& info) { return info.param; });

// forward_last_logits leaves in the backend's memory what forward writes for the last position.
TEST(ForwardLastLogits, EqualsTheLastRowOfForward) {
  Model m = make_random_model(random_shape_config("tiny-llama3-30m"), {}, 3);
  m.ensure_positions(16);
  auto be = make_backend("cpu");
  const int V = m.config.vocab_size;
  std::vector<int32_t> ids = {5, 17, 3, 99, 1024, 7};
  KVCache c1(m.config, 16, MemoryKind::host), c2(m.config, 16, MemoryKind::host);
  ForwardScratch s1, s2;
  std::vector<float> want(V);
  forward(m, *be, ids.data(), 5, 0, c1, s1, want.data(), 1);
  const float* got = forward_last_logits(m, *be, ids.data(), 5, 0, c2, s2);
  EXPECT_EQ(std::vector<float>(got, got + V), want);
  forward(m, *be, ids.data() + 5, 1, 5, c1, s1, want.data(), 1);  // then a decode step
  got = forward_last_logits(m, *be, ids.data() + 5, 1, 5, c2, s2);
  EXPECT_EQ(std::vector<float>(got, got + V), want);
}

}  // namespace
}  // namespace quad
