// The forward pass shared by every model variant (see layers.h).
#include <algorithm>
#include <cstring>

#include "quad/core/error.h"
#include "quad/model/model.h"

namespace quad {

namespace {

// Integer path (QUAD-SPEC §4.4–4.5): per-token codes of the normal part x[:, r:], int32 GEMM
// with the weight codes, token and channel scales, plus the fp outlier part x[:, :r]·w_outlierᵀ.
void integer_linear(Backend& backend, const Linear& lin, const float* x, int n, float* y,
                    ForwardScratch& s) {
  const QuantizedWeight& q = *lin.qweight;
  const int k = lin.in - q.outlier;
  s.codes.resize(size_t(n) * k);
  s.token_scales.resize(n);
  backend.quantize_rows(x + q.outlier, n, k, lin.in, lin.input_quant.bits, lin.input_quant.clip,
                        s.codes.data(), s.token_scales.data());
  if (q.bits == 4)
    backend.int4_gemm(s.codes.data(), s.token_scales.data(), n, k, q.packed.data(),
                      q.scales.data(), lin.out, y);
  else
    backend.int_gemm(s.codes.data(), s.token_scales.data(), n, k, q.codes.data(),
                     q.scales.data(), lin.out, y);
  if (q.outlier > 0) {
    s.outlier_in.resize(size_t(n) * q.outlier);  // (n, r)
    for (int i = 0; i < n; ++i)
      std::copy(x + size_t(i) * lin.in, x + size_t(i) * lin.in + q.outlier,
                s.outlier_in.begin() + size_t(i) * q.outlier);
    s.outlier_out.resize(size_t(n) * lin.out);  // (n, out)
    backend.linear(s.outlier_in.data(), n, q.outlier, q.w_outlier.data(), lin.out, nullptr,
                   s.outlier_out.data());
    backend.add(y, s.outlier_out.data(), size_t(n) * lin.out);
  }
  if (lin.has_bias())
    for (int i = 0; i < n; ++i)
      for (int o = 0; o < lin.out; ++o) y[size_t(i) * lin.out + o] += lin.bias[o];
}

// y (n, out) = lin(x (n, in)): online input transform (on a copy, since x is shared by sibling
// linears such as q/k/v), then either the integer path or activation fake quantization (when
// the weights are fp) and the fp GEMM.
}  // namespace

void apply_linear(Backend& backend, const Linear& lin, const float* x, int n, float* y,
                  ForwardScratch& s, int layer, ForwardObserver* observer) {
  // Calibration observes the transformed input, so it takes the op-by-op path.
  if (!observer && lin.integer_path() && backend.fused_linear(lin, x, n, y)) return;
  const float* input = x;
  if (lin.input_transform) {
    s.normed.assign(x, x + size_t(n) * lin.in);
    lin.input_transform->apply(s.normed.data(), n, lin.in);
    input = s.normed.data();
  }
  if (observer) observer->linear_input(layer, lin, input, n);
  if (lin.integer_path()) return integer_linear(backend, lin, input, n, y, s);
  if (lin.input_quant.enabled()) {
    if (input == x) s.normed.assign(x, x + size_t(n) * lin.in);
    backend.act_quant(s.normed.data(), n, lin.in, lin.input_quant);
    input = s.normed.data();
  }
  if (lin.weight.empty() && !lin.weight_f16.empty())
    return backend.linear_f16(input, n, lin.in, lin.weight_f16.data(), lin.out,
                              lin.has_bias() ? lin.bias.data() : nullptr, y);
  check(!lin.weight.empty(), "model", "{}: no fp weights for a layer with unquantized inputs",
        lin.name);
  backend.linear(input, n, lin.in, lin.weight.data(), lin.out,
                 lin.has_bias() ? lin.bias.data() : nullptr, y);
}

namespace {

void norm(Backend& backend, const RmsNorm& nrm, const float* x, int n, int width, float* y) {
  backend.rmsnorm(x, n, width, nrm.weight.empty() ? nullptr : nrm.weight.data(), nrm.divisor,
                  nrm.eps, y);
}

}  // namespace

void embed(const Model& model, const int32_t* tokens, int n, float* x) {
  const int D = model.residual_width, V = model.config.vocab_size;
  for (int i = 0; i < n; ++i) {
    check(tokens[i] >= 0 && tokens[i] < V, "model", "token id {} outside the vocabulary of {}",
          tokens[i], V);
    std::memcpy(x + size_t(i) * D, model.embed.data() + size_t(tokens[i]) * D, sizeof(float) * D);
  }
}

void forward_layer(const Model& model, Backend& backend, int l, float* x, int n, int pos0,
                   float* k_cache, float* v_cache, ForwardScratch& s, ForwardObserver* obs) {
  const ModelConfig& c = model.config;
  const int D = model.residual_width, hd = c.head_dim;
  const int H = c.num_heads, Hkv = c.num_kv_heads, ff = c.intermediate_size;
  const DecoderLayer& L = model.layers[l];
  s.xn.resize(size_t(n) * D);         // (n, D) normalized
  s.q.resize(size_t(n) * H * hd);     // (n, H, hd)
  s.attn.resize(size_t(n) * H * hd);  // (n, H, hd)
  s.proj.resize(size_t(n) * D);       // (n, D) output of o_proj / down_proj
  s.gate.resize(size_t(n) * ff);      // (n, ff)
  s.up.resize(size_t(n) * ff);        // (n, ff)
  s.positions.resize(n);
  for (int i = 0; i < n; ++i) s.positions[i] = pos0 + i;
  const size_t kv_row = size_t(Hkv) * hd;
  float* k_new = k_cache + size_t(pos0) * kv_row;  // (n, Hkv, hd), written in place
  float* v_new = v_cache + size_t(pos0) * kv_row;

  // Attention block.
  if (obs) obs->norm_input(l, 0, x, n, D);
  norm(backend, L.attn_norm, x, n, D, s.xn.data());
  apply_linear(backend, L.q, s.xn.data(), n, s.q.data(), s, l, obs);
  apply_linear(backend, L.k, s.xn.data(), n, k_new, s, l, obs);
  apply_linear(backend, L.v, s.xn.data(), n, v_new, s, l, obs);
  backend.rope(s.q.data(), n, H, hd, s.positions.data(), model.rope);
  backend.rope(k_new, n, Hkv, hd, s.positions.data(), model.rope);
  if (model.kv_quant) {
    model.kv_quant->apply(k_new, n * Hkv, hd);
    model.kv_quant->apply(v_new, n * Hkv, hd);
  }
  backend.attention(s.q.data(), n, H, Hkv, hd, k_cache, v_cache, pos0, s.attn.data());
  apply_linear(backend, L.o, s.attn.data(), n, s.proj.data(), s, l, obs);
  backend.add(x, s.proj.data(), size_t(n) * D);
  // MLP block (SwiGLU).
  if (obs) obs->norm_input(l, 1, x, n, D);
  norm(backend, L.mlp_norm, x, n, D, s.xn.data());
  apply_linear(backend, L.gate, s.xn.data(), n, s.gate.data(), s, l, obs);
  apply_linear(backend, L.up, s.xn.data(), n, s.up.data(), s, l, obs);
  backend.silu_mul(s.gate.data(), s.up.data(), s.gate.size(), s.gate.data());
  apply_linear(backend, L.down, s.gate.data(), n, s.proj.data(), s, l, obs);
  backend.add(x, s.proj.data(), size_t(n) * D);
}

void forward_head(const Model& model, Backend& backend, const float* x, int n, int n_logits,
                  ForwardScratch& s, float* logits) {
  const int D = model.residual_width;
  s.xn.resize(size_t(n_logits) * D);
  const float* last = x + size_t(n - n_logits) * D;
  norm(backend, model.final_norm, last, n_logits, D, s.xn.data());
  apply_linear(backend, model.lm_head, s.xn.data(), n_logits, logits, s, -1, nullptr);
}

void forward(const Model& model, Backend& backend, const int32_t* tokens, int n, int pos0,
             KVCache& cache, ForwardScratch& s, float* logits, int n_logits,
             ForwardObserver* observer) {
  check(n > 0 && pos0 >= 0, "model", "forward: need at least one token");
  check(pos0 + n <= cache.capacity, "model",
        "context overflow: position {} exceeds the KV cache of {} positions", pos0 + n,
        cache.capacity);
  check(pos0 + n <= model.rope.max_positions, "model",
        "position {} is beyond the RoPE table ({} positions)", pos0 + n, model.rope.max_positions);
  check(n_logits >= 0 && n_logits <= n, "model", "n_logits {} out of range", n_logits);
  s.x.resize(size_t(n) * model.residual_width);  // (n, D) residual stream
  embed(model, tokens, n, s.x.data());
  for (int l = 0; l < model.config.num_layers; ++l)
    forward_layer(model, backend, l, s.x.data(), n, pos0, cache.k[l].data(), cache.v[l].data(), s,
                  observer);
  if (n_logits > 0) forward_head(model, backend, s.x.data(), n, n_logits, s, logits);
}

}  // namespace quad
