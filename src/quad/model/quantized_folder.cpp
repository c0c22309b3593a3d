#include "quad/model/quantized_folder.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "quad/core/error.h"
#include "quad/io/safetensors.h"
#include "quad/io/sharded_writer.h"
#include "quad/quant/pipeline.h"
#include "quad/quant/rotate.h"
#include "quad/quant/weight_quant.h"

namespace quad {

namespace fs = std::filesystem;

namespace {

bool half_storage(const Recipe& r) {
  return r.w_bits < 16;
}

float round_f16(float v) {
  return f16_to_f32(f32_to_f16(v));
}
void round_all(std::vector<float>& v) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < v.size(); ++i) v[i] = round_f16(v[i]);
}

void add_floats(ShardedSafetensorsWriter& w, const std::string& name, std::vector<int64_t> shape,
                const std::vector<float>& v, bool half) {
  if (!half) return w.add(name, DType::F32, std::move(shape), v.data(), v.size() * 4);
  std::vector<uint16_t> h(v.size());
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_f16(v[i]);
  w.add(name, DType::F16, std::move(shape), h.data(), h.size() * 2);
}

void write_linear(ShardedSafetensorsWriter& w, const Linear& lin, bool half) {
  if (lin.qweight) {
    const QuantizedWeight& q = *lin.qweight;
    if (q.bits == 4)
      w.add(lin.name + ".weight", DType::U8, {q.out, q.k / 2}, q.packed.data(), q.packed.size());
    else
      w.add(lin.name + ".weight", DType::I8, {q.out, q.k}, q.codes.data(), q.codes.size());
    add_floats(w, lin.name + ".weight_scales", {lin.out, 1}, q.scales, true);
    if (!q.w_outlier_f16.empty())  // held in fp16 as loaded
      w.add(lin.name + ".w_outlier", DType::F16, {lin.out, q.outlier}, q.w_outlier_f16.data(),
            q.w_outlier_f16.size() * 2);
    else if (q.outlier > 0)
      add_floats(w, lin.name + ".w_outlier", {lin.out, q.outlier}, q.w_outlier, true);
  } else {
    add_floats(w, lin.name + ".weight", {lin.out, lin.in}, lin.weight, half);
  }
  if (lin.has_bias()) add_floats(w, lin.name + ".bias", {lin.out}, lin.bias, half);
}

}  // namespace

void round_to_storage_precision(Model& m, const Recipe& recipe) {
  if (!half_storage(recipe)) return;
  round_all(m.embed);
  round_all(m.lm_head.weight);
  for (auto& L : m.layers)
    for (Linear* lin : L.linears()) {
      round_all(lin->bias);
      if (!lin->qweight) {
        round_all(lin->weight);
        continue;
      }
      auto q = std::make_shared<QuantizedWeight>(*lin->qweight);
      round_all(q->scales);
      round_all(q->w_outlier);
      lin->weight = q->dequantized();  // keep the fp fallback weights consistent
      lin->qweight = std::move(q);
    }
}

QuantizedFolderWriter::QuantizedFolderWriter(const Recipe& recipe, std::string source_dir,
                                             const std::string& out_dir, bool overwrite,
                                             uint64_t max_shard_bytes)
    : source_dir_(std::move(source_dir)),
      out_(fs::path(out_dir).lexically_normal().string()),
      tmp_(out_ + ".tmp-quad"),
      half_(half_storage(recipe)) {
  std::error_code ec;
  if (fs::exists(out_, ec) && !overwrite)
    fail("save", "{} already exists (choose another -o or pass --force to replace it)", out_dir);
  fs::remove_all(tmp_, ec);
  if (!fs::create_directories(tmp_, ec) || ec)
    fail("save", "cannot create {}: {}", tmp_, ec.message());
  tensors_ = std::make_unique<ShardedSafetensorsWriter>(
      tmp_, max_shard_bytes,
      std::map<std::string, std::string>{{"format", "pt"}, {"quad_format", "1"}});
}

QuantizedFolderWriter::~QuantizedFolderWriter() {
  if (finished_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);  // an unfinished folder never stays behind
}

void QuantizedFolderWriter::set_source_config(const nlohmann::json& config) {
  source_config_ = std::make_unique<nlohmann::json>(config);
}

