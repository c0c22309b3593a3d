#include "quad/train/model_grad.h"

#include <algorithm>

#include "quad/core/error.h"
#include "quad/train/linear_grad.h"
#include "quad/train/loss.h"

namespace quad::train {

namespace {

enum { kQ, kK, kV, kO, kGate, kUp, kDown };

// Rows of the LM head per logits chunk: bounds the (chunk, vocab) buffer for large vocabularies.
constexpr int kHeadChunk = 256;

void norm(Backend& b, const RmsNorm& n, const float* x, int rows, int width, float* y) {
  b.rmsnorm(x, rows, width, n.weight.empty() ? nullptr : n.weight.data(), n.divisor, n.eps, y);
}
void norm_backward(Backend& b, const RmsNorm& n, const float* x, const float* dy, int rows,
                   int width, float* dx) {
  b.rmsnorm_backward(x, dy, rows, width, n.weight.empty() ? nullptr : n.weight.data(), n.divisor,
                     n.eps, dx);
}

}  // namespace

ModelGrad::ModelGrad(TrainableModel& model, Backend& backend)
    : tm_(model), backend_(backend), cache_(model.model().config.num_layers) {}

void ModelGrad::check_batch(const PackedBatch& b) const {
  const Model& m = tm_.model();
  check(b.rows() > 0, "finetune", "empty batch");
  for (const auto& s : b.segments)
    check(s.length <= m.rope.max_positions, "finetune",
          "a sequence of {} tokens exceeds the model's {} positions", s.length,
          m.rope.max_positions);
}

ModelGrad::Dims ModelGrad::dims(const PackedBatch& b) const {
  const Model& m = tm_.model();
  const ModelConfig& c = m.config;
  return Dims{b.rows(),    m.residual_width, c.head_dim,
              c.num_heads, c.num_kv_heads,   c.intermediate_size};
}

void ModelGrad::layer_forward(int l, const PackedBatch& b, float* x) {
  const Model& m = tm_.model();
  const auto [R, D, hd, H, Hkv, ff] = dims(b);
  const DecoderLayer& L = m.layers[l];
  auto& lin = tm_.linears(l);
  LayerCache& cc = cache_[l];
  auto fwd = [&](int i, const float* in, float* y) {
    linear_forward(backend_, *lin[i].lin, lin[i].weight.data(), in, R, cc.input[i], y);
  };
  xn_.resize(size_t(R) * D);
  proj_.resize(size_t(R) * D);
  attn_.resize(size_t(R) * H * hd);
  cc.q.resize(size_t(R) * H * hd);
  cc.k.resize(size_t(R) * Hkv * hd);
  cc.v.resize(size_t(R) * Hkv * hd);
  cc.gate.resize(size_t(R) * ff);
  cc.up.resize(size_t(R) * ff);
  h_.resize(size_t(R) * ff);

  cc.x_attn.assign(x, x + size_t(R) * D);
  norm(backend_, L.attn_norm, x, R, D, xn_.data());
  fwd(kQ, xn_.data(), cc.q.data());
  fwd(kK, xn_.data(), cc.k.data());
  fwd(kV, xn_.data(), cc.v.data());
  backend_.rope(cc.q.data(), R, H, hd, b.positions.data(), m.rope);
  backend_.rope(cc.k.data(), R, Hkv, hd, b.positions.data(), m.rope);
  if (m.kv_quant) {  // simulated KV quantization; straight-through in the backward pass
    m.kv_quant->apply(cc.k.data(), R * Hkv, hd);
    m.kv_quant->apply(cc.v.data(), R * Hkv, hd);
  }
  for (const auto& s : b.segments) {
    const size_t qo = size_t(s.offset) * H * hd, ko = size_t(s.offset) * Hkv * hd;
    backend_.attention(cc.q.data() + qo, s.length, H, Hkv, hd, cc.k.data() + ko, cc.v.data() + ko,
                       0, attn_.data() + qo);
  }
  fwd(kO, attn_.data(), proj_.data());
  backend_.add(x, proj_.data(), size_t(R) * D);

  cc.x_mlp.assign(x, x + size_t(R) * D);
  norm(backend_, L.mlp_norm, x, R, D, xn_.data());
  fwd(kGate, xn_.data(), cc.gate.data());
  fwd(kUp, xn_.data(), cc.up.data());
  backend_.silu_mul(cc.gate.data(), cc.up.data(), h_.size(), h_.data());
  fwd(kDown, h_.data(), proj_.data());
  backend_.add(x, proj_.data(), size_t(R) * D);
}

// dx (R, D): the gradient of the layer's output on entry, of its input on return.
void ModelGrad::layer_backward(int l, const PackedBatch& b, float* dx) {
  const Model& m = tm_.model();
  const auto [R, D, hd, H, Hkv, ff] = dims(b);
  const DecoderLayer& L = m.layers[l];
  auto& lin = tm_.linears(l);
  LayerCache& cc = cache_[l];
  auto bwd = [&](int i, const float* dy, float* d_in) {
    linear_backward(backend_, *lin[i].lin, lin[i].weight.data(), &lin[i], cc.input[i].data(), dy, R,
                    d_in, dw_);
  };
  dxn_.resize(size_t(R) * D);
  dtmp_.resize(size_t(R) * std::max(D, ff));
  h_.resize(size_t(R) * ff);
  dgate_.resize(size_t(R) * ff);
  dup_.resize(size_t(R) * ff);
  d_attn_.resize(size_t(R) * H * hd);
  dq_.resize(size_t(R) * H * hd);
  dk_.resize(size_t(R) * Hkv * hd);
  dv_.resize(size_t(R) * Hkv * hd);

  // MLP block: x2 = x1 + down(silu(gate(n(x1))) ⊙ up(n(x1))).
  bwd(kDown, dx, h_.data());  // dL/dh
  backend_.silu_mul_backward(cc.gate.data(), cc.up.data(), h_.data(), h_.size(), dgate_.data(),
                             dup_.data());
  bwd(kGate, dgate_.data(), dxn_.data());
  bwd(kUp, dup_.data(), dtmp_.data());
  backend_.add(dxn_.data(), dtmp_.data(), size_t(R) * D);
  norm_backward(backend_, L.mlp_norm, cc.x_mlp.data(), dxn_.data(), R, D, dtmp_.data());
  backend_.add(dx, dtmp_.data(), size_t(R) * D);

  // Attention block: x1 = x0 + o(attn(rope(q), rope(k), v)) on n(x0).
  bwd(kO, dx, d_attn_.data());
  for (const auto& s : b.segments) {
    const size_t qo = size_t(s.offset) * H * hd, ko = size_t(s.offset) * Hkv * hd;
    backend_.attention_backward(cc.q.data() + qo, cc.k.data() + ko, cc.v.data() + ko,
                                d_attn_.data() + qo, s.length, H, Hkv, hd, dq_.data() + qo,
                                dk_.data() + ko, dv_.data() + ko);
  }
  backend_.rope_backward(dq_.data(), R, H, hd, b.positions.data(), m.rope);
  backend_.rope_backward(dk_.data(), R, Hkv, hd, b.positions.data(), m.rope);
  bwd(kQ, dq_.data(), dxn_.data());
  bwd(kK, dk_.data(), dtmp_.data());
  backend_.add(dxn_.data(), dtmp_.data(), size_t(R) * D);
  bwd(kV, dv_.data(), dtmp_.data());
  backend_.add(dxn_.data(), dtmp_.data(), size_t(R) * D);
  norm_backward(backend_, L.attn_norm, cc.x_attn.data(), dxn_.data(), R, D, dtmp_.data());
  backend_.add(dx, dtmp_.data(), size_t(R) * D);
}

// Final norm, LM head and loss in chunks of rows; with dx, also the gradient of the final
// residual stream (the head is frozen).
double ModelGrad::head(const PackedBatch& b, const float* x, float loss_scale, float* dx) {
  const Model& m = tm_.model();
  const int R = b.rows(), D = m.residual_width, V = m.config.vocab_size;
  const Linear& lm = m.lm_head;
  check(!lm.weight.empty(), "finetune", "the LM head has no fp weights");
  xn_.resize(size_t(R) * D);
  norm(backend_, m.final_norm, x, R, D, xn_.data());
  if (dx) dxn_.resize(size_t(R) * D);
  double total = 0;
  for (int a = 0; a < R; a += kHeadChunk) {
    const int n = std::min(kHeadChunk, R - a);
    if (std::none_of(b.labels.begin() + a, b.labels.begin() + a + n,
                     [](int32_t t) { return t >= 0; })) {
      if (dx) std::fill(dxn_.begin() + size_t(a) * D, dxn_.begin() + size_t(a + n) * D, 0.0f);
      continue;
    }
    logits_.resize(size_t(n) * V);
    linear_forward(backend_, lm, lm.weight.data(), xn_.data() + size_t(a) * D, n, head_in_,
                   logits_.data());
    if (!dx) {
      total += cross_entropy(logits_.data(), b.labels.data() + a, n, V);
      continue;
    }
    total += cross_entropy_backward(logits_.data(), b.labels.data() + a, n, V, loss_scale);
    linear_backward(backend_, lm, lm.weight.data(), nullptr, head_in_.data(), logits_.data(), n,
                    dxn_.data() + size_t(a) * D, dw_);
  }
  if (dx) norm_backward(backend_, m.final_norm, x, dxn_.data(), R, D, dx);
  return total;
}

LossSum ModelGrad::run(const PackedBatch& b, float loss_scale, bool backward) {
  check_batch(b);
  const Model& m = tm_.model();
  const int R = b.rows(), D = m.residual_width;
  std::vector<float> x(size_t(R) * D);  // (R, D) residual stream
  embed(m, b.tokens.data(), R, x.data());
  for (int l = 0; l < m.config.num_layers; ++l) layer_forward(l, b, x.data());
  LossSum result;
  result.targets = b.num_targets();
  if (!backward) {
    result.sum = head(b, x.data(), 0.0f, nullptr);
    return result;
  }
  std::vector<float> dx(size_t(R) * D);  // (R, D) gradient of the residual stream
  result.sum = head(b, x.data(), loss_scale, dx.data());
  for (int l = m.config.num_layers - 1; l >= 0; --l) layer_backward(l, b, dx.data());
  return result;
}

LossSum ModelGrad::forward_backward(const PackedBatch& batch, float loss_scale) {
  return run(batch, loss_scale, true);
}

LossSum ModelGrad::forward_loss(const PackedBatch& batch) {
  return run(batch, 0.0f, false);
}

}  // namespace quad::train
