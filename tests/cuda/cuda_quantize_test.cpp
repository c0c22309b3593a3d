// The quantization pipeline with its calibration passes on the GPU (activations, P's Gram
// matrix and GPTQ's Hessians in device memory) against the same pipeline on the CPU. The two
// forward passes differ by fp32 rounding (cuBLAS vs OpenBLAS sums), so the statistics agree to
// ~1e-6 relative, not bit for bit; GPTQ then rounds a few weights the other way.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "cuda_test_util.h"
#include "quad/io/tokenizer.h"
#include "quad/model/model.h"
#include "quad/quant/calibration.h"
#include "quad/quant/fold.h"
#include "quad/quant/pipeline.h"
#include "quad/quant/projection.h"
#include "test_support.h"

namespace quad {
namespace {

std::vector<double> gram_on(const Model& original, Backend& backend,
                            const std::vector<std::vector<int32_t>>& windows) {
  Model m = original;
  fold_final_norm(m);
  std::vector<DecoderLayer> layers = std::move(m.layers);
  m.layers.assign(layers.size(), DecoderLayer{});
  return residual_gram(
      m,
      [&](int l) {
        DecoderLayer layer = layers[l];
        fold_layer_norms(layer);
        return layer;
      },
      backend, windows, false);
}

TEST(CudaQuantize, GramMatrixMatchesTheCpu) {
  QUAD_REQUIRE_GPU();
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  QUAD_REQUIRE_ASSET(calib, "data/c4/c4_validation_2k.jsonl");
  const Model model = Model::load(dir);
  const Tokenizer tok = Tokenizer::load(dir);
  const auto windows =
      sample_calibration_windows(tok, load_calibration_documents(calib.string()), 6, 200, 1);
  auto cpu = make_cpu_backend();
  auto cuda = make_backend("cuda");
  const auto want = gram_on(model, *cpu, windows);
  const auto got = gram_on(model, *cuda, windows);
  double err = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::fabs(got[i] - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  std::printf("gram cpu vs cuda: max abs diff %.3g of max entry %.3g\n", err, scale);
  EXPECT_GT(scale, 0);
  EXPECT_LT(err, 1e-5 * scale);
}

// Whole GPTQ quantization (r = 16, W4A4/A8) on either backend: the same codes almost everywhere.
TEST(CudaQuantize, GptqOnTheGpuGivesTheCpuCodes) {
  QUAD_REQUIRE_GPU();
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  QUAD_REQUIRE_ASSET(calib, "data/c4/c4_validation_2k.jsonl");
  const Tokenizer tok = Tokenizer::load(dir);
  std::vector<Model> out;
  for (const char* name : {"cpu", "cuda"}) {
    Recipe recipe;
    recipe.rank = 16;
    recipe.nsamples = 8;
    recipe.seqlen = 256;
    recipe.p_nsamples = 8;
    recipe.p_seqlen = 128;
    recipe.calib_path = calib.string();
    Model m = Model::load(dir);
    auto backend = make_backend(name);
    quantize_model(m, tok, recipe, *backend, false);
    out.push_back(std::move(m));
  }
  size_t same = 0, total = 0;
  for (size_t l = 0; l < out[0].layers.size(); ++l) {
    DecoderLayer& a = out[0].layers[l];
    DecoderLayer& b = out[1].layers[l];
    for (auto [la, lb] : {std::pair{&a.q, &b.q},
                          {&a.k, &b.k},
                          {&a.v, &b.v},
                          {&a.o, &b.o},
                          {&a.gate, &b.gate},
                          {&a.up, &b.up},
                          {&a.down, &b.down}}) {
      ASSERT_TRUE(la->qweight && lb->qweight) << la->name;
      const auto ca = la->qweight->dequantized(), cb = lb->qweight->dequantized();
      ASSERT_EQ(ca.size(), cb.size());
      for (size_t i = 0; i < ca.size(); ++i) same += ca[i] == cb[i];
      total += ca.size();
    }
  }
  const double agree = double(same) / double(total);
  std::printf("gptq cpu vs cuda: %zu of %zu weights identical (%.4f%%)\n", same, total,
              100 * agree);
  EXPECT_GT(agree, 0.99);
}

}  // namespace
}  // namespace quad
