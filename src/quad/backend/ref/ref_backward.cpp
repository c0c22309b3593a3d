// The reference backward ops: the default implementations of Backend's backward methods.
// Plain loops with fp64 accumulators; the oracle for finite-difference tests and for faster
// backends' overrides.
#include <algorithm>
#include <cmath>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/backend/ref/ref_ops.h"
#include "quad/core/error.h"

namespace quad {

void Backend::linear_backward_input(const float* dy, int n, int out, const float* w, int in,
                                    float* dx) {
  std::vector<double> acc(in);
  for (int i = 0; i < n; ++i) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int o = 0; o < out; ++o) {
      const double g = dy[size_t(i) * out + o];
      const float* wo = w + size_t(o) * in;
      for (int c = 0; c < in; ++c) acc[c] += g * wo[c];
    }
    for (int c = 0; c < in; ++c) dx[size_t(i) * in + c] = float(acc[c]);
  }
}

void Backend::linear_backward_weight(const float* dy, int n, int out, const float* x, int in,
                                     float* dw) {
  std::vector<double> acc(in);
  for (int o = 0; o < out; ++o) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int i = 0; i < n; ++i) {
      const double g = dy[size_t(i) * out + o];
      const float* xi = x + size_t(i) * in;
      for (int c = 0; c < in; ++c) acc[c] += g * xi[c];
    }
    for (int c = 0; c < in; ++c) dw[size_t(o) * in + c] = float(acc[c]);
  }
}

// y = w ⊙ x·inv with inv = (Σx²/divisor + eps)^(−1/2):
// dx = inv·(w⊙dy) − x·inv³/divisor · Σ_c (w⊙dy)_c·x_c.
void Backend::rmsnorm_backward(const float* x, const float* dy, int n, int width,
                               const float* weight, int divisor, float eps, float* dx) {
  for (int i = 0; i < n; ++i) {
    const float* xi = x + size_t(i) * width;
    const float* gi = dy + size_t(i) * width;
    double ss = 0, dot = 0;
    for (int c = 0; c < width; ++c) {
      const double g = weight ? double(weight[c]) * gi[c] : gi[c];
      ss += double(xi[c]) * xi[c];
      dot += g * xi[c];
    }
    const double inv = 1.0 / std::sqrt(ss / divisor + double(eps));
    const double k = dot * inv * inv * inv / divisor;
    for (int c = 0; c < width; ++c) {
      const double g = weight ? double(weight[c]) * gi[c] : gi[c];
      dx[size_t(i) * width + c] = float(g * inv - xi[c] * k);
    }
  }
}

// The transpose of the rotation is the rotation by the negative angle.
void Backend::rope_backward(float* d, int n, int heads, int head_dim, const int32_t* pos,
                            const RopeTable& table) {
  ref::rope(d, n, heads, head_dim, pos, table, true);
}

// Per head: P = softmax(q·kᵀ/√hd) (causal), out = P·v. Then dv = Pᵀ·d_out, dP = d_out·vᵀ,
// dS = P ⊙ (dP − Σ_t dP·P) / √hd, dq = dS·k, dk = dSᵀ·q. Keys and values of one KV head are
// shared by `group` query heads, so their gradients are summed over the group.
void Backend::attention_backward(const float* q, const float* k, const float* v, const float* d_out,
                                 int n, int n_heads, int n_kv_heads, int hd, float* dq, float* dk,
                                 float* dv) {
  const int group = n_heads / n_kv_heads;
  const double scale = 1.0 / std::sqrt(double(hd));
  std::fill(dk, dk + size_t(n) * n_kv_heads * hd, 0.0f);
  std::fill(dv, dv + size_t(n) * n_kv_heads * hd, 0.0f);
  std::vector<double> p(n), dp(n);
  std::vector<double> dk_acc(size_t(n) * n_kv_heads * hd, 0.0), dv_acc(dk_acc.size(), 0.0);
  auto at_q = [&](const float* base, int i, int h) {
    return base + (size_t(i) * n_heads + h) * hd;
  };
  auto kv_index = [&](int t, int kvh) { return (size_t(t) * n_kv_heads + kvh) * hd; };
  for (int h = 0; h < n_heads; ++h) {
    const int kvh = h / group;
    for (int i = 0; i < n; ++i) {
      const float* qi = at_q(q, i, h);
      const float* gi = at_q(d_out, i, h);
      double mx = -INFINITY;
      for (int t = 0; t <= i; ++t) {
        double s = 0;
        for (int c = 0; c < hd; ++c) s += double(qi[c]) * k[kv_index(t, kvh) + c];
        p[t] = s * scale;
        mx = std::max(mx, p[t]);
      }
      double sum = 0;
      for (int t = 0; t <= i; ++t) sum += p[t] = std::exp(p[t] - mx);
      double rowdot = 0;  // Σ_t dP_t · P_t
      for (int t = 0; t <= i; ++t) {
        p[t] /= sum;
        double g = 0;
        for (int c = 0; c < hd; ++c) g += double(gi[c]) * v[kv_index(t, kvh) + c];
        dp[t] = g;
        rowdot += g * p[t];
      }
      float* dqi = dq + (size_t(i) * n_heads + h) * hd;
      std::vector<double> dq_acc(hd, 0.0);
      for (int t = 0; t <= i; ++t) {
        const double ds = p[t] * (dp[t] - rowdot) * scale;
        for (int c = 0; c < hd; ++c) {
          dq_acc[c] += ds * k[kv_index(t, kvh) + c];
          dk_acc[kv_index(t, kvh) + c] += ds * qi[c];
          dv_acc[kv_index(t, kvh) + c] += p[t] * gi[c];
        }
      }
      for (int c = 0; c < hd; ++c) dqi[c] = float(dq_acc[c]);
    }
  }
  for (size_t i = 0; i < dk_acc.size(); ++i) {
    dk[i] = float(dk_acc[i]);
    dv[i] = float(dv_acc[i]);
  }
}

// silu(g) = g·σ(g), silu'(g) = σ(g)·(1 + g·(1 − σ(g))).
void Backend::silu_mul_backward(const float* gate, const float* up, const float* d_out, size_t n,
                                float* d_gate, float* d_up) {
  for (size_t i = 0; i < n; ++i) {
    const double g = gate[i], sig = 1.0 / (1.0 + std::exp(-g));
    d_gate[i] = float(d_out[i] * up[i] * sig * (1.0 + g * (1.0 - sig)));
    d_up[i] = float(d_out[i] * g * sig);
  }
}

}  // namespace quad
