#include "checking_backend.h"

#include <cstring>

namespace quad::test {

void CheckingBackend::record(const std::string& op, const float* tested,
                             const std::vector<float>& oracle) {
  OpStats& s = stats_[op];
  ++s.calls;
  double num = 0, den = 0;
  bool exact = true;
  for (size_t i = 0; i < oracle.size(); ++i) {
    const double d = double(tested[i]) - oracle[i];
    num += d * d;
    den += double(oracle[i]) * oracle[i];
    exact = exact && tested[i] == oracle[i];
  }
  const double e = den > 0 ? num / den : num;
  if (!exact) ++s.inexact;
  if (!(e <= s.worst_nmse)) s.worst_nmse = e;  // NaN sticks
}

template <typename T>
void CheckingBackend::record_exact(const std::string& op, const T* tested,
                                   const std::vector<T>& oracle) {
  OpStats& s = stats_[op];
  ++s.calls;
  if (std::memcmp(tested, oracle.data(), sizeof(T) * oracle.size()) != 0) ++s.inexact;
}

void CheckingBackend::linear(const float* x, int n, int in, const float* w, int out,
                             const float* bias, float* y) {
  std::vector<float> ref(size_t(n) * out);
  o_.linear(x, n, in, w, out, bias, ref.data());
  t_.linear(x, n, in, w, out, bias, y);
  record("linear", y, ref);
}

void CheckingBackend::rmsnorm(const float* x, int n, int width, const float* weight, int divisor,
                              float eps, float* y) {
  std::vector<float> ref(size_t(n) * width);
  o_.rmsnorm(x, n, width, weight, divisor, eps, ref.data());
  t_.rmsnorm(x, n, width, weight, divisor, eps, y);
  record("rmsnorm", y, ref);
}

void CheckingBackend::rope(float* x, int n, int heads, int head_dim, const int32_t* pos,
                           const RopeTable& table) {
  std::vector<float> ref(x, x + size_t(n) * heads * head_dim);
  o_.rope(ref.data(), n, heads, head_dim, pos, table);
  t_.rope(x, n, heads, head_dim, pos, table);
  record("rope", x, ref);
}

void CheckingBackend::attention(const float* q, int n, int n_heads, int n_kv_heads, int hd,
                                const float* k_cache, const float* v_cache, int pos0, float* out) {
  std::vector<float> ref(size_t(n) * n_heads * hd);
  o_.attention(q, n, n_heads, n_kv_heads, hd, k_cache, v_cache, pos0, ref.data());
  t_.attention(q, n, n_heads, n_kv_heads, hd, k_cache, v_cache, pos0, out);
  record("attention", out, ref);
}

void CheckingBackend::silu_mul(const float* gate, const float* up, size_t n, float* out) {
  std::vector<float> ref(n);
  o_.silu_mul(gate, up, n, ref.data());
  t_.silu_mul(gate, up, n, out);
  record("silu_mul", out, ref);
}

void CheckingBackend::add(float* x, const float* y, size_t n) {
  std::vector<float> ref(x, x + n);
  o_.add(ref.data(), y, n);
  t_.add(x, y, n);
  record_exact("add", x, ref);
}

void CheckingBackend::act_quant(float* x, int n, int width, const ActQuantSpec& spec) {
  std::vector<float> ref(x, x + size_t(n) * width);
  o_.act_quant(ref.data(), n, width, spec);
  t_.act_quant(x, n, width, spec);
  record_exact("act_quant", x, ref);
}

void CheckingBackend::quantize_rows(const float* x, int n, int width, int ld, int bits, float clip,
                                    int8_t* codes, float* scales) {
  std::vector<int8_t> ref_codes(size_t(n) * width);
  std::vector<float> ref_scales(n);
  o_.quantize_rows(x, n, width, ld, bits, clip, ref_codes.data(), ref_scales.data());
  t_.quantize_rows(x, n, width, ld, bits, clip, codes, scales);
  record_exact("quantize_rows codes", codes, ref_codes);
  record_exact("quantize_rows scales", scales, ref_scales);
}

void CheckingBackend::int_gemm(const int8_t* xq, const float* sx, int n, int k, const int8_t* wq,
                               const float* sw, int out, float* y) {
  std::vector<float> ref(size_t(n) * out);
  o_.int_gemm(xq, sx, n, k, wq, sw, out, ref.data());
  t_.int_gemm(xq, sx, n, k, wq, sw, out, y);
  record_exact("int_gemm", y, ref);
}

void CheckingBackend::int4_gemm(const int8_t* xq, const float* sx, int n, int k, const uint8_t* w4,
                                const float* sw, int out, float* y) {
  std::vector<float> ref(size_t(n) * out);
  o_.int4_gemm(xq, sx, n, k, w4, sw, out, ref.data());
  t_.int4_gemm(xq, sx, n, k, w4, sw, out, y);
  record_exact("int4_gemm", y, ref);
}

}  // namespace quad::test
