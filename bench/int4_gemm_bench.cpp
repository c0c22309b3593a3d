// The int4 GEMM kernels (packed int4 weights × int8 activation codes) at decode (n = 1) and
// prefill (n = 512) sizes, against an fp32 OpenBLAS sgemm at the same shapes and this machine's
// streaming read bandwidth. Shapes are out × in: the llama3-8b MLP (28672 × 4096, packed
// weights 56 MiB, larger than the L3 cache) and tiny-llama3's MLP (1536 × 512, 512 × 1536).
// Counters: weight_GBps = weight bytes / time (out·in/2 for int4, out·in·4 for fp32) and
// GOPS = 2·n·out·in / time. Run with OMP_NUM_THREADS set to the thread count wanted.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <cstdint>
#include <random>
#include <vector>

#include "quad/backend/cpu/kernels/int4_gemm.h"
#include "quad/backend/cpu/kernels/linear_f16.h"
#include "quad/tensor/dtype.h"

namespace {

using quad::kernels::Int4Kernel;

struct Int4Problem {
  std::vector<int8_t> x;
  std::vector<uint8_t> w;
  std::vector<float> sx, sw, y;
};

Int4Problem make_int4(int n, int k, int out) {
  std::mt19937 rng(42);
  Int4Problem p;
  p.x.resize(size_t(n) * k);
  p.w.resize(size_t(out) * k / 2);
  for (auto& v : p.x) v = int8_t(int(rng() % 255) - 127);
  for (auto& v : p.w) v = uint8_t(rng());
  p.sx.assign(size_t(n), 0.01f);
  p.sw.assign(size_t(out), 0.02f);
  p.y.resize(size_t(n) * out);
  return p;
}

void set_counters(benchmark::State& state, double weight_bytes, int n, int k, int out) {
  const double it = double(state.iterations());
  state.counters["weight_GBps"] =
      benchmark::Counter(weight_bytes * it / 1e9, benchmark::Counter::kIsRate);
  state.counters["GOPS"] =
      benchmark::Counter(2.0 * n * double(out) * k * it / 1e9, benchmark::Counter::kIsRate);
}

// Args: kernel (0 ref, 1 avx2, 2 avx512), n, out, k.
void BM_Int4Gemm(benchmark::State& state) {
  const auto kernel = Int4Kernel(state.range(0));
  const int n = int(state.range(1)), out = int(state.range(2)), k = int(state.range(3));
  state.SetLabel(quad::kernels::kernel_name(kernel));
  if (!quad::kernels::kernel_supported(kernel)) {
    state.SkipWithError("kernel not supported on this CPU");
    return;
  }
  Int4Problem p = make_int4(n, k, out);
  for (auto _ : state) {
    quad::kernels::gemm_s8_s4_with(kernel, p.x.data(), p.sx.data(), n, k, p.w.data(), p.sw.data(),
                                   out, p.y.data());
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, double(out) * k / 2, n, k, out);
}

void int4_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"kernel", "n", "out", "in"});
  for (int kernel : {0, 1, 2}) {
    for (int n : {1, 512}) {
      // llama3-8b MLP; tiny-llama3 MLP; QUAD llama3.2-1b (D = 2048 + 64): gate/up, down, q/o.
      for (auto [out, k] : {std::pair{28672, 4096},
                            {1536, 512},
                            {512, 1536},
                            {8192, 2112},
                            {2112, 8192},
                            {2048, 2112}}) {
        // The scalar reference only where it finishes in reasonable time; llama3.2-1b shapes
        // for decode only.
        if (kernel == 0 && double(n) * out * k > 1e9) continue;
        if (n > 1 && (out == 2112 || k == 2112)) continue;
        b->Args({kernel, n, out, k});
      }
    }
  }
}
BENCHMARK(BM_Int4Gemm)->Apply(int4_args)->Unit(benchmark::kMillisecond)->UseRealTime();

// fp32 baseline: y (n, out) = x (n, k) · w (out, k)ᵀ with OpenBLAS. Args: n, out, k.
void BM_Sgemm(benchmark::State& state) {
  const int n = int(state.range(0)), out = int(state.range(1)), k = int(state.range(2));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(size_t(n) * k), w(size_t(out) * k), y(size_t(n) * out);
  for (auto& v : x) v = u(rng);
  for (auto& v : w) v = u(rng);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, k, 1.0f, x.data(), k, w.data(), k,
                0.0f, y.data(), out);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, double(out) * k * 4, n, k, out);
}
BENCHMARK(BM_Sgemm)
    ->ArgNames({"n", "out", "in"})
    ->Args({1, 28672, 4096})
    ->Args({512, 28672, 4096})
    ->Args({1, 1536, 512})
    ->Args({512, 1536, 512})
    ->Args({1, 512, 1536})
    ->Args({512, 512, 1536})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// fp32 decode baseline through the matrix-vector routine (OpenBLAS's sgemm with one row is
