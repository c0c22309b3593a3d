// A backend that runs every op on another one but asks for host memory: the forward pass then
// keeps activations and the KV cache on the host and the inner (cuda) backend stages each op's
// buffers — the reference for the device-resident path.
#pragma once

#include <string>

#include "quad/backend/backend.h"

namespace quad::test {

class HostMemoryBackend final : public Backend {
 public:
  explicit HostMemoryBackend(Backend& inner) : b_(inner) {}
  std::string name() const override { return b_.name() + "-host-memory"; }
  void linear(const float* x, int n, int in, const float* w, int out, const float* bias,
              float* y) override {
    b_.linear(x, n, in, w, out, bias, y);
  }
  void linear_f16(const float* x, int n, int in, const uint16_t* w16, int out, const float* bias,
                  float* y) override {
    b_.linear_f16(x, n, in, w16, out, bias, y);
  }
  void linear_bf16(const float* x, int n, int in, const uint16_t* w16, int out, const float* bias,
                   float* y) override {
    b_.linear_bf16(x, n, in, w16, out, bias, y);
  }
  void outlier_linear_f16(const float* x, int n, int in, const uint16_t* w16, int out,
                          float* y) override {
    b_.outlier_linear_f16(x, n, in, w16, out, y);
  }
  void rmsnorm(const float* x, int n, int width, const float* weight, int divisor, float eps,
               float* y) override {
    b_.rmsnorm(x, n, width, weight, divisor, eps, y);
  }
  void rope(float* x, int n, int heads, int head_dim, const int32_t* pos,
            const RopeTable& table) override {
    b_.rope(x, n, heads, head_dim, pos, table);
  }
  void attention(const float* q, int n, int n_heads, int n_kv_heads, int hd, const float* k_cache,
                 const float* v_cache, int pos0, float* out) override {
    b_.attention(q, n, n_heads, n_kv_heads, hd, k_cache, v_cache, pos0, out);
  }
  void silu_mul(const float* gate, const float* up, size_t n, float* out) override {
    b_.silu_mul(gate, up, n, out);
  }
  void add(float* x, const float* y, size_t n) override { b_.add(x, y, n); }
  void act_quant(float* x, int n, int width, const ActQuantSpec& spec) override {
    b_.act_quant(x, n, width, spec);
  }
  void quantize_rows(const float* x, int n, int width, int ld, int bits, float clip, int8_t* codes,
                     float* scales) override {
    b_.quantize_rows(x, n, width, ld, bits, clip, codes, scales);
  }
  void int_gemm(const int8_t* xq, const float* sx, int n, int k, const int8_t* wq, const float* sw,
                int out, float* y) override {
    b_.int_gemm(xq, sx, n, k, wq, sw, out, y);
  }
  void int4_gemm(const int8_t* xq, const float* sx, int n, int k, const uint8_t* w4,
                 const float* sw, int out, float* y) override {
    b_.int4_gemm(xq, sx, n, k, w4, sw, out, y);
  }
  bool fused_linear(const Linear& lin, const float* x, int n, float* y) override {
    return b_.fused_linear(lin, x, n, y);
  }

 private:
  Backend& b_;
};

}  // namespace quad::test
