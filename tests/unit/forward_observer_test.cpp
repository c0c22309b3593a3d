// What a ForwardObserver sees of a decoder layer, in order, and that a layer stops once the
// observer has seen enough (GPTQ's group passes run a layer only up to the group's inputs,
// without the GEMMs of those inputs).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/model/model.h"
#include "quad/quant/random_model.h"

namespace quad {
namespace {

class RecordingObserver final : public ForwardObserver {
 public:
  explicit RecordingObserver(std::string last) : last_(std::move(last)) {}
  void norm_input(int layer, int which, const float*, int, int) override {
    seen.push_back(std::to_string(layer) + ":norm" + std::to_string(which));
  }
  void linear_input(int layer, const Linear& lin, const float*, int) override {
    const std::string name = lin.name.substr(lin.name.rfind('.') + 1);
    seen.push_back(std::to_string(layer) + ":" + name);
    done_ = done_ || name == last_;
  }
  bool seen_enough() const override { return done_; }
  std::vector<std::string> seen;

 private:
  std::string last_;
  bool done_ = false;
};

// The CPU backend, counting the fp GEMMs (Backend::linear) it runs.
class CountingBackend final : public Backend {
 public:
  std::string name() const override { return "counting"; }
  void linear(const float* x, int n, int in, const float* w, int out, const float* bias,
              float* y) override {
    ++linears;
    cpu_->linear(x, n, in, w, out, bias, y);
  }
  void rmsnorm(const float* x, int n, int width, const float* weight, int divisor, float eps,
               float* y) override {
    cpu_->rmsnorm(x, n, width, weight, divisor, eps, y);
  }
  void rope(float* x, int n, int heads, int head_dim, const int32_t* pos,
            const RopeTable& table) override {
    cpu_->rope(x, n, heads, head_dim, pos, table);
  }
  void attention(const float* q, int n, int n_heads, int n_kv_heads, int hd, const float* k,
                 const float* v, int pos0, float* out) override {
    cpu_->attention(q, n, n_heads, n_kv_heads, hd, k, v, pos0, out);
  }
  void silu_mul(const float* gate, const float* up, size_t n, float* out) override {
    cpu_->silu_mul(gate, up, n, out);
  }
  void add(float* x, const float* y, size_t n) override { cpu_->add(x, y, n); }
  void act_quant(float* x, int n, int width, const ActQuantSpec& spec) override {
    cpu_->act_quant(x, n, width, spec);
  }
  void quantize_rows(const float* x, int n, int width, int ld, int bits, float clip, int8_t* codes,
                     float* scales) override {
    cpu_->quantize_rows(x, n, width, ld, bits, clip, codes, scales);
  }
  void int_gemm(const int8_t* xq, const float* sx, int n, int k, const int8_t* wq, const float* sw,
                int out, float* y) override {
    cpu_->int_gemm(xq, sx, n, k, wq, sw, out, y);
  }
  void int4_gemm(const int8_t* xq, const float* sx, int n, int k, const uint8_t* w4,
                 const float* sw, int out, float* y) override {
    cpu_->int4_gemm(xq, sx, n, k, w4, sw, out, y);
  }
  int linears = 0;

 private:
  std::unique_ptr<Backend> cpu_ = make_cpu_backend();
};

TEST(ForwardObserver, SeesTheLayerInOrderAndStopsItWhenItHasEnough) {
  Model m = make_random_model(random_shape_config("tiny-llama3-30m"), RandomQuant{}, 5);
  m.ensure_positions(16);
  CountingBackend backend;
  const int n = 6, D = m.residual_width;
  const std::vector<std::string> all = {"2:norm0",     "2:q_proj",  "2:k_proj",
                                        "2:v_proj",    "2:o_proj",  "2:norm1",
                                        "2:gate_proj", "2:up_proj", "2:down_proj"};
  // For each place the layer may stop: the last linear the observer needs, how much of the
  // layer it sees, and how many GEMMs run. No GEMM runs whose output is not needed: q, k and v
  // (gate and up) read one input, shown for all three before their GEMMs.
  struct Stop {
    const char* last;
    int seen, gemms;
  };
  for (auto [last, count, gemms] :
       {Stop{"v_proj", 4, 0}, Stop{"o_proj", 5, 3}, Stop{"up_proj", 8, 4}, Stop{"down_proj", 9, 6},
        Stop{"never", 9, 7}}) {
    SCOPED_TRACE(last);
    std::vector<float> x(size_t(n) * D), k(size_t(n) * 1024), v(k.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 37) % 11) - 5.0f;
    ForwardScratch s;
    RecordingObserver obs(last);
    backend.linears = 0;
    forward_layer(m, backend, 2, x.data(), n, 0, k.data(), v.data(), s, &obs);
    EXPECT_EQ(obs.seen, std::vector<std::string>(all.begin(), all.begin() + count));
    EXPECT_EQ(backend.linears, gemms);
  }
}

}  // namespace
}  // namespace quad
