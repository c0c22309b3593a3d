// GPTQ and the clipping search on layer-sized weights (rows × cols = out × in): a small
// projection (1536×512) and a Llama-7B/8B-sized square one (4096×4096).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <random>
#include <vector>

#include "quad/quant/weight_quant.h"

namespace {

struct Layer {
  std::vector<float> w;       // (rows, cols)
  std::vector<double> h;      // (cols, cols) = (2/n)·XᵀX
  std::vector<float> scales;  // (rows)
};

// Random weights and a Hessian from n = 2·cols random calibration rows with correlated columns.
Layer make_layer(int rows, int cols) {
  std::mt19937 rng(1234);
  std::normal_distribution<double> normal(0.0, 1.0);
  Layer L;
  L.w.resize(size_t(rows) * cols);
  for (auto& v : L.w) v = float(normal(rng));
  const int n = 2 * cols;
  std::vector<double> g(size_t(n) * cols), m(size_t(cols) * cols), x(size_t(n) * cols);
  for (auto& v : g) v = normal(rng);
  for (auto& v : m) v = normal(rng);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, cols, cols, 1.0, g.data(), cols,
              m.data(), cols, 0.0, x.data(), cols);
  L.h.assign(size_t(cols) * cols, 0.0);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cols, cols, n, 2.0 / n, x.data(), cols,
              x.data(), cols, 0.0, L.h.data(), cols);
  L.scales = quad::weight_scales(L.w.data(), rows, cols, {});
  return L;
}

void BM_GptqQuantize(benchmark::State& state) {
  const int rows = int(state.range(0)), cols = int(state.range(1));
  const Layer L = make_layer(rows, cols);
  for (auto _ : state) {
    auto q = quad::gptq_quantize(L.w.data(), rows, cols, L.h, L.scales, {});
    benchmark::DoNotOptimize(q.data());
  }
  state.SetItemsProcessed(state.iterations() * int64_t(rows) * cols);  // weights/s
}
BENCHMARK(BM_GptqQuantize)
    ->Args({1536, 512})
    ->Args({4096, 4096})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_WeightScalesClipSearch(benchmark::State& state) {
  const int rows = int(state.range(0)), cols = int(state.range(1));
  std::vector<float> w(size_t(rows) * cols);
  std::mt19937 rng(99);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& v : w) v = normal(rng);
  for (auto _ : state) {
    auto s = quad::weight_scales(w.data(), rows, cols, {});
    benchmark::DoNotOptimize(s.data());
  }
  state.SetItemsProcessed(state.iterations() * int64_t(rows) * cols);
}
BENCHMARK(BM_WeightScalesClipSearch)
    ->Args({1536, 512})
    ->Args({4096, 4096})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
