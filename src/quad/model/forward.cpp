// The forward pass shared by every model variant (see layers.h).
#include <algorithm>
#include <cstring>
#include <span>

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
    backend.int4_gemm(s.codes.data(), s.token_scales.data(), n, k, q.packed.data(), q.scales.data(),
                      lin.out, y);
  else
    backend.int_gemm(s.codes.data(), s.token_scales.data(), n, k, q.codes.data(), q.scales.data(),
                     lin.out, y);
  if (q.outlier > 0) {
    s.outlier_in.resize(size_t(n) * q.outlier);  // (n, r)
    for (int i = 0; i < n; ++i)
      std::copy(x + size_t(i) * lin.in, x + size_t(i) * lin.in + q.outlier,
                s.outlier_in.begin() + size_t(i) * q.outlier);
    s.outlier_out.resize(size_t(n) * lin.out);  // (n, out)
    if (q.w_outlier_f16.empty())
      backend.linear(s.outlier_in.data(), n, q.outlier, q.w_outlier.data(), lin.out, nullptr,
                     s.outlier_out.data());
    else
      backend.outlier_linear_f16(s.outlier_in.data(), n, q.outlier, q.w_outlier_f16.data(), lin.out,
                                 s.outlier_out.data());
    backend.add(y, s.outlier_out.data(), size_t(n) * lin.out);
  }
  if (lin.has_bias())
    for (int i = 0; i < n; ++i)
      for (int o = 0; o < lin.out; ++o) y[size_t(i) * lin.out + o] += lin.bias[o];
}

// A host view of x (count floats): x itself, or a copy in `host` when the backend keeps it
// elsewhere.
const float* host_view(Backend& backend, const float* x, size_t count, std::vector<float>& host) {
  if (backend.host_accessible(x)) return x;
  host.resize(count);
  backend.copy(host.data(), x, sizeof(float) * count);
  return host.data();
}

// y = input · lin's fp weights (fp32, fp16 or bf16) + bias.
void fp_gemm(Backend& backend, const Linear& lin, const float* input, int n, float* y) {
  const float* bias = lin.has_bias() ? lin.bias.data() : nullptr;
  if (lin.weight.empty() && !lin.weight_f16.empty())
    return backend.linear_f16(input, n, lin.in, lin.weight_f16.data(), lin.out, bias, y);
  if (lin.weight.empty() && !lin.weight_bf16.empty())
    return backend.linear_bf16(input, n, lin.in, lin.weight_bf16.data(), lin.out, bias, y);
  check(!lin.weight.empty(), "model", "{}: no fp weights for a layer with unquantized inputs",
        lin.name);
  backend.linear(input, n, lin.in, lin.weight.data(), lin.out, bias, y);
}

}  // namespace

// y (n, out) = lin(x (n, in)): online input transform (on a copy, since x is shared by sibling
// linears such as q/k/v), then either the integer path or activation fake quantization (when
// the weights are fp) and the fp GEMM.
namespace {

// Shows the observer lin's input; true when it has seen enough, so the GEMM is not needed.
bool observe(ForwardObserver* observer, int layer, const Linear& lin, const float* x, int n) {
  if (!observer) return false;
  observer->linear_input(layer, lin, x, n);
  return observer->seen_enough();
}

}  // namespace

