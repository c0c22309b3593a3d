#include "quad/quant/projection.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "quad/core/error.h"
#include "quad/core/progress.h"
#include "quad/quant/gram_accumulator.h"

namespace quad {

namespace {

// Σ xxᵀ over the residual stream at every norm input, where the backend computes.
class GramObserver final : public ForwardObserver {
 public:
  GramObserver(Backend& backend, int d) : gram_(backend, d) {}
  void norm_input(int, int, const float* x, int n, int width) override {
    check(width == gram_.k(), "calib", "Gram observer expects width {}, got {}", gram_.k(), width);
    gram_.add(x, n, width, 0);
  }
  std::vector<double> take() {
    gram_.finish();
    return gram_.to_host();
  }

 private:
  GramAccumulator gram_;
};

}  // namespace

std::vector<double> residual_gram(Model& model, const std::function<DecoderLayer(int)>& layer,
                                  Backend& backend,
                                  const std::vector<std::vector<int32_t>>& windows,
                                  bool show_progress) {
  const int d = model.residual_width, L = model.config.num_layers;
  check(!windows.empty(), "calib", "no calibration windows");
  const int len = int(windows.front().size());
  const size_t kv = size_t(len) * model.config.num_kv_heads * model.config.head_dim;
  const MemoryKind mem = backend.memory();
  // Every window's residual stream, where the backend computes, advanced one layer at a time.
  std::vector<BackendArray<float>> x(windows.size());
  std::vector<float> host(size_t(len) * d);
  for (size_t w = 0; w < windows.size(); ++w) {
    check(int(windows[w].size()) == len, "calib", "calibration windows differ in length");
    embed(model, windows[w].data(), len, host.data());
    backend.copy(x[w].ensure(mem, host.size()), host.data(), sizeof(float) * host.size());
  }
  BackendArray<float> k_cache, v_cache;
  k_cache.ensure(mem, kv);
  v_cache.ensure(mem, kv);
  GramObserver observer(backend, d);
  ForwardScratch scratch;
  Progress progress("calibrate P", L, "layers", show_progress);
  for (int l = 0; l < L; ++l) {
    model.layers[l] = layer(l);
    for (auto& xw : x)
      forward_layer(model, backend, l, xw.data(), len, 0, k_cache.data(), v_cache.data(), scratch,
                    &observer);
    model.layers[l] = DecoderLayer{};
    backend.release_weights();
    progress.update(l + 1);
  }
  progress.finish();
  return observer.take();
}

OutlierBasis top_eigenvectors(std::vector<double> gram, int d, int r) {
  check(r >= 0 && r <= d, "projection", "rank {} must be in [0, {}]", r, d);
  std::vector<double> w(d);
  int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', d, gram.data(), d, w.data());
  check(info == 0, "projection", "eigendecomposition failed (LAPACK info {})", info);
  OutlierBasis b;
  b.d = d;
  b.r = r;
  b.eigenvalues.assign(w.rbegin(), w.rend());
  b.u.resize(size_t(d) * r);
  for (int c = 0; c < r; ++c) {
    const int src = d - 1 - c;  // dsyevd sorts ascending
    int arg = 0;
    for (int i = 1; i < d; ++i)
      if (std::fabs(gram[size_t(i) * d + src]) > std::fabs(gram[size_t(arg) * d + src])) arg = i;
    const double sign = gram[size_t(arg) * d + src] < 0 ? -1.0 : 1.0;
    for (int i = 0; i < d; ++i) b.u[size_t(i) * r + c] = sign * gram[size_t(i) * d + src];
  }
  return b;
}

std::vector<double> expansion_matrix(const OutlierBasis& b) {
  const int d = b.d, r = b.r, D = d + r;
  std::vector<double> e(size_t(d) * D, 0.0);
  for (int i = 0; i < d; ++i)
    for (int c = 0; c < r; ++c) e[size_t(i) * D + c] = b.u[size_t(i) * r + c];
  // I − U Uᵀ in columns r..r+d-1
  std::vector<double> uut(size_t(d) * d, 0.0);
  if (r > 0)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, d, r, 1.0, b.u.data(), r, b.u.data(), r,
                0.0, uut.data(), d);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j)
      e[size_t(i) * D + r + j] = (i == j ? 1.0 : 0.0) - uut[size_t(i) * d + j];
  return e;
}

}  // namespace quad
