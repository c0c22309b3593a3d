#include "quad/quant/pipeline.h"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>

#include "quad/core/error.h"
#include "quad/core/progress.h"
#include "quad/quant/calibration.h"
#include "quad/quant/fold.h"
#include "quad/quant/gram_accumulator.h"
#include "quad/quant/kv_quant.h"
#include "quad/quant/projection.h"
#include "quad/quant/rotate.h"
#include "quad/quant/weight_quant.h"

namespace quad {

namespace {

// Wall time of the pipeline's phases, reported once at the end (where a large model's time
// goes). GPU work is asynchronous: a phase that waits for results also pays for queued work.
struct PhaseTimes {
  double read = 0, rotate = 0, online = 0, passes = 0, hessians = 0, quantize = 0, errors = 0,
         write = 0;
  std::string summary() const {
    return fmt::format(
        "read {:.1f}s, rotate {:.1f}s, online Hadamards {:.1f}s, calibration passes {:.1f}s, "
        "Hessians {:.1f}s, scales + codes {:.1f}s, error report {:.1f}s, write {:.1f}s",
        read, rotate, online, passes, hessians, quantize, errors, write);
  }
  template <typename F>
  static void add(double& slot, F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    slot += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
};

bool is_u_type(const DecoderLayer& L, const Linear* lin) {
  return lin == &L.q || lin == &L.k || lin == &L.v || lin == &L.gate || lin == &L.up;
}

// Accumulates H = Σ xxᵀ (fp64, where the backend computes) of the quantized input columns of
// the linears being calibrated. Linears reading the same buffer in the same pass (q/k/v,
// gate/up) share one matrix. Once every target has been seen in a window, the pass may stop.
class HessianObserver final : public ForwardObserver {
 public:
  HessianObserver(Backend& backend, int layer, std::vector<Linear*> targets,
                  std::map<const Linear*, int> offsets)
      : backend_(backend),
        layer_(layer),
        targets_(std::move(targets)),
        offsets_(std::move(offsets)) {}

  void begin_window() { last_x_ = nullptr, seen_ = 0; }

  void linear_input(int layer, const Linear& lin, const float* x, int n) override {
    if (layer != layer_ || std::find(targets_.begin(), targets_.end(), &lin) == targets_.end())
      return;
    ++seen_;
    const int off = offsets_.at(&lin), k = lin.in - off;
    auto it = slot_.find(&lin);
    if (it == slot_.end()) {
      if (x == last_x_ && off == last_off_) {
        slot_[&lin] = last_slot_;  // same input as the previous linear: share its Hessian
        return;
      }
      slot_[&lin] = int(hessians_.size());
      hessians_.push_back(std::make_unique<GramAccumulator>(backend_, k));
      it = slot_.find(&lin);
    } else if (x == last_x_ && it->second == last_slot_) {
      return;  // already accumulated for this input
    }
    const int slot = it->second;
    hessians_[slot]->add(x, n, lin.in, off);
    last_x_ = x, last_off_ = off, last_slot_ = slot;
  }

  bool seen_enough() const override { return seen_ == int(targets_.size()); }

  // H = (2 / tokens) Σ xxᵀ, symmetric, where the backend computes (finished on first use).
  const GramAccumulator& hessian(const Linear* lin) {
    GramAccumulator& acc = *hessians_[slot_.at(lin)];
    if (!acc.finished()) acc.finish(2.0 / double(std::max<int64_t>(acc.rows(), 1)));
    return acc;
  }

