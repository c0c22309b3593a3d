// The defaults of Backend::linear_f16 / linear_bf16 (widen the weights to fp32, then the
// backend's linear), of Backend::copy (host memory only), Backend::sample_token (on the host)
// and of Backend::gram_accumulate / finish_gram.
#include <cblas.h>

#include <cstring>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/backend/sampling.h"
#include "quad/core/error.h"
#include "quad/tensor/dtype.h"

namespace quad {

void Backend::linear_f16(const float* x, int n, int in, const uint16_t* w16, int out,
                         const float* bias, float* y) {
  std::vector<float> w(size_t(out) * in);
  for (size_t i = 0; i < w.size(); ++i) w[i] = f16_to_f32(w16[i]);
  linear(x, n, in, w.data(), out, bias, y);
}

void Backend::linear_bf16(const float* x, int n, int in, const uint16_t* w16, int out,
                          const float* bias, float* y) {
  std::vector<float> w(size_t(out) * in);
  for (size_t i = 0; i < w.size(); ++i) w[i] = bf16_to_f32(w16[i]);
  linear(x, n, in, w.data(), out, bias, y);
}

int32_t Backend::sample_token(const float* logits, int vocab, float temperature, float top_p,
                              double canonical) {
  std::vector<float> host;
  if (!host_accessible(logits)) {
    host.resize(vocab);
    copy(host.data(), logits, sizeof(float) * size_t(vocab));
    logits = host.data();
  }
  return sample_from_logits(logits, vocab, temperature, top_p, canonical);
}

void Backend::add_rmsnorm(float* x, const float* r, int n, int width, const float* weight,
                          int divisor, float eps, float* y) {
  add(x, r, size_t(n) * width);
  rmsnorm(x, n, width, weight, divisor, eps, y);
}

void Backend::rope_attention(float* q, int n, int n_heads, int n_kv_heads, int hd, float* k_cache,
                             const float* v_cache, int pos0, const int32_t* pos,
                             const RopeTable& table, float* out) {
  rope(q, n, n_heads, hd, pos, table);
  rope(k_cache + size_t(pos0) * n_kv_heads * hd, n, n_kv_heads, hd, pos, table);
  attention(q, n, n_heads, n_kv_heads, hd, k_cache, v_cache, pos0, out);
}

void Backend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}

void Backend::zero(void* dst, size_t bytes) {
  if (bytes > 0) std::memset(dst, 0, bytes);
}

void Backend::embed(const float* table, int vocab, int width, const int32_t* tokens, int n,
                    float* x) {
  (void)vocab;
  const size_t row = size_t(width);
  std::vector<float> staged;
  float* dst = x;
  if (!host_accessible(x)) {
    staged.resize(size_t(n) * row);
    dst = staged.data();
  }
  for (int i = 0; i < n; ++i)
    std::memcpy(dst + size_t(i) * row, table + size_t(tokens[i]) * row, sizeof(float) * row);
  if (dst != x) copy(x, dst, sizeof(float) * staged.size());
}

void Backend::kron_transform(float* x, int rows, int outer, const float* a, int inner,
                             const float* b) {
  check(rows >= 0 && outer > 0 && inner > 0 && a, "backend", "kron_transform: {} x ({} x {})", rows,
        outer, inner);
  std::vector<double> z(size_t(outer) * inner);
  for (int r = 0; r < rows; ++r) {
    float* row = x + size_t(r) * outer * inner;
    for (int o = 0; o < outer; ++o)  // Z = X·Bᵀ
      for (int i = 0; i < inner; ++i) {
        double acc = 0;
        if (!b)
          acc = row[size_t(o) * inner + i];
        else
          for (int j = 0; j < inner; ++j)
            acc += double(b[size_t(i) * inner + j]) * row[size_t(o) * inner + j];
        z[size_t(o) * inner + i] = acc;
      }
    for (int o = 0; o < outer; ++o)  // X = A·Z
      for (int i = 0; i < inner; ++i) {
        double acc = 0;
        for (int p = 0; p < outer; ++p)
          acc += double(a[size_t(o) * outer + p]) * z[size_t(p) * inner + i];
        row[size_t(o) * inner + i] = float(acc);
      }
  }
}

void Backend::gram_accumulate(const float* x, int n, int ld, int col, int k, double* acc) {
  check(n >= 0 && k >= 0 && col >= 0 && ld >= col + k, "backend",
        "gram_accumulate: columns [{}, {}) of rows with stride {}", col, col + k, ld);
  if (n == 0 || k == 0) return;
  std::vector<double> rows(size_t(n) * k);
  for (int t = 0; t < n; ++t)
    for (int c = 0; c < k; ++c) rows[size_t(t) * k + c] = x[size_t(t) * ld + col + c];
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, k, n, 1.0, rows.data(), k, 1.0, acc, k);
}

void Backend::finish_gram(double* acc, int k, double scale, double* diag) {
  // Row i writes column i below the diagonal: rows are independent.
#pragma omp parallel for schedule(dynamic, 64)
  for (int i = 0; i < k; ++i)
    for (int j = i; j < k; ++j) acc[size_t(j) * k + i] = acc[size_t(i) * k + j] *= scale;
  for (int i = 0; i < k; ++i) diag[i] = acc[size_t(i) * k + i];
}

}  // namespace quad
