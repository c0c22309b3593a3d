// Times the prefill flash-attention kernel (launch_flash_attention: fp32 q/k/v in, fp16 tensor
// cores, the K/V conversion included) at Llama-3-8B's attention shape — 32 query heads, 8 KV
// heads, head_dim 128 — for a causal prefill of n tokens, with CUDA events: the median of many
// launches, and the TFLOP/s of the causal work (4·hd·H·Σ_i (i + 1) flops). Compare with
// bench/torch_gemm_probe.py's SDPA line in the same call.
//
// Usage: attention_bench [n ...]   (default 512 2048 8192)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bench_check.h"
#include "quad/backend/cuda/device/kernels.h"

int main(int argc, char** argv) {
  std::vector<int> lengths;
  for (int i = 1; i < argc; ++i) lengths.push_back(std::atoi(argv[i]));
  if (lengths.empty()) lengths = {512, 2048, 8192};
  const int H = 32, Hkv = 8, hd = 128, reps = 30;
  std::printf("%8s %10s %9s\n", "tokens", "median us", "TFLOP/s");
  for (int n : lengths) {
    if (n <= 0) {
      std::fprintf(stderr, "attention_bench: token count %d must be positive\n", n);
      return 1;
    }
    const size_t q_count = size_t(n) * H * hd, kv_count = size_t(n) * Hkv * hd;
    std::vector<float> host(q_count);
    std::mt19937 rng(n);
    std::normal_distribution<float> normal;
    for (float& v : host) v = normal(rng);
    float *q, *k, *v, *out;
    uint16_t* scratch;
    CK(cudaMalloc(&q, sizeof(float) * q_count));
    CK(cudaMalloc(&k, sizeof(float) * kv_count));
    CK(cudaMalloc(&v, sizeof(float) * kv_count));
    CK(cudaMalloc(&out, sizeof(float) * q_count));
    CK(cudaMalloc(&scratch, sizeof(uint16_t) * quad::cuda::flash_attention_scratch(n, Hkv, hd)));
    CK(cudaMemcpy(q, host.data(), sizeof(float) * q_count, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(k, host.data(), sizeof(float) * kv_count, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(v, host.data() + q_count - kv_count, sizeof(float) * kv_count,
                  cudaMemcpyHostToDevice));
    const float scale = 1.0f / std::sqrt(float(hd));
    auto launch = [&] {
      CK(quad::cuda::launch_flash_attention(q, n, H, Hkv, hd, k, v, 0, scale, out, scratch,
                                            nullptr));
    };
    for (int i = 0; i < 3; ++i) launch();
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    std::vector<float> ms;
    for (int i = 0; i < reps; ++i) {
      CK(cudaEventRecord(a));
      launch();
      CK(cudaEventRecord(b));
      CK(cudaEventSynchronize(b));
      float t = 0;
      CK(cudaEventElapsedTime(&t, a, b));
      ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    const double median_ms = ms[ms.size() / 2];
    const double flops = 4.0 * hd * H * (double(n) * (n + 1) / 2);
    std::printf("%8d %10.1f %9.1f\n", n, median_ms * 1e3, flops / (median_ms * 1e-3) / 1e12);
    for (void* p : {(void*)q, (void*)k, (void*)v, (void*)out, (void*)scratch}) CK(cudaFree(p));
  }
  return 0;
}
