// Invariance of every model transform (quantization off ⇒ same logits as the original model),
// the integer path against fake quantization, and saved folders (round trip, determinism).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "quad/backend/backend.h"
#include "quad/core/error.h"
#include "quad/io/safetensors.h"
#include "quad/io/tokenizer.h"
#include "quad/model/model.h"
#include "quad/model/quantized_folder.h"
#include "quad/quant/fold.h"
#include "quad/quant/kv_quant.h"
#include "quad/quant/pipeline.h"
#include "quad/quant/projection.h"
#include "quad/quant/quantize_folder.h"
#include "quad/quant/rotate.h"
#include "test_support.h"

namespace quad {
namespace {

namespace fs = std::filesystem;

std::vector<int32_t> probe_tokens(int vocab) {
  std::vector<int32_t> ids;
  for (int i = 0; i < 24; ++i) ids.push_back((i * 7919 + 31) % vocab);
  return ids;
}

// max |a − b| / max |b|
double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, double(std::fabs(a[i] - b[i])));
    den = std::max(den, double(std::fabs(b[i])));
  }
  return num / den;
}

Recipe unquantized_recipe(const std::string& method, int rank, bool center) {
  Recipe r;
  r.method = method;
  r.rank = rank;
  r.w_bits = r.a_bits = r.od_bits = 16;
  r.center_embeddings = center;
  r.p_nsamples = 4;
  r.p_seqlen = 128;
  r.calib_path = test::asset("data/c4/c4_validation_2k.jsonl").string();
  return r;
}

class Invariance : public ::testing::TestWithParam<std::string> {};

// fp32 end to end: the transforms are computed in fp64 and rounded once, so the logits move by
// fp32 rounding only; 1e-4 relative (to the largest logit) is the bound.
TEST_P(Invariance, FoldQuarotAndQuadKeepLogits) {
  QUAD_REQUIRE_ASSET(dir, "models/" + GetParam());
  QUAD_REQUIRE_ASSET(calib, "data/c4/c4_validation_2k.jsonl");
  Tokenizer tok = Tokenizer::load(dir);
  const Model original = Model::load(dir);
  const auto ids = probe_tokens(original.config.vocab_size);
  const auto want = test::all_logits(original, ids);
  {
    Model folded = original;
    fold_norms(folded);
    EXPECT_LT(max_rel(test::all_logits(folded, ids), want), 1e-5) << "fold";
  }
  const int d = original.config.hidden_size;
  for (auto [method, rank] : {std::pair{"quarot", 0}, {"quad", std::min(64, d / 4)}}) {
    Model m = original;
    Recipe r = unquantized_recipe(method, rank, false);
    auto backend = make_cpu_backend();
    quantize_model(m, tok, r, *backend, false);
    EXPECT_EQ(m.residual_width, d + rank);
    EXPECT_LT(max_rel(test::all_logits(m, ids), want), 1e-4) << method << " r=" << rank;
  }
}

// With centering on the model changes slightly, but identically for every rank: the QUAD
// transform on top stays exact.
TEST_P(Invariance, CenteredModelIsTheSameForEveryRank) {
  QUAD_REQUIRE_ASSET(dir, "models/" + GetParam());
  QUAD_REQUIRE_ASSET(calib, "data/c4/c4_validation_2k.jsonl");
  Tokenizer tok = Tokenizer::load(dir);
  const Model original = Model::load(dir);
  const auto ids = probe_tokens(original.config.vocab_size);
  Model centered = original;
  center_embeddings(centered);
  const auto want = test::all_logits(centered, ids);
  const int d = original.config.hidden_size;
  for (int rank : {0, 8, std::min(64, d / 4)}) {
    Model m = original;
    Recipe r = unquantized_recipe(rank ? "quad" : "quarot", rank, true);
    auto backend = make_cpu_backend();
    quantize_model(m, tok, r, *backend, false);
    EXPECT_LT(max_rel(test::all_logits(m, ids), want), 1e-4) << "rank " << rank;
  }
}

INSTANTIATE_TEST_SUITE_P(SharedModels, Invariance,
                         ::testing::Values("stories260K", "tiny-llama3-30m", "tiny-qwen2-27m"),
                         [](const auto& info) { return test::param_name(info.param); });

// The outlier basis: E·Eᵀ = I_d and the basis captures the dominant directions.
TEST(Projection, ExpansionIsAnIsometry) {
  const int d = 24, r = 5;
  std::vector<double> gram(d * d, 0.0);
  // A PSD matrix with a known dominant direction.
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) gram[i * d + j] = (i == j ? 1.0 + i : 0.0) + 0.1 * std::sin(i + j);
  OutlierBasis b = top_eigenvectors(gram, d, r);
  for (int c = 1; c < d; ++c) EXPECT_GE(b.eigenvalues[c - 1], b.eigenvalues[c]);
  std::vector<double> e = expansion_matrix(b);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) {
      double dot = 0;
      for (int k = 0; k < d + r; ++k) dot += e[i * (d + r) + k] * e[j * (d + r) + k];
      EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-12);
    }
  // T = E·blockdiag(R_r, R_d) keeps T·Tᵀ = I.
  std::vector<double> t = residual_transform(&b, d, true, 3);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) {
      double dot = 0;
      for (int k = 0; k < d + r; ++k) dot += t[i * (d + r) + k] * t[j * (d + r) + k];
      EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-12);
    }
}