void apply_linear(Backend& backend, const Linear& lin, const float* x, int n, float* y,
                  ForwardScratch& s, int layer, ForwardObserver* observer) {
  // Calibration observes the transformed input, so it takes the op-by-op path.
  if (!observer && lin.integer_path() && backend.fused_linear(lin, x, n, y)) return;
  const KronForm* kron = lin.input_transform ? lin.input_transform->kron_form() : nullptr;
  // An fp linear whose input sits in the backend's memory stays there when its transform has a
  // Kronecker form (the backend's GEMMs) and its quantizer is the backend's act_quant.
  if (!backend.host_accessible(x) && !lin.integer_path() && (!lin.input_transform || kron)) {
    const float* input = x;
    if (kron || lin.input_quant.enabled()) {
      float* t = s.transformed.ensure(backend.memory(), size_t(n) * lin.in);
      backend.copy(t, x, sizeof(float) * size_t(n) * lin.in);
      if (kron)
        backend.kron_transform(t, n, kron->outer, kron->a.data(), kron->inner,
                               kron->b.empty() ? nullptr : kron->b.data());
      if (observe(observer, layer, lin, t, n)) return;
      if (lin.input_quant.enabled()) backend.act_quant(t, n, lin.in, lin.input_quant);
      input = t;
    } else if (observe(observer, layer, lin, x, n)) {
      return;
    }
    return fp_gemm(backend, lin, input, n, y);
  }
  // The rest has host-side steps: stage x and y through host memory when the backend keeps
  // them elsewhere.
  if (!lin.reads_input_as_is() && !(backend.host_accessible(x) && backend.host_accessible(y))) {
    const float* host_x = host_view(backend, x, size_t(n) * lin.in, s.host_in);
    float* host_y = y;
    if (!backend.host_accessible(y)) {
      s.host_out.resize(size_t(n) * lin.out);
      host_y = s.host_out.data();
    }
    apply_linear(backend, lin, host_x, n, host_y, s, layer, observer);
    if (host_y != y) backend.copy(y, host_y, sizeof(float) * s.host_out.size());
    return;
  }
  const float* input = x;
  if (lin.input_transform) {
    s.normed.assign(x, x + size_t(n) * lin.in);
    lin.input_transform->apply(s.normed.data(), n, lin.in);
    input = s.normed.data();
  }
  if (observe(observer, layer, lin, input, n)) return;
  if (lin.integer_path()) return integer_linear(backend, lin, input, n, y, s);
  if (lin.input_quant.enabled()) {
    if (input == x) s.normed.assign(x, x + size_t(n) * lin.in);
    backend.act_quant(s.normed.data(), n, lin.in, lin.input_quant);
    input = s.normed.data();
  }
  fp_gemm(backend, lin, input, n, y);
}

namespace {

void norm(Backend& backend, const RmsNorm& nrm, const float* x, int n, int width, float* y) {
  backend.rmsnorm(x, n, width, nrm.weight.empty() ? nullptr : nrm.weight.data(), nrm.divisor,
                  nrm.eps, y);
}

// x += r (a residual update), then y = nrm(x): one pass where the backend fuses them.
void add_norm(Backend& backend, const RmsNorm& nrm, float* x, const float* r, int n, int width,
              float* y) {
  backend.add_rmsnorm(x, r, n, width, nrm.weight.empty() ? nullptr : nrm.weight.data(), nrm.divisor,
                      nrm.eps, y);
}

// A host-side transform (the simulated KV quantizer) in place on x (rows, width), wherever x is.
void apply_on_host(Backend& backend, const InputTransform& t, float* x, int rows, int width,
                   std::vector<float>& host) {
  if (backend.host_accessible(x)) return t.apply(x, rows, width);
  const size_t count = size_t(rows) * width;
  host.resize(count);
  backend.copy(host.data(), x, sizeof(float) * count);
  t.apply(host.data(), rows, width);
  backend.copy(x, host.data(), sizeof(float) * count);
}

}  // namespace

static void check_token_ids(const Model& model, const int32_t* tokens, int n) {
  const int V = model.config.vocab_size;
  for (int i = 0; i < n; ++i)
    check(tokens[i] >= 0 && tokens[i] < V, "model", "token id {} outside the vocabulary of {}",
          tokens[i], V);
}

void embed(const Model& model, const int32_t* tokens, int n, float* x) {
  check_token_ids(model, tokens, n);
  const int D = model.residual_width;
  for (int i = 0; i < n; ++i)
    std::memcpy(x + size_t(i) * D, model.embed.data() + size_t(tokens[i]) * D, sizeof(float) * D);
}

