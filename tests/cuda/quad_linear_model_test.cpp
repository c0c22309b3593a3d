// The fused QUAD kernels (device/quad_linear.h) on the layers of a real quantized model: every
// linear of the first and last layer of tiny-llama3-30m and tiny-qwen2-27m, quantized QUAD W4A4/A8
// and W4A4 on the CPU with fast calibration settings, uploaded with DeviceQuadLinear and run on
// random input rows, against the CPU model's own computation of the same layer
// (model/forward.cpp's apply_linear after the layer's RMSNorm). Differences come from bf16
// inputs and outputs and the few codes that the GPU's fp32 norm / Hadamard round to the other
// side.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "cuda_test_util.h"
#include "quad/backend/cuda/quad_linear_upload.h"
#include "quad/core/error.h"
#include "quad/model/model.h"
#include "test_support.h"

namespace quad {
namespace {

// One int4 activation code on the other side of a rounding boundary moves a single row's output
// by about a code step over √k terms: NMSE ≈ (3/7)² / k ≈ 4e-4 at k = 512 (seen: 5.4e-4 on a
// 1-row v_proj input; every other layer and row count stayed under 2e-4). A layout, scale or
// transform error gives NMSE of order 1.
constexpr double kLayerNmse = 2e-3;

std::vector<float> bf16_round(const std::vector<float>& x, std::vector<__nv_bfloat16>* out) {
  std::vector<float> r(x.size());
  out->resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    (*out)[i] = __float2bfloat16_rn(x[i]);
    r[i] = __bfloat162float((*out)[i]);
  }
  return r;
}

// One linear: CPU reference (norm for U-type, then apply_linear) vs DeviceQuadLinear.
double layer_nmse(const Model& m, const DecoderLayer& L, const Linear& lin, int M,
                  std::mt19937& rng) {
  auto cpu_backend = make_cpu_backend();
  Backend& cpu = *cpu_backend;
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(size_t(M) * lin.in);
  for (auto& v : x) v = nd(rng);
  std::vector<__nv_bfloat16> xb;
  x = bf16_round(x, &xb);

  cuda::DeviceQuadLinear dev(lin);
  const RmsNorm& norm = &lin == &L.q || &lin == &L.k || &lin == &L.v ? L.attn_norm : L.mlp_norm;
  std::vector<float> input = x;
  if (dev.u_type())
    cpu.rmsnorm(x.data(), M, lin.in, norm.weight.empty() ? nullptr : norm.weight.data(),
                norm.divisor, norm.eps, input.data());
  std::vector<float> y_ref(size_t(M) * lin.out);
  ForwardScratch scratch;
  apply_linear(cpu, lin, input.data(), M, y_ref.data(), scratch, 0, nullptr);

  __nv_bfloat16 *dx = nullptr, *dy = nullptr;
  EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&dx), xb.size() * 2), cudaSuccess);
  EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&dy), y_ref.size() * 2), cudaSuccess);
  cudaMemcpy(dx, xb.data(), xb.size() * 2, cudaMemcpyHostToDevice);
  cudaMemset(dy, 0xFF, y_ref.size() * 2);  // NaN poison
  dev.forward(dx, M, norm.divisor, norm.eps, dy, nullptr);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<__nv_bfloat16> yb(y_ref.size());
  cudaMemcpy(yb.data(), dy, yb.size() * 2, cudaMemcpyDeviceToHost);
  cudaFree(dx);
  cudaFree(dy);
  std::vector<float> y(yb.size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = __bfloat162float(yb[i]);
  (void)m;
  return test::nmse(y, y_ref);
}

struct Case {
  const char* model;
  const char* flags;  // quantization mode
};

class QuadLinearModel : public ::testing::TestWithParam<Case> {};

TEST_P(QuadLinearModel, EveryLinearMatchesTheCpuModel) {
  QUAD_REQUIRE_GPU();
  const Case c = GetParam();
  QUAD_REQUIRE_ASSET(model, std::string("models/") + c.model);
  QUAD_REQUIRE_ASSET(text, "data/wikitext2/wiki.test.raw");
  const auto q = test::temp_dir("quadlin") / "q";
  auto r = test::run_quad("quantize -m '" + model.string() + "' -o '" + q.string() + "' --calib '" +
                          text.string() + "' --rank 32 --nsamples 4 --seqlen 128 --p-nsamples 4" +
                          " --p-seqlen 128 " + c.flags);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Model m = Model::load(q.string());
  std::mt19937 rng(21);
  for (int l : {0, int(m.layers.size()) - 1}) {
    const DecoderLayer& L = m.layers[l];
    for (const Linear* lin : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down})
      for (int M : {1, 5, 37}) {
        const double e = layer_nmse(m, L, *lin, M, rng);
        EXPECT_LT(e, kLayerNmse) << lin->name << " M " << M;
      }
  }
}

INSTANTIATE_TEST_SUITE_P(SharedModels, QuadLinearModel,
                         ::testing::Values(Case{"tiny-llama3-30m", ""},
                                           Case{"tiny-llama3-30m", "--od-bits 4"},
                                           Case{"tiny-qwen2-27m", ""}),
                         [](const auto& info) {
                           return test::param_name(std::string(info.param.model) +
                                                   (info.param.flags[0] ? "_a4" : "_a8"));
                         });

TEST(QuadLinearModel, RefusesLayersWithoutIntegerInputs) {
  Linear lin;
  lin.name = "fp";
  lin.in = lin.out = 8;
  lin.weight.assign(64, 0.5f);
  EXPECT_FALSE(cuda::DeviceQuadLinear::supports(lin));
  EXPECT_NE(cuda::DeviceQuadLinear::unsupported(lin).find("integer weights"), std::string::npos);
  try {
    cuda::DeviceQuadLinear dev{lin};
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {  // one line naming the layer and the reason
    const std::string what = e.what();
    EXPECT_NE(what.find("fp: "), std::string::npos) << what;
    EXPECT_NE(what.find("integer weights"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace quad
