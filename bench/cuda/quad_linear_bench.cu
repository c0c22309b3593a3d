// Issue 8's kernel benchmark: the full QUAD linear layer (per-token quantization with the fused
// RMSNorm or online Hadamard, then the int4 GEMM with the scale / outlier / bias epilogue) against
// cuBLAS bf16 on the original (unexpanded) shape, for Llama-3-8B layer shapes with r = 64, at
// several token counts. Ceilings measured in the same run: device-to-device copy bandwidth,
// cuBLAS bf16 and int8 GEMMs at 8192³, and the issue rate of int8 mma.sync.
//
// Timing: each configuration is captured in a CUDA graph of `reps` back-to-back calls that cycle
// through enough weight and input copies to exceed the L2 cache; the graph is replayed, timed
// with CUDA events, and the median replay / reps is reported. Inputs are random (never zeros).
//
// Usage: quad_linear_bench [--quick] [--profile] [--gemv-variants] [--m M1,M2,...] [--json FILE]
// --m: these token counts (1 to 65536) instead of the default list.
// --profile: gate/up and down at M = 1 and 4096 only, plus one plain launch of each kernel (for
// ncu, which does not profile kernels inside graphs).
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench_check.h"
#include "quad/backend/cuda/device/quad_linear.h"
#include "quad/backend/cuda/device/quad_mma.cuh"

using namespace quad::cuda;

#define CB(call)                                                                                \
  do {                                                                                          \
    cublasStatus_t s_ = (call);                                                                 \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                          \
      std::fprintf(stderr, "%s:%d %s: cublas status %d\n", __FILE__, __LINE__, #call, int(s_)); \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

namespace {

constexpr size_t kL2Exceed = 256ull << 20;  // cycle through at least this many bytes of weights

// ---- random device fills (on the GPU, so large buffers are quick to make)

__global__ void fill_normal_bf16(__nv_bfloat16* p, size_t n, unsigned seed, float scale) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    unsigned h = unsigned(i) * 2654435761u ^ seed * 40503u ^ unsigned(i >> 32) * 97u;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    const float u = (float(h & 0xFFFFFF) + 0.5f) / 16777216.0f;  // (0, 1)
    p[i] = __float2bfloat16((u - 0.5f) * 3.46f * scale);         // uniform, variance ≈ scale²
  }
}
__global__ void fill_bytes(uint8_t* p, size_t n, unsigned seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    unsigned h = unsigned(i) * 2654435761u ^ seed * 40503u;
    h ^= h >> 16;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = uint8_t(h);
  }
}
__global__ void fill_half(__half* p, size_t n, unsigned seed, float scale) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    unsigned h = unsigned(i) * 2654435761u ^ seed * 40503u;
    h ^= h >> 15;
    h *= 2246822519u;
    const float u = (float(h & 0xFFFF) + 0.5f) / 65536.0f;
    p[i] = __float2half((u - 0.5f) * scale);
  }
}
__global__ void fill_const_f(float* p, size_t n, float v) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    p[i] = v * (1.0f + 0.001f * float(i % 97));
}
__global__ void fill_const_i(int32_t* p, size_t n, int v) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    p[i] = v + int(i % 13);
}

template <typename T>
T* dalloc(size_t n) {
  T* p = nullptr;
  CK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)));
  return p;
}

// ---- ceilings

__global__ void mma_peak_kernel(int* out, int iters) {
  int acc[8][4] = {};
  unsigned a = threadIdx.x * 0x01010101u, b = blockIdx.x * 0x01030507u;
  for (int i = 0; i < iters; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) mma_u8u8(acc[j], a, a + 1, a + 2, a + 3, b, b + j);
  int s = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) s += acc[j][0] + acc[j][1] + acc[j][2] + acc[j][3];
  if (s == 0x7fffffff) out[0] = s;  // keeps the loop alive
}

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median time of one call of `body(i)` (i = rep index): captured as a graph of `reps` calls,
// replayed `replays` times after two warm-up replays.
float graph_time_ms(cudaStream_t st, int reps, int replays, const std::function<void(int)>& body) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < reps; ++i) body(i);
  CK(cudaStreamEndCapture(st, &graph));
  CK(cudaGraphInstantiate(&exec, graph, 0));
  for (int w = 0; w < 2; ++w) CK(cudaGraphLaunch(exec, st));
  CK(cudaStreamSynchronize(st));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::vector<float> t;
  for (int r = 0; r < replays; ++r) {
    CK(cudaEventRecord(e0, st));
    CK(cudaGraphLaunch(exec, st));
    CK(cudaEventRecord(e1, st));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(ms / reps);
  }
  CK(cudaEventDestroy(e0));
  CK(cudaEventDestroy(e1));
  CK(cudaGraphExecDestroy(exec));
  CK(cudaGraphDestroy(graph));
  return median(t);
}

