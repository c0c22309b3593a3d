// The forward pass shared by every model variant (see layers.h).
#include <algorithm>
#include <cstring>

#include "quad/core/error.h"
#include "quad/model/model.h"

namespace quad {

namespace {

// y (n, out) = lin(x (n, in)): online input transform and activation quantizer (on a copy,
// since x is shared by sibling linears such as q/k/v), then the GEMM.
void apply_linear(Backend& backend, const Linear& lin, const float* x, int n, float* y,
                  std::vector<float>& input_copy) {
  const float* input = x;
  if (lin.input_transform || lin.input_quant.enabled()) {
    input_copy.assign(x, x + size_t(n) * lin.in);
    if (lin.input_transform) lin.input_transform->apply(input_copy.data(), n, lin.in);
    backend.act_quant(input_copy.data(), n, lin.in, lin.input_quant);
    input = input_copy.data();
  }
  backend.linear(input, n, lin.in, lin.weight.data(), lin.out,
                 lin.has_bias() ? lin.bias.data() : nullptr, y);
}

void norm(Backend& backend, const RmsNorm& nrm, const float* x, int n, int width, float* y) {
  backend.rmsnorm(x, n, width, nrm.weight.empty() ? nullptr : nrm.weight.data(), nrm.divisor,
                  nrm.eps, y);
}

}  // namespace

void forward(const Model& model, Backend& backend, const int32_t* tokens, int n, int pos0,
             KVCache& cache, ForwardScratch& s, float* logits, int n_logits) {
  const ModelConfig& c = model.config;
  const int D = model.residual_width, hd = c.head_dim;
  const int H = c.num_heads, Hkv = c.num_kv_heads, ff = c.intermediate_size;
  check(n > 0 && pos0 >= 0, "model", "forward: need at least one token");
  check(pos0 + n <= cache.capacity, "model",
        "context overflow: position {} exceeds the KV cache of {} positions", pos0 + n,
        cache.capacity);
  check(pos0 + n <= model.rope.max_positions, "model",
        "position {} is beyond the RoPE table ({} positions)", pos0 + n,
        model.rope.max_positions);
  check(n_logits >= 0 && n_logits <= n, "model", "n_logits {} out of range", n_logits);

  s.x.resize(size_t(n) * D);           // (n, D) residual stream
  s.xn.resize(size_t(n) * D);          // (n, D) normalized
  s.q.resize(size_t(n) * H * hd);      // (n, H, hd)
  s.k.resize(size_t(n) * Hkv * hd);    // (n, Hkv, hd)
  s.v.resize(size_t(n) * Hkv * hd);    // (n, Hkv, hd)
  s.attn.resize(size_t(n) * H * hd);   // (n, H, hd)
  s.proj.resize(size_t(n) * D);        // (n, D) output of o_proj / down_proj
  s.gate.resize(size_t(n) * ff);       // (n, ff)
  s.up.resize(size_t(n) * ff);         // (n, ff)
  s.positions.resize(n);
  for (int i = 0; i < n; ++i) s.positions[i] = pos0 + i;

  for (int i = 0; i < n; ++i) {
    check(tokens[i] >= 0 && tokens[i] < c.vocab_size, "model",
          "token id {} outside the vocabulary of {}", tokens[i], c.vocab_size);
    std::memcpy(s.x.data() + size_t(i) * D, model.embed.data() + size_t(tokens[i]) * D,
                sizeof(float) * D);
  }

  for (int l = 0; l < c.num_layers; ++l) {
    const DecoderLayer& L = model.layers[l];
    // Attention block.
    norm(backend, L.attn_norm, s.x.data(), n, D, s.xn.data());
    apply_linear(backend, L.q, s.xn.data(), n, s.q.data(), s.hidden);
    apply_linear(backend, L.k, s.xn.data(), n, s.k.data(), s.hidden);
    apply_linear(backend, L.v, s.xn.data(), n, s.v.data(), s.hidden);
    backend.rope(s.q.data(), n, H, hd, s.positions.data(), model.rope);
    backend.rope(s.k.data(), n, Hkv, hd, s.positions.data(), model.rope);
    std::memcpy(cache.k_at(l, pos0), s.k.data(), sizeof(float) * s.k.size());
    std::memcpy(cache.v_at(l, pos0), s.v.data(), sizeof(float) * s.v.size());
    backend.attention(s.q.data(), n, H, Hkv, hd, cache.k[l].data(), cache.v[l].data(), pos0,
                      s.attn.data());
    apply_linear(backend, L.o, s.attn.data(), n, s.proj.data(), s.hidden);
    backend.add(s.x.data(), s.proj.data(), s.x.size());
    // MLP block (SwiGLU).
    norm(backend, L.mlp_norm, s.x.data(), n, D, s.xn.data());
    apply_linear(backend, L.gate, s.xn.data(), n, s.gate.data(), s.hidden);
    apply_linear(backend, L.up, s.xn.data(), n, s.up.data(), s.hidden);
    backend.silu_mul(s.gate.data(), s.up.data(), s.gate.size(), s.gate.data());
    apply_linear(backend, L.down, s.gate.data(), n, s.proj.data(), s.hidden);
    backend.add(s.x.data(), s.proj.data(), s.x.size());
  }

  if (n_logits == 0) return;
  const float* last = s.x.data() + size_t(n - n_logits) * D;
  norm(backend, model.final_norm, last, n_logits, D, s.xn.data());
  apply_linear(backend, model.lm_head, s.xn.data(), n_logits, logits, s.hidden);
}

}  // namespace quad