Recipe small_w4_recipe() {
  Recipe r;  // W4A4/A8 defaults, small calibration
  r.rank = 8;
  r.p_nsamples = 4;
  r.p_seqlen = 64;
  r.nsamples = 4;
  r.seqlen = 64;
  r.calib_path = test::asset("data/c4/c4_validation_2k.jsonl").string();
  return r;
}

// The integer path (int codes, int32 accumulation, scales, fp outlier part) against fake
// quantization with dequantized fp weights, for every linear of a W4A4/A8 model on random
// inputs: only fp32 summation order differs. (Whole-model logits are not compared: at 4 bits a
// last-ulp difference can flip an activation code, which later layers amplify.)
TEST(QuantizedModel, IntegerPathMatchesFakeQuantization) {
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  QUAD_REQUIRE_ASSET(calib, "data/c4/c4_validation_2k.jsonl");
  Tokenizer tok = Tokenizer::load(dir);
  Model m = Model::load(dir);
  Recipe r = small_w4_recipe();
  auto backend = make_cpu_backend();
  std::vector<LayerError> errors;
  quantize_model(m, tok, r, *backend, false, &errors);
  // GPTQ's output error on the calibration data is below RTN's for every linear of every layer.
  ASSERT_EQ(errors.size(), 7u * m.config.num_layers);
  for (const auto& e : errors) {
    EXPECT_LT(e.gptq, e.rtn) << e.name;
    EXPECT_GT(e.gptq, 0.0) << e.name;
  }
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  ForwardScratch s;
  int checked = 0;
  for (auto& L : m.layers)
    for (Linear* lin : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) {
      ASSERT_TRUE(lin->integer_path()) << lin->name;
      const int n = 5;
      std::vector<float> x(size_t(n) * lin->in), y_int(size_t(n) * lin->out), y_fake(y_int.size());
      for (auto& v : x) v = dist(rng);
      apply_linear(*backend, *lin, x.data(), n, y_int.data(), s);
      Linear fake = *lin;
      fake.qweight.reset();
      apply_linear(*backend, fake, x.data(), n, y_fake.data(), s);
      EXPECT_LT(max_rel(y_int, y_fake), 1e-5) << lin->name;
      ++checked;
    }
  EXPECT_EQ(checked, 7 * m.config.num_layers);
  // Quantization does change the model (the comparison above is not vacuous).
  const auto ids = probe_tokens(m.config.vocab_size);
  EXPECT_GT(max_rel(test::all_logits(Model::load(dir), ids), test::all_logits(m, ids)), 1e-3);
}

// Saved folders reload to the same logits, and the same inputs and seed give identical bytes.
TEST(QuantizedModel, SaveLoadRoundTripAndDeterminism) {
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  QUAD_REQUIRE_ASSET(calib, "data/c4/c4_validation_2k.jsonl");
  Tokenizer tok = Tokenizer::load(dir);
  fs::path out = test::temp_dir("qsave");
  std::vector<float> first_logits;
  for (int run = 0; run < 2; ++run) {
    Model m = Model::load(dir);
    Recipe r = small_w4_recipe();
    auto backend = make_cpu_backend();
    quantize_model(m, tok, r, *backend, false);
    round_to_storage_precision(m, r);
    save_quantized(m, r, dir.string(), (out / ("run" + std::to_string(run))).string());
    if (run == 0) first_logits = test::all_logits(m, probe_tokens(m.config.vocab_size));
  }
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"})
    EXPECT_EQ(test::read_file(out / "run0" / f), test::read_file(out / "run1" / f)) << f;
  Model loaded = Model::load((out / "run0").string());
  EXPECT_EQ(loaded.residual_width, 64 + 8);
  const auto again = test::all_logits(loaded, probe_tokens(loaded.config.vocab_size));
  // Same values, different kernels (the loaded head is fp16, run by the fp16 GEMV/GEMM; the
  // in-memory one holds the same values in fp32, run by sgemm): only summation order differs.
  EXPECT_LT(max_rel(again, first_logits), 1e-5);
  // The loaded outlier columns stay in fp16 as stored (half the bytes a decode step reads), and
  // saving the loaded model writes the same tensors again.
  EXPECT_FALSE(loaded.layers[0].q.qweight->w_outlier_f16.empty());
  EXPECT_TRUE(loaded.layers[0].q.qweight->w_outlier.empty());
  save_quantized(loaded, small_w4_recipe(), (out / "run0").string(), (out / "again").string());
  EXPECT_EQ(test::read_file(out / "again" / "model.safetensors"),
            test::read_file(out / "run0" / "model.safetensors"));
  // refuses to overwrite
  Model m = Model::load(dir);
  Recipe r = small_w4_recipe();
  EXPECT_THROW(save_quantized(m, r, dir.string(), (out / "run0").string()), Error);
}

