// The CPU backend: OpenBLAS for the fp32 GEMMs (linear layers, attention scores and values),
// OpenMP across rows or heads for everything else.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/backend/cpu/kernels/int4_gemm.h"
#include "quad/backend/cpu/kernels/linear_f16.h"
#include "quad/backend/cpu/serial_blas.h"
#include "quad/backend/ref/ref_ops.h"

namespace quad {

namespace {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }

  void linear(const float* x, int n, int in, const float* w, int out, const float* bias,
              float* y) override {
    blas_split(out, 16, 2.0 * n * out * in, [&](int o0, int o1) {
      const float* wb = w + size_t(o0) * in;
      if (n == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, o1 - o0, in, 1.0f, wb, in, x, 1, 0.0f, y + o0, 1);
      else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, o1 - o0, in, 1.0f, x, in, wb, in,
                    0.0f, y + o0, out);
    });
    if (bias) {
#pragma omp parallel for schedule(static) if (size_t(n) * out > 65536)
      for (int i = 0; i < n; ++i)
        for (int o = 0; o < out; ++o) y[size_t(i) * out + o] += bias[o];
    }
  }

  void linear_f16(const float* x, int n, int in, const uint16_t* w16, int out, const float* bias,
                  float* y) override {
    kernels::linear_f16(x, n, in, w16, out, bias, y);
  }
  void linear_bf16(const float* x, int n, int in, const uint16_t* w16, int out, const float* bias,
                   float* y) override {
    kernels::linear_bf16(x, n, in, w16, out, bias, y);
  }

  void rmsnorm(const float* x, int n, int width, const float* weight, int divisor, float eps,
               float* y) override {
#pragma omp parallel for schedule(static) if (n > 1)
    for (int i = 0; i < n; ++i)
      ref::rmsnorm(x + size_t(i) * width, 1, width, weight, divisor, eps, y + size_t(i) * width);
  }

  void rope(float* x, int n, int heads, int head_dim, const int32_t* pos,
            const RopeTable& table) override {
#pragma omp parallel for schedule(static) if (n > 1)
    for (int i = 0; i < n; ++i)
      ref::rope(x + size_t(i) * heads * head_dim, 1, heads, head_dim, pos + i, table);
  }

  void attention(const float* q, int n, int n_heads, int n_kv_heads, int hd, const float* k_cache,
                 const float* v_cache, int pos0, float* out) override {
    if (n == 1) return attention_decode(q, n_heads, n_kv_heads, hd, k_cache, v_cache, pos0, out);
    const int group = n_heads / n_kv_heads;
    const int len = pos0 + n;  // keys visible to the last query
    const float scale = 1.0f / std::sqrt(float(hd));
    const int q_stride = n_heads * hd, kv_stride = n_kv_heads * hd;
    const SerialBlas serial_blas;
#pragma omp parallel
    {
      std::vector<float> scores(size_t(n) * len);  // (n, len) for one head
#pragma omp for schedule(dynamic)
      for (int h = 0; h < n_heads; ++h) {
        const int kvh = h / group;
        // scores = q_h · k_hᵀ · scale; BLAS runs single-threaded inside the parallel region
        // (SerialBlas).
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, len, hd, scale, q + h * hd,
                    q_stride, k_cache + kvh * hd, kv_stride, 0.0f, scores.data(), len);
        for (int i = 0; i < n; ++i) {
          float* row = scores.data() + size_t(i) * len;
          const int visible = pos0 + i + 1;
          float mx = -INFINITY;
          for (int t = 0; t < visible; ++t) mx = std::max(mx, row[t]);
          float sum = 0;
          for (int t = 0; t < visible; ++t) sum += row[t] = std::exp(row[t] - mx);
          const float inv = 1.0f / sum;
          for (int t = 0; t < visible; ++t) row[t] *= inv;
          std::fill(row + visible, row + len, 0.0f);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, len, 1.0f, scores.data(), len,
                    v_cache + kvh * hd, kv_stride, 0.0f, out + h * hd, q_stride);
      }
    }
  }

  // One query token: plain loops per head (OpenBLAS sgemm with a single row spends more time
  // packing than computing, and decode calls it twice per head and layer).
  void attention_decode(const float* q, int n_heads, int n_kv_heads, int hd, const float* k_cache,
                        const float* v_cache, int pos, float* out) {
    const int group = n_heads / n_kv_heads, len = pos + 1;
    const float scale = 1.0f / std::sqrt(float(hd));
    const size_t kv_stride = size_t(n_kv_heads) * hd;
#pragma omp parallel if (size_t(n_heads) * len * hd > 32768)
    {
      std::vector<float> p(len);
#pragma omp for schedule(static)
      for (int h = 0; h < n_heads; ++h) {
        const float* qh = q + size_t(h) * hd;
        const float* kh = k_cache + size_t(h / group) * hd;
        const float* vh = v_cache + size_t(h / group) * hd;
        float mx = -INFINITY;
        for (int t = 0; t < len; ++t) {
          const float* kt = kh + t * kv_stride;
          float s = 0;
#pragma omp simd reduction(+ : s)
          for (int c = 0; c < hd; ++c) s += qh[c] * kt[c];
          p[t] = s * scale;
          mx = std::max(mx, p[t]);
        }
        float sum = 0;
        for (int t = 0; t < len; ++t) sum += p[t] = std::exp(p[t] - mx);
        float* o = out + size_t(h) * hd;
        std::fill(o, o + hd, 0.0f);
        for (int t = 0; t < len; ++t) {
          const float* vt = vh + t * kv_stride;
          const float w = p[t] / sum;
#pragma omp simd
          for (int c = 0; c < hd; ++c) o[c] += w * vt[c];
        }
      }
    }
  }

  void silu_mul(const float* gate, const float* up, size_t n, float* out) override {
    const size_t chunk = 4096;
    const long chunks = long((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (long c = 0; c < chunks; ++c) {
      const size_t b = size_t(c) * chunk, e = std::min(n, b + chunk);
      ref::silu_mul(gate + b, up + b, e - b, out + b);
    }
  }

  void add(float* x, const float* y, size_t n) override {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; ++i) x[i] += y[i];
  }

  void act_quant(float* x, int n, int width, const ActQuantSpec& spec) override {
#pragma omp parallel for schedule(static) if (n > 1)
    for (int i = 0; i < n; ++i) ref::act_quant(x + size_t(i) * width, 1, width, spec);
  }

  void quantize_rows(const float* x, int n, int width, int ld, int bits, float clip, int8_t* codes,
                     float* scales) override {
#pragma omp parallel for schedule(static) if (n > 1)
    for (int i = 0; i < n; ++i)
      ref::quantize_rows(x + size_t(i) * ld, 1, width, ld, bits, clip, codes + size_t(i) * width,
                         scales + i);
  }

  // Tiles of 16 weight rows × all tokens, so each weight row is streamed once per tile while
  // the token codes stay in cache. (The SIMD kernels of the fast-inference work replace this.)
  void int_gemm(const int8_t* xq, const float* sx, int n, int k, const int8_t* wq, const float* sw,
                int out, float* y) override {
    const int tile = 16;
    const int tiles = (out + tile - 1) / tile;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < tiles; ++t) {
      const int o_end = std::min(out, (t + 1) * tile);
      for (int i = 0; i < n; ++i) {
        const int8_t* xi = xq + size_t(i) * k;
        for (int o = t * tile; o < o_end; ++o)
          y[size_t(i) * out + o] = float(ref::dot_i8(xi, wq + size_t(o) * k, k)) * sx[i] * sw[o];
      }
    }
  }

  // AVX-512 VNNI / AVX2 kernels picked at run time (backend/cpu/kernels/int4_gemm.h).
  void int4_gemm(const int8_t* xq, const float* sx, int n, int k, const uint8_t* w4,
                 const float* sw, int out, float* y) override {
    kernels::gemm_s8_s4(xq, sx, n, k, w4, sw, out, y);
  }

  // ---- Backward ops: BLAS for the products, the reference row functions in parallel for the
  // rest.
  void linear_backward_input(const float* dy, int n, int out, const float* w, int in,
                             float* dx) override {
    blas_split(in, 16, 2.0 * n * in * out, [&](int c0, int c1) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, c1 - c0, out, 1.0f, dy, out, w + c0,
                  in, 0.0f, dx + c0, in);
    });
  }

  void linear_backward_weight(const float* dy, int n, int out, const float* x, int in,
                              float* dw) override {
    blas_split(out, 16, 2.0 * n * in * out, [&](int o0, int o1) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o1 - o0, in, n, 1.0f, dy + o0, out, x,
                  in, 0.0f, dw + size_t(o0) * in, in);
    });
  }

  void rmsnorm_backward(const float* x, const float* dy, int n, int width, const float* weight,
                        int divisor, float eps, float* dx) override {
#pragma omp parallel for schedule(static) if (n > 1)
    for (int i = 0; i < n; ++i) {
      const size_t o = size_t(i) * width;
      Backend::rmsnorm_backward(x + o, dy + o, 1, width, weight, divisor, eps, dx + o);
    }
  }

  void rope_backward(float* d, int n, int heads, int head_dim, const int32_t* pos,
                     const RopeTable& table) override {
#pragma omp parallel for schedule(static) if (n > 1)
    for (int i = 0; i < n; ++i)
      Backend::rope_backward(d + size_t(i) * heads * head_dim, 1, heads, head_dim, pos + i, table);
  }

  void silu_mul_backward(const float* gate, const float* up, const float* d_out, size_t n,
                         float* d_gate, float* d_up) override {
    const size_t chunk = 4096;
    const long chunks = long((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (long c = 0; c < chunks; ++c) {
      const size_t b = size_t(c) * chunk, e = std::min(n, b + chunk);
      Backend::silu_mul_backward(gate + b, up + b, d_out + b, e - b, d_gate + b, d_up + b);
    }
  }

  // One KV head per task (its gradients sum over the query heads of its group); per query head
  // the probabilities are recomputed with BLAS, as in the forward pass.
  void attention_backward(const float* q, const float* k, const float* v, const float* d_out, int n,
                          int n_heads, int n_kv_heads, int hd, float* dq, float* dk,
                          float* dv) override {
    const int group = n_heads / n_kv_heads;
    const float scale = 1.0f / std::sqrt(float(hd));
    const int q_stride = n_heads * hd, kv_stride = n_kv_heads * hd;
    const SerialBlas serial_blas;
#pragma omp parallel
    {
      std::vector<float> p(size_t(n) * n), dp(size_t(n) * n);  // (n, n) for one head
#pragma omp for schedule(dynamic)
      for (int kvh = 0; kvh < n_kv_heads; ++kvh) {
        const float* kh = k + kvh * hd;
        const float* vh = v + kvh * hd;
        float* dkh = dk + kvh * hd;
        float* dvh = dv + kvh * hd;
        for (int g = 0; g < group; ++g) {
          const int h = kvh * group + g;
          const float* qh = q + h * hd;
          const float* gh = d_out + h * hd;
          const float beta = g == 0 ? 0.0f : 1.0f;  // the first head of the group overwrites
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, hd, scale, qh, q_stride, kh,
                      kv_stride, 0.0f, p.data(), n);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, hd, 1.0f, gh, q_stride, vh,
                      kv_stride, 0.0f, dp.data(), n);
          for (int i = 0; i < n; ++i) {
            float* pi = p.data() + size_t(i) * n;
            float* dpi = dp.data() + size_t(i) * n;
            float mx = -INFINITY;
            for (int t = 0; t <= i; ++t) mx = std::max(mx, pi[t]);
            float sum = 0;
            for (int t = 0; t <= i; ++t) sum += pi[t] = std::exp(pi[t] - mx);
            const float inv = 1.0f / sum;
            float rowdot = 0;
            for (int t = 0; t <= i; ++t) {
              pi[t] *= inv;
              rowdot += pi[t] * dpi[t];
            }
            for (int t = 0; t <= i; ++t) dpi[t] = pi[t] * (dpi[t] - rowdot) * scale;  // dS
            std::fill(pi + i + 1, pi + n, 0.0f);
            std::fill(dpi + i + 1, dpi + n, 0.0f);
          }
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, hd, n, 1.0f, p.data(), n, gh,
                      q_stride, beta, dvh, kv_stride);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, n, 1.0f, dp.data(), n, kh,
                      kv_stride, 0.0f, dq + h * hd, q_stride);
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, hd, n, 1.0f, dp.data(), n, qh,
                      q_stride, beta, dkh, kv_stride);
        }
      }
    }
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() {
  return std::make_unique<CpuBackend>();
}

}  // namespace quad