namespace {

// Attention of branches (forward_branches): their new keys/values sit one after another from
// slot pos0. Each branch in turn moves its own to slot pos0, right after the prefix, and runs
// the ordinary causal attention there, so every backend's attention serves unchanged.
void branch_attention(Backend& backend, const float* q, std::span<const int> branches, int H,
                      int Hkv, int hd, float* k_cache, float* v_cache, int pos0, float* out,
                      ForwardScratch& s) {
  int n = 0;
  for (int len : branches) n += len;
  const size_t kv_row = size_t(Hkv) * hd, q_row = size_t(H) * hd;
  float* k_new = k_cache + size_t(pos0) * kv_row;
  float* v_new = v_cache + size_t(pos0) * kv_row;
  float* saved_k = s.branch_k.ensure(backend.memory(), size_t(n) * kv_row);
  float* saved_v = s.branch_v.ensure(backend.memory(), size_t(n) * kv_row);
  backend.copy(saved_k, k_new, sizeof(float) * size_t(n) * kv_row);
  backend.copy(saved_v, v_new, sizeof(float) * size_t(n) * kv_row);
  int first = 0;
  for (int len : branches) {
    if (first > 0) {
      backend.copy(k_new, saved_k + size_t(first) * kv_row, sizeof(float) * size_t(len) * kv_row);
      backend.copy(v_new, saved_v + size_t(first) * kv_row, sizeof(float) * size_t(len) * kv_row);
    }
    backend.attention(q + size_t(first) * q_row, len, H, Hkv, hd, k_cache, v_cache, pos0,
                      out + size_t(first) * q_row);
    first += len;
  }
}

// Linears reading the same input x (q/k/v, gate/up), each into its output. When none of them
// transforms or quantizes its input, the observer sees every input before any GEMM runs, so a
// calibration pass that needs only these inputs stops without computing them.
void apply_linears_on(Backend& backend,
                      std::initializer_list<std::pair<const Linear*, float*>> lins, const float* x,
                      int n, ForwardScratch& s, int l, ForwardObserver* obs) {
  const bool as_is = std::all_of(lins.begin(), lins.end(),
                                 [](const auto& p) { return p.first->reads_input_as_is(); });
  if (obs && as_is) {
    for (const auto& [lin, y] : lins) obs->linear_input(l, *lin, x, n);
    if (obs->seen_enough()) return;
    obs = nullptr;
  }
  for (const auto& [lin, y] : lins) apply_linear(backend, *lin, x, n, y, s, l, obs);
}

// One decoder layer; `branches` empty for a single sequence. `pending`, when not null, is the
// previous layer's last residual update, still to be added to x (fused with this layer's first
// RMSNorm). With defer_last_add, this layer likewise leaves its own last update (down_proj's
// output, in s.proj) for the next layer and returns it; otherwise it returns null.
const float* decoder_layer(const Model& model, Backend& backend, int l, float* x, int n, int pos0,
                           std::span<const int> branches, float* k_cache, float* v_cache,
                           ForwardScratch& s, ForwardObserver* obs, const float* pending,
                           bool defer_last_add) {
  const ModelConfig& c = model.config;
  const int D = model.residual_width, hd = c.head_dim;
  const int H = c.num_heads, Hkv = c.num_kv_heads, ff = c.intermediate_size;
  const DecoderLayer& L = model.layers[l];
  const MemoryKind mem = backend.memory();
  float* xn = s.xn.ensure(mem, size_t(n) * D);           // (n, D) normalized
  float* q = s.q.ensure(mem, size_t(n) * H * hd);        // (n, H, hd)
  float* attn = s.attn.ensure(mem, size_t(n) * H * hd);  // (n, H, hd)
  float* proj = s.proj.ensure(mem, size_t(n) * D);       // (n, D) output of o_proj / down_proj
  float* gate = s.gate.ensure(mem, size_t(n) * ff);      // (n, ff)
  float* up = s.up.ensure(mem, size_t(n) * ff);          // (n, ff)
  s.positions.resize(n);
  if (branches.empty()) {
    for (int i = 0; i < n; ++i) s.positions[i] = pos0 + i;
  } else {
    int i = 0;
    for (int len : branches)
      for (int j = 0; j < len; ++j) s.positions[i++] = pos0 + j;
  }
  const size_t kv_row = size_t(Hkv) * hd;
  float* k_new = k_cache + size_t(pos0) * kv_row;  // (n, Hkv, hd), written in place
  float* v_new = v_cache + size_t(pos0) * kv_row;

  // Each block in one backend call where the backend takes its layers (a single sequence, no
  // simulated KV quantizer, no calibration watching), else step by step.
  auto seen_enough = [&] { return obs && obs->seen_enough(); };
  const bool whole_blocks = !obs && branches.size() <= 1 && !model.kv_quant;
  // Attention block.
  if (!(whole_blocks &&
        backend.attention_block(L.attn_norm, L.q, L.k, L.v, L.o, x, pending, n, H, Hkv, hd, k_cache,
                                v_cache, pos0, model.rope, proj))) {
    if (pending)
      add_norm(backend, L.attn_norm, x, pending, n, D, xn);
    else
      norm(backend, L.attn_norm, x, n, D, xn);
    if (obs) obs->norm_input(l, 0, x, n, D);
    apply_linears_on(backend, {{&L.q, q}, {&L.k, k_new}, {&L.v, v_new}}, xn, n, s, l, obs);
    if (seen_enough()) return nullptr;
    if (branches.size() <= 1 && !model.kv_quant) {
      backend.rope_attention(q, n, H, Hkv, hd, k_cache, v_cache, pos0, s.positions.data(),
                             model.rope, attn);
    } else {
      backend.rope(q, n, H, hd, s.positions.data(), model.rope);
      backend.rope(k_new, n, Hkv, hd, s.positions.data(), model.rope);
      if (model.kv_quant) {
        apply_on_host(backend, *model.kv_quant, k_new, n * Hkv, hd, s.host_in);
        apply_on_host(backend, *model.kv_quant, v_new, n * Hkv, hd, s.host_in);
      }
      if (branches.size() > 1)
        branch_attention(backend, q, branches, H, Hkv, hd, k_cache, v_cache, pos0, attn, s);
      else
        backend.attention(q, n, H, Hkv, hd, k_cache, v_cache, pos0, attn);
    }
    apply_linear(backend, L.o, attn, n, proj, s, l, obs);
    if (seen_enough()) return nullptr;
  }
  // MLP block (SwiGLU); o_proj's output in proj is the residual update before it.
  if (!(!obs && backend.mlp_block(L.mlp_norm, L.gate, L.up, L.down, x, proj, n, gate, up, proj))) {
    add_norm(backend, L.mlp_norm, x, proj, n, D, xn);
    if (obs) obs->norm_input(l, 1, x, n, D);
    apply_linears_on(backend, {{&L.gate, gate}, {&L.up, up}}, xn, n, s, l, obs);
    if (seen_enough()) return nullptr;
    // silu(gate) ⊙ up inside down_proj's input quantization where the backend can (its codes
    // are those of the steps); calibration observes the product, so it takes the steps.
    if (!(!obs && backend.fused_swiglu_linear(L.down, gate, up, n, proj))) {
      backend.silu_mul(gate, up, size_t(n) * ff, gate);
      apply_linear(backend, L.down, gate, n, proj, s, l, obs);
      if (seen_enough()) return nullptr;
    }
  }
  if (defer_last_add) return proj;
  backend.add(x, proj, size_t(n) * D);
  return nullptr;
}

}  // namespace

