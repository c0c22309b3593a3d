#include "quad/quant/random_model.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "quad/core/error.h"
#include "quad/core/random.h"
#include "quad/quant/pipeline.h"
#include "quad/quant/recipe.h"
#include "quad/quant/rotate.h"
#include "quad/tensor/dtype.h"

namespace quad {

namespace {

using nlohmann::json;

struct Shape {
  const char* name;
  const char* arch;
  int hidden, inter, layers, heads, kv_heads, vocab, max_pos;
  double theta;
  bool tied, qkv_bias;
};

// From the models' Hugging Face config.json files.
constexpr Shape kShapes[] = {
    {"llama3.2-1b", "LlamaForCausalLM", 2048, 8192, 16, 32, 8, 128256, 131072, 500000.0, true,
     false},
    {"llama3-8b", "LlamaForCausalLM", 4096, 14336, 32, 32, 8, 128256, 8192, 500000.0, false, false},
    {"llama2-7b", "LlamaForCausalLM", 4096, 11008, 32, 32, 32, 32000, 4096, 10000.0, false, false},
    {"qwen2.5-7b", "Qwen2ForCausalLM", 3584, 18944, 28, 28, 4, 152064, 32768, 1000000.0, false,
     true},
    {"tiny-llama3-30m", "LlamaForCausalLM", 512, 1536, 7, 8, 2, 8192, 1024, 500000.0, false, false},
};

// Uniform in [−a, a) with a = √3·σ (so the standard deviation is σ); rows drawn in parallel
// from per-row seeds, so the values do not depend on the thread count.
void fill_uniform(std::vector<float>& v, size_t rows, uint64_t seed, float sigma) {
  const size_t cols = v.size() / rows;
  const double a = std::sqrt(3.0) * sigma;
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < rows; ++r) {
    Rng rng(seed * 0x9e3779b97f4a7c15ull + r);
    float* row = v.data() + r * cols;
    for (size_t c = 0; c < cols; ++c) row[c] = float((2.0 * rng.uniform() - 1.0) * a);
  }
}

std::vector<float> uniform(size_t rows, size_t cols, uint64_t seed, float sigma = 0.02f) {
  std::vector<float> v(rows * cols);
  fill_uniform(v, rows, seed, sigma);
  return v;
}

Linear fp_linear(const std::string& name, int in, int out, bool bias, uint64_t seed) {
  Linear l;
  l.name = name;
  l.in = in;
  l.out = out;
  l.weight = uniform(out, in, seed);
  if (bias) l.bias = uniform(1, out, seed + 1);
  return l;
}

// Int4 codes uniform over [−8, 7]: code j of a row is the j-th nibble of the row's random
// stream minus 8 (16 per 64-bit draw). Written packed straight away: the two's-complement nibble
// of (u − 8) is u ^ 8, so each byte of a draw, xor 0x88, is the packed pair. Scales give rows of
// σ ≈ 0.02 (a uniform code has σ ≈ 4.6); outlier columns σ 0.02, held in fp16 as a folder's.
Linear quant_linear(const std::string& name, int in, int out, int outlier, bool bias,
                    uint64_t seed) {
  Linear l;
  l.name = name;
  l.in = in;
  l.out = out;
  const int k = in - outlier, row_bytes = k / 2;
  std::vector<uint8_t> packed(size_t(out) * row_bytes);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < out; ++r) {
    Rng rng(seed * 0x9e3779b97f4a7c15ull + r);
    uint8_t* row = packed.data() + size_t(r) * row_bytes;
    for (int b = 0; b < row_bytes; b += 8) {
      uint64_t bits = rng.next();
      for (int j = b; j < std::min(row_bytes, b + 8); ++j, bits >>= 8)
        row[j] = uint8_t(bits & 0xFF) ^ 0x88;
    }
  }
  std::vector<float> scales(out, 0.02f / 4.6f);
  // Outlier columns in fp16, as a QUAD folder holds them.
  const std::vector<float> w_outlier = uniform(out, outlier, seed + 2);
  std::vector<uint16_t> w_outlier_f16(w_outlier.size());
  for (size_t i = 0; i < w_outlier.size(); ++i) w_outlier_f16[i] = f32_to_f16(w_outlier[i]);
  l.qweight = QuantizedWeight::make_packed(outlier, out, k, std::move(packed), std::move(scales),
                                           {}, std::move(w_outlier_f16));
  if (bias) l.bias = uniform(1, out, seed + 1);
  return l;
}

}  // namespace

std::vector<std::string> random_shape_names() {
  std::vector<std::string> names;
  for (const Shape& s : kShapes) names.push_back(s.name);
  return names;
}