 private:
  Backend& backend_;
  int layer_;
  std::vector<Linear*> targets_;
  std::map<const Linear*, int> offsets_;
  std::map<const Linear*, int> slot_;
  std::vector<std::unique_ptr<GramAccumulator>> hessians_;
  const float* last_x_ = nullptr;
  int last_off_ = -1, last_slot_ = -1, seen_ = 0;
};

// Records the integer codes and replaces lin's fp weights by the values they stand for.
void set_quantized(Linear& lin, int outlier, int bits, std::vector<int8_t> codes,
                   std::vector<float> scales) {
  const int k = lin.in - outlier;
  std::vector<float> w_outlier(size_t(lin.out) * outlier);
  for (int o = 0; o < lin.out; ++o)
    std::copy_n(lin.weight.begin() + size_t(o) * lin.in, outlier,
                w_outlier.begin() + size_t(o) * outlier);
  lin.qweight = QuantizedWeight::make(bits, outlier, lin.out, k, std::move(codes),
                                      std::move(scales), std::move(w_outlier));
  lin.weight = lin.qweight->dequantized();
}

// tr(ΔW·H·ΔWᵀ) for ΔW = W − codes·scales (rows × k), on the backend when it has the op.
double output_error(Backend& backend, const std::vector<float>& w, const std::vector<int8_t>& codes,
                    const std::vector<float>& scales, int rows, int k, const double* h) {
  double err = 0;
  if (backend.quantization_error(w.data(), codes.data(), scales.data(), rows, k, h, &err))
    return err;
  std::vector<double> dw(size_t(rows) * k);
#pragma omp parallel for schedule(static)
  for (int o = 0; o < rows; ++o)
    for (int c = 0; c < k; ++c)
      dw[size_t(o) * k + c] =
          double(w[size_t(o) * k + c]) - double(codes[size_t(o) * k + c]) * scales[o];
  std::vector<double> dwh(size_t(rows) * k);  // h is host memory on a backend without the op
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, k, k, 1.0, dw.data(), k, h, k, 0.0,
              dwh.data(), k);
  for (size_t i = 0; i < dw.size(); ++i) err += dw[i] * dwh[i];
  return err;
}

// Codes for one linear from its current fp weights (columns [outlier, in)).
void quantize_linear(Linear& lin, int outlier, const Recipe& recipe, Backend& backend,
                     const GramAccumulator* hessian, PhaseTimes& times,
                     LayerError* error = nullptr) {
  const int k = lin.in - outlier;
  std::vector<float> w(size_t(lin.out) * k);
  for (int o = 0; o < lin.out; ++o)
    std::copy_n(lin.weight.begin() + size_t(o) * lin.in + outlier, k, w.begin() + size_t(o) * k);
  WeightQuantOptions wo;
  wo.bits = recipe.w_bits;
  wo.clip_search = recipe.w_clip;
  std::vector<float> scales;
  std::vector<int8_t> codes;
  PhaseTimes::add(times.quantize, [&] {
    scales = weight_scales(w.data(), lin.out, k, wo, &backend);
    if (hessian) {
      GptqOptions go;
      go.bits = recipe.w_bits;
      go.percdamp = recipe.percdamp;
      codes = gptq_quantize(w.data(), lin.out, k, hessian->data(), hessian->diagonal(), scales, go,
                            backend);
    } else {
      codes = quantize_rtn(w.data(), lin.out, k, scales, recipe.w_bits);
    }
  });
  if (hessian && error) {
    PhaseTimes::add(times.errors, [&] {
      error->name = lin.name;
      error->gptq = output_error(backend, w, codes, scales, lin.out, k, hessian->data());
      error->rtn =
          output_error(backend, w, quantize_rtn(w.data(), lin.out, k, scales, recipe.w_bits),
                       scales, lin.out, k, hessian->data());
    });
  }
  set_quantized(lin, outlier, recipe.w_bits, std::move(codes), std::move(scales));
}

// The simulated KV quantizer the recipe asks for, or none.
std::shared_ptr<const InputTransform> kv_quantizer(const ModelConfig& c, const Recipe& recipe) {
  return recipe.kv_bits < 16 ? make_kv_quantizer(c.head_dim, recipe.kv_bits, recipe.kv_clip)
                             : nullptr;
}

// Activation quantizers of one layer (attach_quantizers).
void attach_layer_quantizers(DecoderLayer& L, int r, const Recipe& recipe) {
  for (Linear* lin : {&L.q, &L.k, &L.v, &L.gate, &L.up})
    lin->input_quant = ActQuantSpec{recipe.a_bits, r, recipe.a_clip};
  for (Linear* lin : {&L.o, &L.down})
    lin->input_quant = ActQuantSpec{recipe.od_bits, 0, recipe.a_clip};
}

}  // namespace

void attach_quantizers(Model& m, const Recipe& recipe) {
  const int r = m.residual_width - m.config.hidden_size;
  for (auto& L : m.layers) attach_layer_quantizers(L, r, recipe);
  m.kv_quant = kv_quantizer(m.config, recipe);
}

namespace {

// GPTQ's calibration state, where the backend computes: every window's input to the current
// layer, (seqlen, D) each, a work copy for the calibration passes, and a KV cache for one
// window. Calibration runs without activation quantization (§4.2).
struct GptqInputs {
  std::vector<BackendArray<float>> x;
  BackendArray<float> k_cache, v_cache, work;
  int seqlen = 0;
  size_t count = 0;  // floats per window