void forward_layer(const Model& model, Backend& backend, int l, float* x, int n, int pos0,
                   float* k_cache, float* v_cache, ForwardScratch& s, ForwardObserver* obs) {
  decoder_layer(model, backend, l, x, n, pos0, {}, k_cache, v_cache, s, obs, nullptr, false);
}

namespace {

// Final norm and LM head on the last n_logits rows of x into `out` (the backend's memory or,
// for a host-memory backend, any host buffer).
void head_into(const Model& model, Backend& backend, const float* x, int n, int n_logits,
               ForwardScratch& s, float* out) {
  const int D = model.residual_width;
  float* xn = s.xn.ensure(backend.memory(), size_t(n_logits) * D);
  const float* last = x + size_t(n - n_logits) * D;
  norm(backend, model.final_norm, last, n_logits, D, xn);
  apply_linear(backend, model.lm_head, xn, n_logits, out, s, -1, nullptr);
}

}  // namespace

void forward_head(const Model& model, Backend& backend, const float* x, int n, int n_logits,
                  ForwardScratch& s, float* logits) {
  if (backend.memory() == MemoryKind::host)
    return head_into(model, backend, x, n, n_logits, s, logits);
  float* out = s.logits.ensure(backend.memory(), size_t(n_logits) * model.lm_head.out);
  head_into(model, backend, x, n, n_logits, s, out);
  backend.copy(logits, out, sizeof(float) * size_t(n_logits) * model.lm_head.out);
}