nlohmann::json random_shape_json(const std::string& shape) {
  for (const Shape& s : kShapes) {
    if (shape != s.name) continue;
    return json{{"architectures", {s.arch}},
                {"model_type", std::string(s.arch) == "Qwen2ForCausalLM" ? "qwen2" : "llama"},
                {"hidden_size", s.hidden},
                {"intermediate_size", s.inter},
                {"num_hidden_layers", s.layers},
                {"num_attention_heads", s.heads},
                {"num_key_value_heads", s.kv_heads},
                {"vocab_size", s.vocab},
                {"max_position_embeddings", s.max_pos},
                {"rope_theta", s.theta},
                {"rms_norm_eps", 1e-5},
                {"tie_word_embeddings", s.tied},
                {"torch_dtype", "bfloat16"},
                {"bos_token_id", 1},
                {"eos_token_id", 2},
                {"quad_random_shape", s.name}};
  }
  std::string known;
  for (const Shape& s : kShapes) known += std::string(known.empty() ? "" : ", ") + s.name;
  fail("random", "unknown random shape '{}' (known: {})", shape, known);
}

ModelConfig random_shape_config(const std::string& shape) {
  return ModelConfig::from_json(random_shape_json(shape), "random shape " + shape);
}

namespace {

int random_rank(const ModelConfig& c, const RandomQuant& q) {
  const int r = q.quantized ? q.rank : 0;
  check(r >= 0 && r < c.hidden_size, "random", "rank {} must be in [0, {})", r, c.hidden_size);
  return r;
}

// FP: weighted norms (weights 1); QUAD: folded, weightless, dividing by d.
RmsNorm random_norm(const ModelConfig& c, const RandomQuant& q) {
  return RmsNorm{q.quantized ? std::vector<float>{} : std::vector<float>(c.hidden_size, 1.0f),
                 c.hidden_size, c.rms_norm_eps};
}

}  // namespace

DecoderLayer make_random_layer(const ModelConfig& c, const RandomQuant& q, uint64_t seed, int i) {
  const int hd = c.head_dim, ff = c.intermediate_size;
  const int r = random_rank(c, q), D = c.hidden_size + r;
  const std::string p = fmt::format("model.layers.{}.", i);
  const uint64_t s = seed + 1000 * uint64_t(i + 1);
  DecoderLayer L;
  auto make = [&](const std::string& name, int in, int out, int outlier, bool bias, int n) {
    return q.quantized ? quant_linear(p + name, in, out, outlier, bias, s + 10 * n)
                       : fp_linear(p + name, in, out, bias, s + 10 * n);
  };
  L.q = make("self_attn.q_proj", D, c.num_heads * hd, r, c.qkv_bias, 0);
  L.k = make("self_attn.k_proj", D, c.num_kv_heads * hd, r, c.qkv_bias, 1);
  L.v = make("self_attn.v_proj", D, c.num_kv_heads * hd, r, c.qkv_bias, 2);
  L.o = make("self_attn.o_proj", c.num_heads * hd, D, 0, c.o_bias, 3);
  L.gate = make("mlp.gate_proj", D, ff, r, c.mlp_bias, 4);
  L.up = make("mlp.up_proj", D, ff, r, c.mlp_bias, 5);
  L.down = make("mlp.down_proj", ff, D, 0, c.mlp_bias, 6);
  L.attn_norm = L.mlp_norm = random_norm(c, q);
  return L;
}

Model make_random_model_without_layers(const ModelConfig& c, const RandomQuant& q, uint64_t seed) {
  const int r = random_rank(c, q), D = c.hidden_size + r;
  Model m;
  m.config = c;
  m.residual_width = D;
  m.embed = uniform(c.vocab_size, D, seed);
  m.layers.resize(c.num_layers);
  m.final_norm = random_norm(c, q);
  m.lm_head.name = "lm_head";
  m.lm_head.in = D;
  m.lm_head.out = c.vocab_size;
  if (!q.quantized) {
    m.lm_head.weight = c.tie_word_embeddings ? m.embed : uniform(c.vocab_size, D, seed + 7);
  } else {  // a QUAD folder's head is fp16 (held as such: Linear::weight_f16)
    const std::vector<float> w = uniform(c.vocab_size, D, seed + 7);
    m.lm_head.weight_f16.resize(w.size());
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < w.size(); ++i) m.lm_head.weight_f16[i] = f32_to_f16(w[i]);
    m.config.tie_word_embeddings = false;  // as in a QUAD folder
  }
  m.ensure_positions(std::min(c.max_position_embeddings, 8192));
  return m;
}

Model make_random_model(const ModelConfig& c, const RandomQuant& q, uint64_t seed) {
  Model m = make_random_model_without_layers(c, q, seed);
  for (int i = 0; i < c.num_layers; ++i) m.layers[i] = make_random_layer(c, q, seed, i);
  if (q.quantized) {
    attach_online_transforms(m);
    Recipe recipe;
    recipe.rank = q.rank;
    recipe.a_bits = q.a_bits;
    recipe.od_bits = q.od_bits;
    attach_quantizers(m, recipe);
  }
  return m;
}

}  // namespace quad
