#include "quad/quant/rotate.h"

#include <cblas.h>

#include "quad/core/error.h"
#include "quad/quant/hadamard.h"
#include "quad/quant/online_transforms.h"

namespace quad {

namespace {

std::vector<double> to_double(const std::vector<float>& v) {
  std::vector<double> out(v.size());
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < v.size(); ++i) out[i] = v[i];
  return out;
}
// out (v.size()) = v rounded to fp32.
void narrow(const std::vector<double>& v, float* out) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < v.size(); ++i) out[i] = float(v[i]);
}
std::vector<float> to_float(const std::vector<double>& v) {
  std::vector<float> out(v.size());
  narrow(v, out.data());
  return out;
}

// The offline transforms of a weight in fp64, on the backend when it has the op, else
// OpenBLAS: a reader's W (rows × d) ← W·T (rows × D), or with t_left a writer's W (d × cols) ←
// Tᵀ·W (D × cols).
void transform(std::vector<float>& w, bool t_left, int w_rows, int w_cols,
               const std::vector<double>& t, int d, int D, Backend* backend) {
  const int m = t_left ? D : w_rows, n = t_left ? w_cols : D;
  std::vector<float> out(size_t(m) * n);
  if (!backend ||
      !backend->transform_weight(t_left, w.data(), w_rows, w_cols, t.data(), d, D, out.data())) {
    const std::vector<double> a = to_double(w);
    std::vector<double> c(out.size());
    if (t_left)
      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, d, 1.0, t.data(), D, a.data(), n,
                  0.0, c.data(), n);
    else
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, d, 1.0, a.data(), d, t.data(), D,
                  0.0, c.data(), n);
    narrow(c, out.data());
  }
  w = std::move(out);
}

void read_side(Linear& lin, int d, const std::vector<double>& t, int D, Backend* backend) {
  check(lin.in == d, "rotate", "{}: input width {} != {}", lin.name, lin.in, d);
  transform(lin.weight, false, lin.out, d, t, d, D, backend);
  lin.in = D;
}

void write_side(Linear& lin, int d, const std::vector<double>& t, int D, Backend* backend) {
  check(lin.out == d, "rotate", "{}: output width {} != {}", lin.name, lin.out, d);
  transform(lin.weight, true, d, lin.in, t, d, D, backend);
  if (lin.has_bias()) transform(lin.bias, true, d, 1, t, d, D, backend);
  lin.out = D;
}

}  // namespace

std::vector<double> residual_transform(const OutlierBasis* basis, int d, bool rotate,
                                       uint64_t seed) {
  const int r = basis ? basis->r : 0, D = d + r;
  std::vector<double> e;
  if (basis) {
    e = expansion_matrix(*basis);
  } else {
    e.assign(size_t(d) * d, 0.0);
    for (int i = 0; i < d; ++i) e[size_t(i) * d + i] = 1.0;
  }
  if (!rotate) return e;
  // T = E·blockdiag(R_r, R_d): rotate the first r and the last d columns separately.
  std::vector<double> t(size_t(d) * D, 0.0);
  auto rotate_block = [&](int col0, int n, uint64_t block_seed) {
    if (n == 0) return;
    std::vector<double> rot = hadamard::random_hadamard(n, block_seed);  // (n × n)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, n, n, 1.0, e.data() + col0, D,
                rot.data(), n, 0.0, t.data() + col0, D);
  };
  rotate_block(0, r, seed * 2 + 1);
  rotate_block(r, d, seed * 2);
  return t;
}

void transform_layer(DecoderLayer& L, int d, const std::vector<double>& t, int D,
                     Backend* backend) {
  check(L.attn_norm.weight.empty() && L.mlp_norm.weight.empty(), "rotate",
        "fold the norms before rotating");
  check(t.size() == size_t(d) * D, "rotate", "transform has the wrong shape");
  for (Linear* lin : {&L.q, &L.k, &L.v, &L.gate, &L.up}) read_side(*lin, d, t, D, backend);
  for (Linear* lin : {&L.o, &L.down}) write_side(*lin, d, t, D, backend);
}

void transform_embedding_and_head(Model& m, const std::vector<double>& t, int D, Backend* backend) {
  const int d = m.config.hidden_size;
  check(m.residual_width == d, "rotate", "the residual transform applies to a d-wide model");
  check(t.size() == size_t(d) * D, "rotate", "transform has the wrong shape");
  transform(m.embed, false, m.config.vocab_size, d, t, d, D, backend);
  read_side(m.lm_head, d, t, D, backend);
  m.residual_width = D;
}

OnlineHadamards::OnlineHadamards(const ModelConfig& c)
    : a_(hadamard::dense(hadamard::plan(c.head_dim))),
      down_t_(hadamard::plan(c.intermediate_size)),
      head_mix_(c.num_heads, c.head_dim),
      down_input_(std::make_shared<HadamardInput>(c.intermediate_size)),
      heads_input_(std::make_shared<HeadMixInput>(c.num_heads, c.head_dim)),
      hd_(c.head_dim),
      heads_(c.num_heads),
      kv_heads_(c.num_kv_heads) {}

void OnlineHadamards::apply(DecoderLayer& L) const {
  const int hd = hd_, H = heads_, Hkv = kv_heads_;
  const std::vector<double>& a = a_;  // A_hd (hd × hd)
  // down_proj: every row w ← w·H_mᵀ.
  std::vector<double> w = to_double(L.down.weight);
  down_t_.apply(w.data(), L.down.out);
  L.down.weight = to_float(w);
  // v_proj: each kv-head block of rows ← A·block (and its bias).
  for (int g = 0; g < Hkv; ++g) {
    const int cols = L.v.in;
    std::vector<double> block(L.v.weight.begin() + size_t(g) * hd * cols,
                              L.v.weight.begin() + size_t(g + 1) * hd * cols);
    std::vector<double> out(block.size());
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, hd, cols, hd, 1.0, a.data(), hd,
                block.data(), cols, 0.0, out.data(), cols);
    std::copy(out.begin(), out.end(), L.v.weight.begin() + size_t(g) * hd * cols);
    if (L.v.has_bias()) {
      std::vector<double> b(L.v.bias.begin() + g * hd, L.v.bias.begin() + (g + 1) * hd), bo(hd);
      cblas_dgemv(CblasRowMajor, CblasNoTrans, hd, hd, 1.0, a.data(), hd, b.data(), 1, 0.0,
                  bo.data(), 1);
      std::copy(bo.begin(), bo.end(), L.v.bias.begin() + g * hd);
    }
  }
  // o_proj: every row w ← w·(H_h ⊗ A)ᵀ: A on each head block, then the online head mix.
  std::vector<double> wo = to_double(L.o.weight), tmp(wo.size());
  const int rows = L.o.out * H;  // each row split into H blocks of hd
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, hd, hd, 1.0, wo.data(), hd, a.data(),
              hd, 0.0, tmp.data(), hd);
  head_mix_.apply(tmp.data(), L.o.out);
  L.o.weight = to_float(tmp);
  attach(L);
}

void OnlineHadamards::attach(DecoderLayer& L) const {
  L.down.input_transform = down_input_;
  L.o.input_transform = heads_input_;
}

void attach_online_transforms(Model& m) {
  const OnlineHadamards online(m.config);
  for (auto& L : m.layers) online.attach(L);
}

}  // namespace quad