  GptqInputs(const Model& m, Backend& backend, const std::vector<std::vector<int32_t>>& windows)
      : x(windows.size()),
        seqlen(int(windows.front().size())),
        count(size_t(seqlen) * m.residual_width) {
    const MemoryKind mem = backend.memory();
    std::vector<float> host(count);
    for (size_t w = 0; w < windows.size(); ++w) {
      embed(m, windows[w].data(), seqlen, host.data());
      backend.copy(x[w].ensure(mem, count, "calibration activations"), host.data(),
                   sizeof(float) * count);
    }
    work.ensure(mem, count);
    k_cache.ensure(mem, size_t(seqlen) * m.config.num_kv_heads * m.config.head_dim);
    v_cache.ensure(mem, k_cache.size());
  }
};

// Quantizes layer l of m (in m.layers[l]) by GPTQ in true-sequential groups, then moves the
// calibration inputs through the quantized layer.
void gptq_layer(Model& m, int l, const Recipe& recipe, Backend& backend, GptqInputs& in,
                ForwardScratch& scratch, PhaseTimes& times, std::vector<LayerError>* errors) {
  const int r = m.residual_width - m.config.hidden_size;
  DecoderLayer& layer = m.layers[l];
  const std::vector<std::vector<Linear*>> groups = {
      {&layer.k, &layer.v, &layer.q}, {&layer.o}, {&layer.up, &layer.gate}, {&layer.down}};
  for (const auto& group : groups) {
    std::map<const Linear*, int> offsets;
    for (Linear* lin : group) offsets[lin] = is_u_type(layer, lin) ? r : 0;
    HessianObserver observer(backend, l, group, offsets);
    PhaseTimes::add(times.passes, [&] {
      for (const auto& x : in.x) {
        backend.copy(in.work.data(), x.data(), sizeof(float) * in.count);
        observer.begin_window();
        forward_layer(m, backend, l, in.work.data(), in.seqlen, 0, in.k_cache.data(),
                      in.v_cache.data(), scratch, &observer);
      }
    });
    for (Linear* lin : group) {
      const GramAccumulator* h = nullptr;
      PhaseTimes::add(times.hessians, [&] { h = &observer.hessian(lin); });
      LayerError e;
      e.layer = l;
      quantize_linear(*lin, offsets[lin], recipe, backend, h, times, errors ? &e : nullptr);
      if (errors) errors->push_back(e);
    }
  }
  PhaseTimes::add(times.passes, [&] {
    for (auto& x : in.x)  // the quantized layer's outputs feed the next
      forward_layer(m, backend, l, x.data(), in.seqlen, 0, in.k_cache.data(), in.v_cache.data(),
                    scratch, nullptr);
  });
}

}  // namespace

void quantize_layers(Model& m, const LayerSource& source, const LayerSink& sink,
                     const Tokenizer& tokenizer, Recipe& recipe, Backend& backend,
                     bool show_progress, std::vector<LayerError>* errors) {
  recipe.validate();
  const ModelConfig& c = m.config;
  const int d = c.hidden_size, L = c.num_layers;
  const int r = recipe.method == "quad" ? recipe.rank : 0;
  check(r < d, "quantize",
        "--rank {} does not fit hidden size {} (the rank must be smaller; try --rank {})", r, d,
        std::max(2, d / 8));
  check(r % 2 == 0, "quantize", "--rank must be even (int4 codes are packed in pairs), got {}", r);
  recipe.rank = r;
  check(m.residual_width == d, "quantize", "the input model is already transformed");
  check(int(m.layers.size()) == L, "quantize", "the model shell needs {} layer slots", L);

  std::vector<std::string> docs;
  if (r > 0 || (recipe.gptq && recipe.w_bits < 16)) {
    docs = load_calibration_documents(recipe.calib_path);
    recipe.calib_sha256 = sha256_file(recipe.calib_path);
  }

  fold_final_norm(m);
  if (recipe.center_embeddings) center_embeddings(m);
  auto folded_layer = [&](int l) {
    DecoderLayer layer = source(l);
    fold_layer_norms(layer);
    return layer;
  };

  OutlierBasis basis;
  if (r > 0) {
    const int len = std::min(recipe.p_seqlen, c.max_position_embeddings);
    auto windows = sample_calibration_windows(tokenizer, docs, recipe.p_nsamples, len, recipe.seed);
    std::vector<double> gram = residual_gram(m, folded_layer, backend, windows, show_progress);
    basis = top_eigenvectors(std::move(gram), d, r);
  }
  const bool transform = r > 0 || recipe.rotate();
  std::vector<double> t;
  if (transform) {
    t = residual_transform(r > 0 ? &basis : nullptr, d, recipe.rotate(), recipe.seed);
    transform_embedding_and_head(m, t, d + r, &backend);
  }
  std::unique_ptr<OnlineHadamards> online;
  if (recipe.rotate()) online = std::make_unique<OnlineHadamards>(c);

  const bool gptq = recipe.w_bits < 16 && recipe.gptq;
  std::unique_ptr<GptqInputs> inputs;
  if (gptq) {
    const int len = std::min(recipe.seqlen, c.max_position_embeddings);
    inputs = std::make_unique<GptqInputs>(
        m, backend,
        sample_calibration_windows(tokenizer, docs, recipe.nsamples, len, recipe.seed + 1));
  }
  if (sink.embedding_ready) sink.embedding_ready(m);
  ForwardScratch scratch;
  Progress progress(gptq                 ? "gptq"
                    : recipe.w_bits < 16 ? "rtn"
                                         : "transform",
                    L, "layers", show_progress);
  PhaseTimes times;
  for (int l = 0; l < L; ++l) {
    DecoderLayer layer;
    PhaseTimes::add(times.read, [&] { layer = folded_layer(l); });
    PhaseTimes::add(times.rotate, [&] {
      if (transform) transform_layer(layer, d, t, d + r, &backend);
    });
    PhaseTimes::add(times.online, [&] {
      if (online) online->apply(layer);
    });
    m.layers[l] = std::move(layer);
    if (gptq) {
      gptq_layer(m, l, recipe, backend, *inputs, scratch, times, errors);
    } else if (recipe.w_bits < 16) {
      DecoderLayer& q = m.layers[l];
      for (Linear* lin : q.linears())
        quantize_linear(*lin, is_u_type(q, lin) ? r : 0, recipe, backend, nullptr, times);
    }
    attach_layer_quantizers(m.layers[l], r, recipe);
    PhaseTimes::add(times.write, [&] {
      if (sink.layer_done) sink.layer_done(m, l);
    });
    backend.release_weights();  // this layer's weights and Hessians are not needed again
    progress.update(l + 1, times.summary());
  }
  progress.finish(times.summary());
  m.kv_quant = kv_quantizer(c, recipe);
}

void quantize_model(Model& m, const Tokenizer& tokenizer, Recipe& recipe, Backend& backend,
                    bool show_progress, std::vector<LayerError>* errors) {
  std::vector<DecoderLayer> original = std::move(m.layers);
  m.layers.assign(original.size(), DecoderLayer{});
  LayerSink sink;
  sink.layer_done = [&](Model&, int l) { original[l] = DecoderLayer{}; };  // read for the last time
  quantize_layers(
      m, [&](int l) { return original[l]; }, sink, tokenizer, recipe, backend, show_progress,
      errors);
}

}  // namespace quad