void gemm_bf16(cublasHandle_t h, int M, int N, int K, const __nv_bfloat16* x,
               const __nv_bfloat16* w, __nv_bfloat16* y) {
  const float alpha = 1.0f, beta = 0.0f;
  CB(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w, CUDA_R_16BF, K, x, CUDA_R_16BF,
                  K, &beta, y, CUDA_R_16BF, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

struct Ceilings {
  double copy_gbs = 0, bf16_tflops = 0, int8_tops = 0, mma_sync_tops = 0;
};

Ceilings measure_ceilings(cudaStream_t st, cublasHandle_t h) {
  Ceilings c;
  {
    const size_t bytes = 2ull << 30;
    uint8_t* a = dalloc<uint8_t>(bytes);
    uint8_t* b = dalloc<uint8_t>(bytes);
    fill_bytes<<<1024, 256, 0, st>>>(a, bytes, 1);
    const float ms = graph_time_ms(
        st, 3, 5, [&](int) { CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, st)); });
    c.copy_gbs = 2.0 * bytes / (ms * 1e-3) / 1e9;
    CK(cudaFree(a));
    CK(cudaFree(b));
  }
  const int n = 8192;
  {
    auto* a = dalloc<__nv_bfloat16>(size_t(n) * n);
    auto* b = dalloc<__nv_bfloat16>(size_t(n) * n);
    auto* y = dalloc<__nv_bfloat16>(size_t(n) * n);
    fill_normal_bf16<<<1024, 256, 0, st>>>(a, size_t(n) * n, 2, 1.0f);
    fill_normal_bf16<<<1024, 256, 0, st>>>(b, size_t(n) * n, 3, 1.0f);
    const float ms = graph_time_ms(st, 3, 5, [&](int) { gemm_bf16(h, n, n, n, a, b, y); });
    c.bf16_tflops = 2.0 * n * n * double(n) / (ms * 1e-3) / 1e12;
    CK(cudaFree(a));
    CK(cudaFree(b));
    CK(cudaFree(y));
  }
  {
    auto* a = dalloc<int8_t>(size_t(n) * n);
    auto* b = dalloc<int8_t>(size_t(n) * n);
    auto* y = dalloc<int32_t>(size_t(n) * n);
    fill_bytes<<<1024, 256, 0, st>>>(reinterpret_cast<uint8_t*>(a), size_t(n) * n, 4);
    fill_bytes<<<1024, 256, 0, st>>>(reinterpret_cast<uint8_t*>(b), size_t(n) * n, 5);
    const int alpha = 1, beta = 0;
    const float ms = graph_time_ms(st, 3, 5, [&](int) {
      CB(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_8I, n, b, CUDA_R_8I,
                      n, &beta, y, CUDA_R_32I, n, CUBLAS_COMPUTE_32I, CUBLAS_GEMM_DEFAULT));
    });
    c.int8_tops = 2.0 * n * n * double(n) / (ms * 1e-3) / 1e12;
    CK(cudaFree(a));
    CK(cudaFree(b));
    CK(cudaFree(y));
  }
  {
    int sms = 0;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    int* out = dalloc<int>(1);
    const int iters = 4096, blocks = sms * 4, threads = 256;
    const float ms = graph_time_ms(
        st, 2, 5, [&](int) { mma_peak_kernel<<<blocks, threads, 0, st>>>(out, iters); });
    const double ops = double(blocks) * (threads / 32) * iters * 8 * (2.0 * 16 * 8 * 32);
    c.mma_sync_tops = ops / (ms * 1e-3) / 1e12;
    CK(cudaFree(out));
  }
  return c;
}

// ---- one layer shape

struct Shape {
  const char* name;
  int N, K;     // the original linear: (N, K)
  bool u_type;  // q/k/v/gate/up (RMSNorm + outlier part) or o/down (online Hadamard)
  int act_bits;
  int heads;  // o_proj: head mix over `heads`; down: the size-K Hadamard (28 · 2^k)
};

struct Row {
  std::string shape;
  int M;
  float cublas_us, quad_us, quant_us, gemm_us, other_us;
};

bool gemv_variants = false;  // --gemv-variants: also time the decode kernel's tuning variants