void QuantizedFolderWriter::add_embedding(const Model& m) {
  add_floats(*tensors_, "model.embed_tokens.weight", {m.config.vocab_size, m.residual_width},
             m.embed, half_);
}

void QuantizedFolderWriter::add_layer(const DecoderLayer& layer) {
  for (const Linear* lin : layer.linears()) write_linear(*tensors_, *lin, half_);
}

void QuantizedFolderWriter::finish(const Model& m, const Recipe& recipe) {
  if (m.lm_head.weight.empty())  // held in fp16 as loaded
    tensors_->add("lm_head.weight", DType::F16, {m.config.vocab_size, m.residual_width},
                  m.lm_head.weight_f16.data(), m.lm_head.weight_f16.size() * 2);
  else
    add_floats(*tensors_, "lm_head.weight", {m.config.vocab_size, m.residual_width},
               m.lm_head.weight, half_);
  tensors_->finish();
  // config.json: the source config with the recipe added.
  nlohmann::json cfg =
      source_config_ ? *source_config_
                     : nlohmann::json::parse(std::ifstream(fs::path(source_dir_) / "config.json"));
  nlohmann::json qc = recipe.to_json();
  qc["residual_width"] = m.residual_width;
  cfg["quantization_config"] = qc;
  cfg["tie_word_embeddings"] = false;
  std::ofstream(fs::path(tmp_) / "config.json") << cfg.dump(2) << "\n";
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                           "special_tokens_map.json", "generation_config.json"}) {
    const fs::path src = fs::path(source_dir_) / name;
    if (fs::exists(src)) fs::copy_file(src, fs::path(tmp_) / name);
  }
  if (fs::exists(out_)) fs::remove_all(out_);
  fs::rename(tmp_, out_);
  finished_ = true;
}

void save_quantized(const Model& m, const Recipe& recipe, const std::string& source_dir,
                    const std::string& out_dir, bool overwrite, uint64_t max_shard_bytes) {
  QuantizedFolderWriter writer(recipe, source_dir, out_dir, overwrite, max_shard_bytes);
  writer.add_embedding(m);
  for (const auto& L : m.layers) writer.add_layer(L);
  writer.finish(m, recipe);
}

