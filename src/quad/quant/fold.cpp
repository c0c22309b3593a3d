#include "quad/quant/fold.h"

#include "quad/core/error.h"

namespace quad {

namespace {

// W (out, in) ← W · diag(gamma)
void scale_columns(Linear& lin, const std::vector<float>& gamma) {
  check(int(gamma.size()) == lin.in, "fold", "{}: norm width {} != input width {}", lin.name,
        gamma.size(), lin.in);
#pragma omp parallel for schedule(static)
  for (int o = 0; o < lin.out; ++o)
    for (int i = 0; i < lin.in; ++i) lin.weight[size_t(o) * lin.in + i] *= gamma[i];
}

}  // namespace

void fold_layer_norms(DecoderLayer& L) {
  if (!L.attn_norm.weight.empty()) {
    for (Linear* lin : {&L.q, &L.k, &L.v}) scale_columns(*lin, L.attn_norm.weight);
    L.attn_norm.weight.clear();
  }
  if (!L.mlp_norm.weight.empty()) {
    for (Linear* lin : {&L.gate, &L.up}) scale_columns(*lin, L.mlp_norm.weight);
    L.mlp_norm.weight.clear();
  }
}

void fold_final_norm(Model& m) {
  if (!m.final_norm.weight.empty()) {
    scale_columns(m.lm_head, m.final_norm.weight);
    m.final_norm.weight.clear();
  }
}

void fold_norms(Model& m) {
  for (auto& L : m.layers) fold_layer_norms(L);
  fold_final_norm(m);
}

void center_embeddings(Model& m) {
  const int D = m.residual_width;
  const int64_t V = int64_t(m.embed.size() / D);
#pragma omp parallel for schedule(static)
  for (int64_t v = 0; v < V; ++v) {
    float* row = m.embed.data() + v * D;
    double mean = 0;
    for (int i = 0; i < D; ++i) mean += row[i];
    mean /= D;
    for (int i = 0; i < D; ++i) row[i] = float(row[i] - mean);
  }
}

}  // namespace quad