Row bench_shape(cudaStream_t st, cublasHandle_t h, const Shape& s, int M, int r, int d,
                bool profile) {
  const int Nq = s.u_type ? s.N : d + r;  // QUAD output width (D-type writes the residual d + r)
  const int Kq = s.K;                     // quantized input width
  const int in_width = s.u_type ? r + s.K : s.K;
  const int rq = s.u_type ? r : 0;

  // cuBLAS bf16 on the original shape.
  const size_t wbytes16 = size_t(s.N) * s.K * 2;
  const int sets16 = int(std::clamp<size_t>(kL2Exceed / wbytes16 + 1, 1, 8));
  std::vector<__nv_bfloat16*> w16(sets16);
  for (int i = 0; i < sets16; ++i) {
    w16[i] = dalloc<__nv_bfloat16>(size_t(s.N) * s.K);
    fill_normal_bf16<<<1024, 256, 0, st>>>(w16[i], size_t(s.N) * s.K, 10 + i, 0.02f);
  }
  auto* x16 = dalloc<__nv_bfloat16>(size_t(M) * std::max(s.K, in_width));
  fill_normal_bf16<<<1024, 256, 0, st>>>(x16, size_t(M) * std::max(s.K, in_width), 7, 1.0f);
  auto* y16 = dalloc<__nv_bfloat16>(size_t(M) * std::max(s.N, Nq));
  const int reps = M <= 16 ? 50 : 10;
  const float cublas_ms = graph_time_ms(
      st, reps, 10, [&](int i) { gemm_bf16(h, M, s.N, s.K, x16, w16[i % sets16], y16); });
  for (auto* p : w16) CK(cudaFree(p));

  // QUAD: weights, activations, mix matrix.
  const size_t wbytes4 = quad_weight_bytes(Nq, Kq);
  const int sets4 = int(std::clamp<size_t>(kL2Exceed / wbytes4 + 1, 1, 16));
  std::vector<uint8_t*> w4(sets4);
  for (int i = 0; i < sets4; ++i) {
    w4[i] = dalloc<uint8_t>(wbytes4);
    fill_bytes<<<1024, 256, 0, st>>>(w4[i], wbytes4, 20 + i);
  }
  auto* wscale = dalloc<float>(Nq);
  auto* wsum = dalloc<int32_t>(Nq);
  auto* wout = dalloc<__half>(size_t(Nq) * std::max(rq, 1));
  fill_const_f<<<64, 256, 0, st>>>(wscale, Nq, 0.01f);
  fill_const_i<<<64, 256, 0, st>>>(wsum, Nq, -3);
  fill_half<<<256, 256, 0, st>>>(wout, size_t(Nq) * std::max(rq, 1), 30, 0.1f);
  auto* codes = dalloc<uint8_t>(size_t(M) * quad_row_bytes(Kq, s.act_bits));
  auto* ascale = dalloc<float>(M);
  auto* asum = dalloc<int32_t>(M);
  auto* aout = dalloc<__half>(2 * size_t(M) * std::max(rq, 1));  // the pair: hi, then lo
  QuadActivations act{codes, ascale, asum, rq ? aout : nullptr,
                      rq ? aout + size_t(M) * rq : nullptr};
  {
    const QuadWeights shape_only{nullptr, nullptr, nullptr, nullptr,   nullptr,
                                 Nq,      Kq,      rq,      s.act_bits};
    act.natural = quad_gemm_natural(M, shape_only);  // what launch_quad_gemm reads at this M
  }
  // The other prefill kernel, timed for comparison: mma.sync where the default is wgmma, wgmma
  // (where available) where the default is mma.sync. Its own activation layout (timing only).
  QuadActivations act_other = act;
  act_other.natural = !act.natural;

  // The online Hadamard's outer factor: head mix (heads × heads) or the 28 · 2^k split of down.
  int K_o = 1;
  bool inner = false;
  if (!s.u_type) {
    if (s.heads > 0) {
      K_o = s.heads;
    } else {
      K_o = 28;
      inner = true;
    }
  }
  // A Hadamard mix's shape: entries ±c (random signs), which the tensor-core mix of the many-rows
  // kernel relies on (any other matrix takes its FMA path).
  std::vector<float> mix_h(size_t(K_o) * K_o);
  std::mt19937 rng(5);
  const float c = 1.0f / std::sqrt(float(Kq) / float(K_o));
  for (auto& v : mix_h) v = rng() % 2 ? c : -c;
  float* mix = dalloc<float>(mix_h.size());
  CK(cudaMemcpy(mix, mix_h.data(), mix_h.size() * 4, cudaMemcpyHostToDevice));

  auto quant = [&]() {
    if (s.u_type)
      CK(launch_quad_quant_u(x16, M, r, Kq, d, 1e-5f, s.act_bits, 0.9f, act, st));
    else
      CK(launch_quad_quant_d(x16, M, Kq, mix, K_o, inner, s.act_bits, 0.9f, act, st));
  };
  auto gemm = [&](int i) {
    QuadWeights w{w4[i % sets4], wscale, wsum, rq ? wout : nullptr, nullptr, Nq, Kq, rq,
                  s.act_bits};
    CK(launch_quad_gemm(act, M, w, y16, st));
  };
  quant();
  CK(cudaStreamSynchronize(st));
  const float quad_ms = graph_time_ms(st, reps, 10, [&](int i) {
    quant();
    gemm(i);
  });
  const float quant_ms = graph_time_ms(st, reps, 10, [&](int) { quant(); });
  const float gemm_ms = graph_time_ms(st, reps, 10, gemm);
  float gemv_variant_ms[5] = {0, 0, 0, 0, 0};  // the decode kernel's tuning variants
  if (M <= 16 && gemv_variants)
    for (int v = 0; v < 5; ++v)
      gemv_variant_ms[v] = graph_time_ms(st, reps, 10, [&](int i) {
        QuadWeights w{w4[i % sets4], wscale, wsum, rq ? wout : nullptr, nullptr, Nq, Kq, rq,
                      s.act_bits};
        CK(launch_quad_gemv_variant(act, M, w, y16, st, v));
      });
  if (M <= 16 && gemv_variants)
    std::printf(
        "  gemv variants %s M=%d: v0 (default) %.2f  v1 (persistent) %.2f  v2 (2/SM) %.2f  "
        "v3 (3/SM) %.2f  v4 %.2f us\n",
        s.name, M, gemv_variant_ms[0] * 1e3f, gemv_variant_ms[1] * 1e3f, gemv_variant_ms[2] * 1e3f,
        gemv_variant_ms[3] * 1e3f, gemv_variant_ms[4] * 1e3f);
  float other_ms = 0.0f;
  const QuadWeights w_any{w4[0], wscale, wsum, rq ? wout : nullptr, nullptr,
                          Nq,    Kq,     rq,   s.act_bits};
  if (M > 16 && (act.natural || quad_wgmma_available(w_any)))
    other_ms = graph_time_ms(st, reps, 10, [&](int i) {
      QuadWeights w = w_any;
      w.codes = w4[i % sets4];
      if (act.natural)
        CK(launch_quad_gemm_tiled(act_other, M, w, y16, st));
      else
        CK(launch_quad_gemm_wgmma(act_other, M, w, y16, st));
    });
  if (profile) {  // one plain launch of each kernel, for ncu
    quant();
    gemm(0);
    if (M > 16) {
      QuadWeights w{w4[0], wscale, wsum, rq ? wout : nullptr, nullptr, Nq, Kq, rq, s.act_bits};
      if (act.natural) CK(launch_quad_gemm_tiled(act_other, M, w, y16, st));
    }
    CK(cudaStreamSynchronize(st));
  }
  CK(cudaGetLastError());

  for (auto* p : w4) CK(cudaFree(p));
  for (void* p : {(void*)wscale, (void*)wsum, (void*)wout, (void*)codes, (void*)ascale, (void*)asum,
                  (void*)aout, (void*)mix, (void*)x16, (void*)y16})
    CK(cudaFree(p));
  return Row{s.name,         M, cublas_ms * 1e3f, quad_ms * 1e3f, quant_ms * 1e3f, gemm_ms * 1e3f,
             other_ms * 1e3f};
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, profile = false;
  const char* json_path = nullptr;
  std::vector<int> m_list;
  // "M1,M2,..." with every M in 1..65536, or false.
  auto parse_ms = [&](const char* text) {
    std::string item;
    for (const char* c = text;; ++c) {
      if (*c == ',' || *c == '\0') {
        char* end = nullptr;
        const long v = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || v < 1 || v > 65536) return false;
        m_list.push_back(int(v));
        item.clear();
        if (*c == '\0') return true;
      } else {
        item += *c;
      }
    }
  };
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) {
      quick = true;
    } else if (!std::strcmp(argv[i], "--profile")) {
      profile = true;
    } else if (!std::strcmp(argv[i], "--gemv-variants")) {
      gemv_variants = true;
    } else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) {
      json_path = argv[++i];
    } else if (!std::strcmp(argv[i], "--m") && i + 1 < argc && parse_ms(argv[i + 1])) {
      ++i;
    } else {
      std::fprintf(stderr,
                   "usage: quad_linear_bench [--quick] [--profile] [--gemv-variants] "
                   "[--m M1,M2,...] [--json FILE]\n");
      return 2;
    }
  }
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize >> 20);
  cudaStream_t st;
  CK(cudaStreamCreate(&st));
  cublasHandle_t h;
  CB(cublasCreate(&h));
  CB(cublasSetStream(h, st));
  void* ws = dalloc<uint8_t>(64u << 20);
  CB(cublasSetWorkspace(h, ws, 64u << 20));

  const Ceilings c = profile ? Ceilings{} : measure_ceilings(st, h);
  std::printf(
      "ceilings: copy %.0f GB/s (read + write), cuBLAS bf16 %.0f TFLOP/s, cuBLAS int8 "
      "%.0f TOP/s, int8 mma.sync issue %.0f TOP/s\n",
      c.copy_gbs, c.bf16_tflops, c.int8_tops, c.mma_sync_tops);
  std::printf(
      "gemm_us: the kernel launch_quad_gemm picks (M <= 16: weight streaming; larger: wgmma\n"
      "or mma.sync by grid size); other_us: the other prefill kernel on the same shape\n");

  const int d = 4096, r = 64;
  const std::vector<Shape> shapes = {{"q 4096x4096", 4096, 4096, true, 4, 0},
                                     {"k/v 1024x4096", 1024, 4096, true, 4, 0},
                                     {"o 4096x4096 A4", 4096, 4096, false, 4, 32},
                                     {"o 4096x4096 A8", 4096, 4096, false, 8, 32},
                                     {"gate/up 14336x4096", 14336, 4096, true, 4, 0},
                                     {"down 4096x14336 A4", 4096, 14336, false, 4, 0},
                                     {"down 4096x14336 A8", 4096, 14336, false, 8, 0}};
  std::vector<int> Ms =
      quick ? std::vector<int>{1, 16, 4096} : std::vector<int>{1, 4, 16, 2048, 4096, 8192};
  if (profile) Ms = {1, 4096};
  if (!m_list.empty()) Ms = m_list;
  std::vector<Row> rows;
  std::printf("\n%-20s %6s %10s %10s %9s %9s %9s %8s %9s %9s\n", "shape (N x K)", "M", "cuBLAS_us",
              "QUAD_us", "quant_us", "gemm_us", "other_us", "speedup", "TOP/s", "GB/s");
  for (const auto& s : shapes)
    for (int M : Ms) {
      if (profile && std::string(s.name).rfind("gate", 0) != 0 &&
          std::string(s.name) != "down 4096x14336 A8")
        continue;
      Row row = bench_shape(st, h, s, M, r, d, profile);
      rows.push_back(row);
      // Effective rate on the original op count; bytes: int4 weights + fp16 outliers + scales.
      const int Nq = s.u_type ? s.N : d + r;
      const double bytes =
          double(Nq) * quad_row_bytes(s.K, 4) + (s.u_type ? double(Nq) * r * 2 : 0);
      const double tops = 2.0 * M * double(s.N) * s.K / (row.quad_us * 1e-6) / 1e12;
      const double gbs = bytes / (row.gemm_us * 1e-6) / 1e9;
      std::printf("%-20s %6d %10.2f %10.2f %9.2f %9.2f %9.2f %7.2fx %9.1f %9.0f\n",
                  row.shape.c_str(), M, row.cublas_us, row.quad_us, row.quant_us, row.gemm_us,
                  row.other_us, row.cublas_us / row.quad_us, tops, gbs);
      std::fflush(stdout);
    }
  if (json_path) {
    FILE* f = std::fopen(json_path, "w");
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", json_path);
      return 1;
    }
    std::fprintf(f,
                 "{\"device\": \"%s\", \"copy_gbs\": %.1f, \"cublas_bf16_tflops\": %.1f, "
                 "\"cublas_int8_tops\": %.1f, \"mma_sync_int8_tops\": %.1f, \"rows\": [\n",
                 prop.name, c.copy_gbs, c.bf16_tflops, c.int8_tops, c.mma_sync_tops);
    for (size_t i = 0; i < rows.size(); ++i)
      std::fprintf(f,
                   "  {\"shape\": \"%s\", \"M\": %d, \"cublas_us\": %.3f, \"quad_us\": %.3f, "
                   "\"quant_us\": %.3f, \"gemm_us\": %.3f, \"other_us\": %.3f}%s\n",
                   rows[i].shape.c_str(), rows[i].M, rows[i].cublas_us, rows[i].quad_us,
                   rows[i].quant_us, rows[i].gemm_us, rows[i].other_us,
                   i + 1 < rows.size() ? "," : "");
    std::fprintf(f, "]}\n");
    std::fclose(f);
  }
  CB(cublasDestroy(h));
  return 0;
}
