// The reference backend: plain loops in double precision accumulators where it is cheap.
// Slow, obviously correct, and the oracle every other backend is tested against.
#include <algorithm>
#include <cmath>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/backend/ref/ref_ops.h"
#include "quad/quant/weight_quant.h"

namespace quad {

namespace {

class RefBackend final : public Backend {
 public:
  std::string name() const override { return "ref"; }

  void linear(const float* x, int n, int in, const float* w, int out, const float* bias,
              float* y) override {
    for (int i = 0; i < n; ++i)
      for (int o = 0; o < out; ++o) {
        double acc = bias ? bias[o] : 0.0;
        for (int k = 0; k < in; ++k) acc += double(x[size_t(i) * in + k]) * w[size_t(o) * in + k];
        y[size_t(i) * out + o] = float(acc);
      }
  }

  void rmsnorm(const float* x, int n, int width, const float* weight, int divisor, float eps,
               float* y) override {
    ref::rmsnorm(x, n, width, weight, divisor, eps, y);
  }

  void rope(float* x, int n, int heads, int head_dim, const int32_t* pos,
            const RopeTable& table) override {
    ref::rope(x, n, heads, head_dim, pos, table);
  }

  void attention(const float* q, int n, int n_heads, int n_kv_heads, int hd, const float* k_cache,
                 const float* v_cache, int pos0, float* out) override {
    const int group = n_heads / n_kv_heads;
    const double scale = 1.0 / std::sqrt(double(hd));
    std::vector<double> scores;
    for (int i = 0; i < n; ++i) {
      const int len = pos0 + i + 1;  // causal: keys 0..pos0+i
      scores.assign(len, 0.0);
      for (int h = 0; h < n_heads; ++h) {
        const int kvh = h / group;
        const float* qv = q + (size_t(i) * n_heads + h) * hd;
        double mx = -INFINITY;
        for (int t = 0; t < len; ++t) {
          const float* kv = k_cache + (size_t(t) * n_kv_heads + kvh) * hd;
          double s = 0;
          for (int c = 0; c < hd; ++c) s += double(qv[c]) * kv[c];
          scores[t] = s * scale;
          mx = std::max(mx, scores[t]);
        }
        double sum = 0;
        for (int t = 0; t < len; ++t) sum += scores[t] = std::exp(scores[t] - mx);
        float* o = out + (size_t(i) * n_heads + h) * hd;
        for (int c = 0; c < hd; ++c) {
          double acc = 0;
          for (int t = 0; t < len; ++t)
            acc += scores[t] * v_cache[(size_t(t) * n_kv_heads + kvh) * hd + c];
          o[c] = float(acc / sum);
        }
      }
    }
  }

  void silu_mul(const float* gate, const float* up, size_t n, float* out) override {
    ref::silu_mul(gate, up, n, out);
  }

  void add(float* x, const float* y, size_t n) override {
    for (size_t i = 0; i < n; ++i) x[i] += y[i];
  }

  void act_quant(float* x, int n, int width, const ActQuantSpec& spec) override {
    ref::act_quant(x, n, width, spec);
  }

  void quantize_rows(const float* x, int n, int width, int ld, int bits, float clip, int8_t* codes,
                     float* scales) override {
    ref::quantize_rows(x, n, width, ld, bits, clip, codes, scales);
  }

  void int_gemm(const int8_t* xq, const float* sx, int n, int k, const int8_t* wq, const float* sw,
                int out, float* y) override {
    for (int i = 0; i < n; ++i)
      for (int o = 0; o < out; ++o) {
        int64_t acc = 0;
        for (int c = 0; c < k; ++c) acc += int32_t(xq[size_t(i) * k + c]) * wq[size_t(o) * k + c];
        y[size_t(i) * out + o] = float(acc) * sx[i] * sw[o];
      }
  }

  void int4_gemm(const int8_t* xq, const float* sx, int n, int k, const uint8_t* w4,
                 const float* sw, int out, float* y) override {
    const std::vector<int8_t> w = unpack_int4(w4, out, k);
    int_gemm(xq, sx, n, k, w.data(), sw, out, y);
  }
};

}  // namespace

std::unique_ptr<Backend> make_ref_backend() {
  return std::make_unique<RefBackend>();
}

}  // namespace quad