// `quad quantize`'s streaming path (quantize_folder: layers read from the mmapped folder one
// at a time, written to the shards as they finish) writes the same bytes as quantizing the
// whole model in memory and saving it, sharded or not, for QUAD (P needs every layer twice)
// and for RTN.
TEST(QuantizedModel, StreamedFolderEqualsInMemoryQuantization) {
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  QUAD_REQUIRE_ASSET(calib, "data/c4/c4_validation_2k.jsonl");
  Tokenizer tok = Tokenizer::load(dir);
  fs::path out = test::temp_dir("qstream");
  auto backend = make_cpu_backend();
  for (bool gptq : {true, false}) {
    SCOPED_TRACE(gptq);
    const std::string tag = gptq ? "gptq" : "rtn";
    Model m = Model::load(dir);
    Recipe r = small_w4_recipe();
    r.gptq = gptq;
    quantize_model(m, tok, r, *backend, false);
    round_to_storage_precision(m, r);
    save_quantized(m, r, dir.string(), (out / (tag + "_memory")).string(), false, 100'000);
    Recipe rs = small_w4_recipe();
    rs.gptq = gptq;
    FolderQuantizeOptions fo;
    fo.progress = false;
    fo.max_shard_bytes = 100'000;
    quantize_folder(dir.string(), (out / (tag + "_streamed")).string(), tok, rs, *backend, fo);
    EXPECT_EQ(rs.to_json(), r.to_json());
    int files = 0;
    for (const auto& e : fs::directory_iterator(out / (tag + "_memory"))) {
      ++files;
      const fs::path twin = out / (tag + "_streamed") / e.path().filename();
      EXPECT_EQ(test::read_file(e.path()), test::read_file(twin)) << twin;
    }
    EXPECT_GT(files, 5);  // config, tokenizer files, index and several shards
    EXPECT_TRUE(fs::exists(out / (tag + "_streamed") / "model.safetensors.index.json"));
  }
}

// quantize_layers holds one decoder layer at a time when the sink takes each finished one:
// every other slot is empty whenever a layer is done, and each layer is read at most twice.
TEST(QuantizedModel, LayersStreamOneAtATime) {
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  QUAD_REQUIRE_ASSET(calib, "data/c4/c4_validation_2k.jsonl");
  Tokenizer tok = Tokenizer::load(dir);
  const ModelConfig config = ModelConfig::load(dir);
  const TensorStore store = TensorStore::open_dir(dir.string());
  Model m = load_model_without_layers(store, config);
  std::vector<int> reads(config.num_layers, 0);
  int done = 0;
  LayerSink sink;
  bool embedding_first = false;
  sink.embedding_ready = [&](Model&) { embedding_first = done == 0; };
  sink.layer_done = [&](Model& model, int l) {
    EXPECT_EQ(l, done++);
    EXPECT_TRUE(model.layers[l].q.qweight != nullptr);
    for (int j = 0; j < config.num_layers; ++j) {
      if (j != l) {
        EXPECT_TRUE(model.layers[j].q.weight.empty()) << "layer " << j << " held";
      }
    }
    model.layers[l] = DecoderLayer{};
  };
  Recipe r = small_w4_recipe();
  auto backend = make_cpu_backend();
  quantize_layers(
      m,
      [&](int l) {
        ++reads[l];
        return load_decoder_layer(store, config, l);
      },
      sink, tok, r, *backend, false);
  EXPECT_TRUE(embedding_first);
  EXPECT_EQ(done, config.num_layers);
  for (int n : reads) EXPECT_EQ(n, 2);  // the statistic for P, then the transform
  EXPECT_EQ(m.residual_width, config.hidden_size + 8);
}

}  // namespace
}  // namespace quad

namespace quad {
namespace {

// The simulated int4 KV cache (QUAD-SPEC §4.6) perturbs the model, but only a little.
TEST(KvQuant, FourBitCacheChangesLogitsSlightly) {
  QUAD_REQUIRE_ASSET(dir, "models/tiny-llama3-30m");
  Model m = Model::load(dir);
  const auto ids = probe_tokens(m.config.vocab_size);
  const auto fp = test::all_logits(m, ids);
  m.kv_quant = make_kv_quantizer(m.config.head_dim, 4, 0.95f);
  const auto kv4 = test::all_logits(m, ids);
  EXPECT_GT(max_rel(kv4, fp), 1e-4);
  EXPECT_LT(max_rel(kv4, fp), 0.25);
  // 8-bit is much closer than 4-bit
  m.kv_quant = make_kv_quantizer(m.config.head_dim, 8, 0.95f);
  EXPECT_LT(max_rel(test::all_logits(m, ids), fp), max_rel(kv4, fp) / 4);
}

}  // namespace
}  // namespace quad