// much slower than its sgemv). Args: out, k.
void BM_Sgemv(benchmark::State& state) {
  const int out = int(state.range(0)), k = int(state.range(1));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(k)), w(size_t(out) * k), y(static_cast<size_t>(out));
  for (auto& v : x) v = u(rng);
  for (auto& v : w) v = u(rng);
  for (auto _ : state) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, out, k, 1.0f, w.data(), k, x.data(), 1, 0.0f, y.data(),
                1);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, double(out) * k * 4, 1, k, out);
}
BENCHMARK(BM_Sgemv)
    ->ArgNames({"out", "in"})
    ->Args({28672, 4096})
    ->Args({128256, 2048})
    ->Args({1536, 512})
    ->Args({512, 1536})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The fp16 LM head of a QUAD folder: one token through linear_f16 (F16C GEMV). Args: out, k.
// 128256 × 2112: llama3.2-1b's head with r = 64 (542 MB of fp16, read from DRAM).
void BM_LinearF16(benchmark::State& state) {
  const int out = int(state.range(0)), k = int(state.range(1));
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(k)), y(static_cast<size_t>(out));
  std::vector<uint16_t> w(size_t(out) * k);
  for (auto& v : x) v = u(rng);
  for (auto& v : w) v = quad::f32_to_f16(u(rng));
  for (auto _ : state) {
    quad::kernels::linear_f16(x.data(), 1, k, w.data(), out, nullptr, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, double(out) * k * 2, 1, k, out);
}
BENCHMARK(BM_LinearF16)
    ->ArgNames({"out", "in"})
    ->Args({128256, 2112})
    ->Args({28672, 4096})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Streaming read bandwidth: sum a 1 GiB buffer with all OpenMP threads (AVX2 loads).
__attribute__((target("avx2"))) int64_t sum_words(const int64_t* a, size_t n) {
  int64_t s = 0;
#pragma omp parallel for simd reduction(+ : s) schedule(static)
  for (size_t i = 0; i < n; ++i) s += a[i];
  return s;
}

void BM_MemReadBandwidth(benchmark::State& state) {
  const size_t words = size_t(1) << 27;  // 1 GiB
  std::vector<int64_t> a(words);
  for (size_t i = 0; i < words; ++i) a[i] = int64_t(i);
  for (auto _ : state) benchmark::DoNotOptimize(sum_words(a.data(), words));
  state.counters["read_GBps"] =
      benchmark::Counter(double(words) * 8 * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MemReadBandwidth)->Unit(benchmark::kMillisecond)->UseRealTime();

// int8 peak: independent vpdpbusd (zmm, 64 u8×s8 multiply-adds each) on every OpenMP thread,
// counted as 2 ops per multiply-add like GOPS above.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) int32_t vnni_loop(int64_t iters) {
  __m512i acc[12];
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-5);
  for (auto& v : acc) v = _mm512_setzero_si512();
  for (int64_t i = 0; i < iters; ++i) {
    for (auto& v : acc) v = _mm512_dpbusd_epi32(v, a, b);
    // Keeps the compiler from folding the loop.
    __asm__ volatile(""
                     : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]), "+v"(acc[4]),
                       "+v"(acc[5]), "+v"(acc[6]), "+v"(acc[7]), "+v"(acc[8]), "+v"(acc[9]),
                       "+v"(acc[10]), "+v"(acc[11]));
  }
  __m512i s = acc[0];
  for (int j = 1; j < 12; ++j) s = _mm512_add_epi32(s, acc[j]);
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, s);
  return lanes[0];
}

void BM_VnniPeak(benchmark::State& state) {
  if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni"))) {
    state.SkipWithError("no AVX-512 VNNI");
    return;
  }
  const int64_t iters = int64_t(1) << 22;
  int threads = 1;
  for (auto _ : state) {
#pragma omp parallel
    {
#pragma omp single
      threads = omp_get_num_threads();
      benchmark::DoNotOptimize(vnni_loop(iters));
    }
  }
  state.counters["GOPS"] =
      benchmark::Counter(double(threads) * iters * 12 * 64 * 2 * state.iterations() / 1e9,
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_VnniPeak)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