bool is_quantized_folder(const std::string& dir) {
  std::ifstream f(fs::path(dir) / "config.json");
  if (!f) return false;
  try {
    auto j = nlohmann::json::parse(f);
    return j.contains("quantization_config") && j["quantization_config"].is_object() &&
           j["quantization_config"].value("quant_method", "") == "quad";
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

namespace {

// The bit patterns of an F16 tensor of this shape, held as stored; empty for any other dtype or
// shape (the caller's get_f32 then converts it or names the mismatch).
std::vector<uint16_t> f16_as_stored(const TensorStore& st, const std::string& name,
                                    const std::vector<int64_t>& shape) {
  const TensorView& t = st.get(name);
  if (t.dtype != DType::F16 || t.shape != shape) return {};
  std::vector<uint16_t> half(t.nbytes / 2);
  std::memcpy(half.data(), t.data, t.nbytes);
  return half;
}

void read_linear(const TensorStore& st, Linear& lin, int outlier, bool bias) {
  if (st.has(lin.name + ".weight_scales")) {
    const int k = lin.in - outlier;
    const TensorView& codes = st.get(lin.name + ".weight");
    if (codes.dtype == DType::U8) {
      check(k % 2 == 0 && codes.shape == std::vector<int64_t>{lin.out, k / 2}, "model",
            "{}: '{}' has the wrong shape for packed int4 codes", codes.file, codes.name);
    } else if (codes.dtype == DType::I8) {
      check(codes.shape == std::vector<int64_t>{lin.out, k}, "model",
            "{}: '{}' has the wrong shape for int8 codes", codes.file, codes.name);
    } else {
      fail("model", "{}: '{}' must be U8 (int4) or I8 codes, not {}", codes.file, codes.name,
           dtype_name(codes.dtype));
    }
    // F16 outlier columns stay in fp16 (backend linear_f16): half the bytes per decode step.
    std::vector<float> w_outlier;
    std::vector<uint16_t> w_outlier_f16;
    if (outlier > 0) {
      w_outlier_f16 = f16_as_stored(st, lin.name + ".w_outlier", {lin.out, outlier});
      if (w_outlier_f16.empty())
        w_outlier = st.get_f32(lin.name + ".w_outlier", {lin.out, outlier});
    }
    std::vector<float> scales = st.get_f32(lin.name + ".weight_scales", {lin.out, 1});
    const uint8_t* bytes = codes.data;
    if (codes.dtype == DType::U8)  // held as stored: every byte is two valid codes
      lin.qweight = QuantizedWeight::make_packed(outlier, lin.out, k, {bytes, bytes + codes.nbytes},
                                                 std::move(scales), std::move(w_outlier),
                                                 std::move(w_outlier_f16));
    else
      lin.qweight =
          QuantizedWeight::make(8, outlier, lin.out, k, {bytes, bytes + codes.nbytes},
                                std::move(scales), std::move(w_outlier), std::move(w_outlier_f16));
  } else {
    lin.weight = st.get_f32(lin.name + ".weight", {lin.out, lin.in});
  }
  if (bias) lin.bias = st.get_f32(lin.name + ".bias", {lin.out});
}

// fp weights for a quantized linear whose inputs stay unquantized (weight-only path).
void dequantize_if_needed(Linear& lin) {
  if (lin.qweight && !lin.input_quant.enabled()) lin.weight = lin.qweight->dequantized();
}

}  // namespace

Model load_quantized(const std::string& dir, const ModelConfig& c, const nlohmann::json& qc) {
  const std::string src = (fs::path(dir) / "config.json").string();
  Recipe recipe = Recipe::from_json(qc, src);
  Model m;
  m.config = c;
  m.config.tie_word_embeddings = false;
  const int d = c.hidden_size, r = recipe.rank, D = d + r, hd = c.head_dim,
            ff = c.intermediate_size;
  check(qc.value("residual_width", D) == D, "model", "{}: residual_width disagrees with rank", src);
  m.residual_width = D;
  TensorStore st = TensorStore::open_dir(dir);
  m.embed = st.get_f32("model.embed_tokens.weight", {c.vocab_size, D});
  m.layers.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    DecoderLayer& L = m.layers[i];
    L.attn_norm = L.mlp_norm = RmsNorm{{}, d, c.rms_norm_eps};
    auto setup = [&](Linear& lin, const std::string& name, int in, int out, int outlier,
                     bool bias) {
      lin.name = p + name;
      lin.in = in;
      lin.out = out;
      read_linear(st, lin, outlier, bias);
    };
    setup(L.q, "self_attn.q_proj", D, c.num_heads * hd, r, c.qkv_bias);
    setup(L.k, "self_attn.k_proj", D, c.num_kv_heads * hd, r, c.qkv_bias);
    setup(L.v, "self_attn.v_proj", D, c.num_kv_heads * hd, r, c.qkv_bias);
    setup(L.o, "self_attn.o_proj", c.num_heads * hd, D, 0, c.o_bias);
    setup(L.gate, "mlp.gate_proj", D, ff, r, c.mlp_bias);
    setup(L.up, "mlp.up_proj", D, ff, r, c.mlp_bias);
    setup(L.down, "mlp.down_proj", ff, D, 0, c.mlp_bias);
  }
  m.final_norm = RmsNorm{{}, d, c.rms_norm_eps};
  m.lm_head.name = "lm_head";
  m.lm_head.in = D;
  m.lm_head.out = c.vocab_size;
  // An F16 head stays in fp16 (backend linear_f16): the largest matrix a decode step reads.
  m.lm_head.weight_f16 = f16_as_stored(st, "lm_head.weight", {c.vocab_size, D});
  if (m.lm_head.weight_f16.empty())
    m.lm_head.weight = st.get_f32("lm_head.weight", {c.vocab_size, D});
  if (recipe.rotate()) attach_online_transforms(m);
  attach_quantizers(m, recipe);
  for (auto& L : m.layers)
    for (Linear* lin : L.linears()) dequantize_if_needed(*lin);
  m.ensure_positions(c.max_position_embeddings);
  return m;
}

}  // namespace quad
