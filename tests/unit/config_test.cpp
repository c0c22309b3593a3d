#include "quad/model/config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "quad/core/error.h"
#include "test_support.h"

namespace quad {
namespace {

using nlohmann::json;

json llama_base() {
  return json{{"architectures", {"LlamaForCausalLM"}},
              {"hidden_size", 256},
              {"intermediate_size", 512},
              {"num_hidden_layers", 2},
              {"num_attention_heads", 4},
              {"num_key_value_heads", 2},
              {"vocab_size", 1000},
              {"max_position_embeddings", 4096},
              {"rms_norm_eps", 1e-5}};
}

TEST(Config, ClassicAndTransformers5SpellingsAgree) {
  json classic = llama_base();
  classic["rope_theta"] = 500000.0;
  classic["torch_dtype"] = "bfloat16";
  classic["eos_token_id"] = {128001, 128009};
  json v5 = llama_base();
  v5["rope_parameters"] = {{"rope_theta", 500000.0}, {"rope_type", "default"}};
  v5["dtype"] = "bfloat16";
  v5["eos_token_id"] = 128001;
  ModelConfig a = ModelConfig::from_json(classic, "classic"), b = ModelConfig::from_json(v5, "v5");
  EXPECT_EQ(a.rope_theta, 500000.0);
  EXPECT_EQ(b.rope_theta, 500000.0);
  EXPECT_EQ(a.dtype, "bfloat16");
  EXPECT_EQ(b.dtype, "bfloat16");
  EXPECT_EQ(a.eos_token_ids, (std::vector<int>{128001, 128009}));
  EXPECT_TRUE(a.is_eos(128009));
  EXPECT_EQ(b.eos_token_ids, (std::vector<int>{128001}));
  EXPECT_EQ(a.head_dim, 64);
  EXPECT_EQ(a.rope_inv_freq(), b.rope_inv_freq());
}

TEST(Config, ExplicitHeadDimAndQwenDefaults) {
  json j = llama_base();
  j["architectures"] = {"Qwen2ForCausalLM"};
  j["head_dim"] = 32;
  ModelConfig c = ModelConfig::from_json(j, "qwen");
  EXPECT_EQ(c.arch, Architecture::Qwen2);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_TRUE(c.tie_word_embeddings);  // Qwen2's default
}

TEST(Config, UnknownArchitectureAndRopeTypeAreRefusedByName) {
  json j = llama_base();
  j["architectures"] = {"MistralForCausalLM"};
  try {
    ModelConfig::from_json(j, "x/config.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("MistralForCausalLM"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("x/config.json"), std::string::npos);
  }
  json r = llama_base();
  r["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  try {
    ModelConfig::from_json(r, "y");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("yarn"), std::string::npos);
  }
  json missing = llama_base();
  missing.erase("hidden_size");
  EXPECT_THROW(ModelConfig::from_json(missing, "z"), Error);
}

// llama3 scaling, re-derived here in double from the transformers algorithm: wavelengths
// shorter than old_len/high_freq_factor keep their frequency, longer than old_len/low_freq
// are divided by factor, the band between is interpolated linearly in old_len/wavelen.
TEST(Config, Llama3RopeScaling) {
  json j = llama_base();
  j["hidden_size"] = 4096;
  j["num_attention_heads"] = 32;
  j["num_key_value_heads"] = 8;
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 32.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  j["rope_theta"] = 500000.0;
  ModelConfig c = ModelConfig::from_json(j, "llama3.2");
  json plain = j;
  plain.erase("rope_scaling");
  auto scaled = c.rope_inv_freq();
  auto base = ModelConfig::from_json(plain, "plain").rope_inv_freq();
  ASSERT_EQ(scaled.size(), 64u);
  int high = 0, low = 0, medium = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    const double wavelen = 2 * M_PI / base[i];
    double expected;
    if (wavelen < 8192.0 / 4) {
      expected = base[i], ++high;
    } else if (wavelen > 8192.0) {
      expected = base[i] / 32.0, ++low;
    } else {
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      expected = (1 - smooth) * base[i] / 32.0 + smooth * base[i], ++medium;
    }
    EXPECT_NEAR(scaled[i], expected, 1e-6 * expected) << i;
  }
  EXPECT_GT(high, 0);
  EXPECT_GT(low, 0);
  EXPECT_GT(medium, 0);
}

TEST(Config, SharedModelsLoad) {
  QUAD_REQUIRE_ASSET(dir, "models/tiny-qwen2-27m");
  ModelConfig c = ModelConfig::load(dir);
  EXPECT_EQ(c.arch, Architecture::Qwen2);
  EXPECT_EQ(c.intermediate_size, 1408);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_THROW(ModelConfig::load("/nonexistent/model"), Error);
}

}  // namespace
}  // namespace quad