namespace {

// Embeds tokens into the residual stream x (the backend's memory) and runs every layer.
float* run_layers(const Model& model, Backend& backend, const int32_t* tokens, int n, int pos0,
                  std::span<const int> branches, KVCache& cache, ForwardScratch& s,
                  ForwardObserver* observer) {
  const size_t count = size_t(n) * model.residual_width;
  float* x = s.x.ensure(backend.memory(), count);  // (n, D) residual stream
  check_token_ids(model, tokens, n);
  backend.embed(model.embed.data(), model.config.vocab_size, model.residual_width, tokens, n, x);
  const int layers = model.config.num_layers;
  // Each layer's last residual add joins the next layer's first RMSNorm (not under an observer,
  // whose passes may stop inside a layer).
  const float* pending = nullptr;
  for (int l = 0; l < layers; ++l) {
    check(cache.k[l].kind() == backend.memory(), "model",
          "the KV cache is not in the memory of the {} backend", backend.name());
    pending = decoder_layer(model, backend, l, x, n, pos0, branches, cache.k[l].data(),
                            cache.v[l].data(), s, observer, pending, !observer && l + 1 < layers);
  }
  return x;
}

}  // namespace

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
  const float* x = run_layers(model, backend, tokens, n, pos0, {}, cache, s, observer);
  if (n_logits > 0) forward_head(model, backend, x, n, n_logits, s, logits);
}

const float* forward_last_logits(const Model& model, Backend& backend, const int32_t* tokens, int n,
                                 int pos0, KVCache& cache, ForwardScratch& s) {
  forward(model, backend, tokens, n, pos0, cache, s, nullptr, 0);
  float* out = s.logits.ensure(backend.memory(), size_t(model.lm_head.out));
  head_into(model, backend, s.x.data(), n, 1, s, out);
  return out;
}

void forward_branches(const Model& model, Backend& backend, const int32_t* tokens,
                      std::span<const int> branches, int pos0, KVCache& cache, ForwardScratch& s,
                      float* logits) {
  check(!branches.empty() && pos0 >= 0, "model", "forward_branches: need at least one branch");
  int n = 0, longest = 0;
  for (int len : branches) {
    check(len > 0, "model", "forward_branches: a branch without tokens");
    n += len;
    longest = std::max(longest, len);
  }
  check(pos0 + n <= cache.capacity, "model",
        "forward_branches: {} cached and {} branch tokens exceed the KV cache of {} entries", pos0,
        n, cache.capacity);
  check(pos0 + longest <= model.rope.max_positions, "model",
        "position {} is beyond the RoPE table ({} positions)", pos0 + longest,
        model.rope.max_positions);
  const float* x = run_layers(model, backend, tokens, n, pos0, branches, cache, s, nullptr);
  forward_head(model, backend, x, n, n, s, logits);
}

}  // namespace quad
