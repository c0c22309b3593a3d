// `quad bench --random SHAPE`: the named shapes, the random QUAD structure, the CLI.
#include <gtest/gtest.h>

#include <cmath>

#include "quad/backend/backend.h"
#include "quad/core/error.h"
#include "quad/quant/random_model.h"
#include "test_support.h"

namespace quad {
namespace {

TEST(RandomModel, NamedShapesHaveTheirHuggingFaceSizes) {
  const ModelConfig c = random_shape_config("llama3.2-1b");
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.num_layers, 16);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_TRUE(c.tie_word_embeddings);
  const ModelConfig e = random_shape_config("llama3-8b");
  EXPECT_EQ(e.intermediate_size, 14336);
  EXPECT_EQ(e.vocab_size, 128256);
  EXPECT_THROW(random_shape_config("gpt2"), Error);
  for (const auto& name : random_shape_names()) EXPECT_NO_THROW(random_shape_config(name));
}

// The random QUAD model has a quantized folder's structure (width d + r, packed int4 with
// outlier columns on U-type layers, online Hadamards, quantizers, fp16 head) and runs to finite
// logits; the same seed gives the same weights.
TEST(RandomModel, QuadStructureRunsAndIsDeterministic) {
  const ModelConfig c = random_shape_config("tiny-llama3-30m");
  RandomQuant q;
  q.quantized = true;
  q.od_bits = 4;
  const Model m = make_random_model(c, q, 3);
  EXPECT_EQ(m.residual_width, c.hidden_size + 64);
  const DecoderLayer& L = m.layers[0];
  ASSERT_TRUE(L.q.qweight && L.down.qweight);
  EXPECT_EQ(L.q.qweight->outlier, 64);
  EXPECT_EQ(L.down.qweight->outlier, 0);
  EXPECT_TRUE(L.down.input_transform && L.o.input_transform);
  EXPECT_EQ(L.q.input_quant.bits, 4);
  EXPECT_EQ(L.down.input_quant.bits, 4);
  EXPECT_TRUE(m.lm_head.weight.empty());
  EXPECT_EQ(m.lm_head.weight_f16.size(), size_t(c.vocab_size) * m.residual_width);
  auto backend = make_cpu_backend();
  KVCache cache(m.config, 8);
  ForwardScratch s;
  const std::vector<int32_t> ids = {1, 5, 900, 7};
  std::vector<float> logits(size_t(4) * c.vocab_size);
  forward(m, *backend, ids.data(), 4, 0, cache, s, logits.data(), 4);
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
  const Model again = make_random_model(c, q, 3);
  EXPECT_EQ(again.layers[3].up.qweight->packed, m.layers[3].up.qweight->packed);
  EXPECT_EQ(again.embed, m.embed);
}

// The random int4 weights are written packed; unpacked they are codes spread evenly over all
// sixteen values −8..7 (a wrong nibble mapping would leave some out or skew them).
TEST(RandomModel, PackedCodesAreUniformOverTheInt4Range) {
  const ModelConfig c = random_shape_config("tiny-llama3-30m");
  RandomQuant q;
  q.quantized = true;
  const Model m = make_random_model(c, q, 5);
  const std::vector<int8_t> codes = m.layers[1].gate.qweight->unpacked();
  ASSERT_EQ(codes.size(), size_t(c.intermediate_size) * c.hidden_size);
  std::vector<size_t> count(16, 0);
  for (int8_t v : codes) {
    ASSERT_TRUE(v >= -8 && v <= 7) << int(v);
    ++count[size_t(v + 8)];
  }
  const double expected = double(codes.size()) / 16;  // ~49k each
  for (int v = 0; v < 16; ++v)
    EXPECT_NEAR(double(count[size_t(v)]), expected, 0.02 * expected) << "code " << v - 8;
}

TEST(CliBench, RandomShapeAndErrors) {
  auto r = test::run_quad("bench --random tiny-llama3-30m --quant w4a8 -p 8 -n 2 -r 1 -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("random tiny-llama3-30m QUAD W4A4/A8"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tg2"), std::string::npos);
  auto bad = test::run_quad("bench --random gpt2");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("unknown random shape 'gpt2'"), std::string::npos) << bad.err;
  auto lonely = test::run_quad("bench --quant w4a4 -m x");
  EXPECT_EQ(lonely.exit_code, 2);
  auto none = test::run_quad("bench");
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("--random"), std::string::npos) << none.err;
}

}  // namespace
}  // namespace quad
