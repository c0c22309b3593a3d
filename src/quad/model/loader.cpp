// Model::load: HF folder -> Model (fp32 in memory), with every tensor checked.
#include <fmt/ranges.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "quad/core/error.h"
#include "quad/io/safetensors.h"
#include "quad/model/model.h"
#include "quad/model/quantized_folder.h"

namespace quad {

namespace {

Linear load_linear(const TensorStore& store, const std::string& name, int in, int out, bool bias) {
  Linear l;
  l.name = name;
  l.in = in;
  l.out = out;
  l.weight = store.get_f32(name + ".weight", {out, in});
  if (bias) l.bias = store.get_f32(name + ".bias", {out});
  return l;
}

RmsNorm load_norm(const TensorStore& store, const std::string& name, const ModelConfig& c) {
  RmsNorm n;
  n.weight = store.get_f32(name + ".weight", {c.hidden_size});
  n.divisor = c.hidden_size;
  n.eps = c.rms_norm_eps;
  return n;
}

}  // namespace

DecoderLayer load_decoder_layer(const TensorStore& store, const ModelConfig& c, int i) {
  const int d = c.hidden_size, ff = c.intermediate_size, hd = c.head_dim;
  const std::string p = fmt::format("model.layers.{}.", i);
  DecoderLayer L;
  L.attn_norm = load_norm(store, p + "input_layernorm", c);
  L.mlp_norm = load_norm(store, p + "post_attention_layernorm", c);
  L.q = load_linear(store, p + "self_attn.q_proj", d, c.num_heads * hd, c.qkv_bias);
  L.k = load_linear(store, p + "self_attn.k_proj", d, c.num_kv_heads * hd, c.qkv_bias);
  L.v = load_linear(store, p + "self_attn.v_proj", d, c.num_kv_heads * hd, c.qkv_bias);
  L.o = load_linear(store, p + "self_attn.o_proj", c.num_heads * hd, d, c.o_bias);
  L.gate = load_linear(store, p + "mlp.gate_proj", d, ff, c.mlp_bias);
  L.up = load_linear(store, p + "mlp.up_proj", d, ff, c.mlp_bias);
  L.down = load_linear(store, p + "mlp.down_proj", ff, d, c.mlp_bias);
  return L;
}

Model load_model_without_layers(const TensorStore& store, const ModelConfig& c) {
  Model m;
  m.config = c;
  const int d = c.hidden_size;
  m.residual_width = d;
  m.embed = store.get_f32("model.embed_tokens.weight", {c.vocab_size, d});
  m.layers.resize(c.num_layers);
  m.final_norm = load_norm(store, "model.norm", c);
  if (c.tie_word_embeddings) {
    m.lm_head.name = "lm_head";
    m.lm_head.in = d;
    m.lm_head.out = c.vocab_size;
    m.lm_head.weight = m.embed;
  } else {
    m.lm_head = load_linear(store, "lm_head", d, c.vocab_size, false);
  }
  m.ensure_positions(c.max_position_embeddings);
  return m;
}

Model Model::load(const std::string& dir) {
  const ModelConfig config = ModelConfig::load(dir);
  if (is_quantized_folder(dir)) {
    auto cfg = nlohmann::json::parse(std::ifstream(std::filesystem::path(dir) / "config.json"));
    return load_quantized(dir, config, cfg["quantization_config"]);
  }
  TensorStore store = TensorStore::open_dir(dir);
  Model m = load_model_without_layers(store, config);
  for (int i = 0; i < config.num_layers; ++i) m.layers[i] = load_decoder_layer(store, config, i);
  return m;
}

size_t Model::num_params() const {
  size_t n = embed.size() + final_norm.weight.size();
  for (const auto& L : layers)
    n += L.attn_norm.weight.size() + L.mlp_norm.weight.size() + L.q.num_params() +
         L.k.num_params() + L.v.num_params() + L.o.num_params() + L.gate.num_params() +
         L.up.num_params() + L.down.num_params();
  if (!config.tie_word_embeddings) n += lm_head.num_params();
  return n;
}

size_t Model::weight_bytes() const {
  auto linear_bytes = [](const Linear& l) {
    size_t b = 4 * (l.bias.size() + (l.integer_path() ? 0 : l.weight.size())) +
               2 * (l.weight_f16.size() + l.weight_bf16.size());
    if (l.integer_path()) {
      const QuantizedWeight& q = *l.qweight;
      b += q.packed.size() + q.codes.size() + 4 * (q.scales.size() + q.w_outlier.size()) +
           2 * q.w_outlier_f16.size();
    }
    return b;
  };
  size_t b = 4 * (embed.size() + final_norm.weight.size()) + linear_bytes(lm_head);
  for (const auto& L : layers) {
    b += 4 * (L.attn_norm.weight.size() + L.mlp_norm.weight.size());
    for (const Linear* l : L.linears()) b += linear_bytes(*l);
  }
  return b;
}

void Model::ensure_positions(int n) {
  if (n <= rope.max_positions) return;
  rope = RopeTable::build(config.rope_inv_freq(), std::max(n, config.max_position_embeddings));
}

}  // namespace quad
