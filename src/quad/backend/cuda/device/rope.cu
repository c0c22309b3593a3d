// Half-split RoPE ("rotate_half"): (a, b) -> (a·cos − b·sin, b·cos + a·sin) for the pairs
// (k, k + head_dim/2). Each product is rounded on its own (no fused multiply-add), so results are
// deterministic; they may differ from the CPU's by an ulp where its compiler fuses one product.
#include "kernels.h"
#include "pdl.cuh"
#include "rope_pair.cuh"

namespace quad::cuda {

namespace {

__global__ void rope_kernel(float* x, int heads, int head_dim, const int32_t* pos, int pos0,
                            const float* cos, const float* sin) {
  const int half = head_dim / 2;
  const int i = blockIdx.x;
  const int p = pos ? pos[i] : pos0 + i;
  const float* c = cos + size_t(p) * half;
  const float* s = sin + size_t(p) * half;
  for (int j = threadIdx.x; j < heads * half; j += blockDim.x) {
    const int h = j / half, k = j % half;
    float* v = x + (size_t(i) * heads + h) * head_dim;
    const float a = v[k], b = v[k + half];
    v[k] = rope_lo(a, b, c[k], s[k]);
    v[k + half] = rope_hi(a, b, c[k], s[k]);
  }
}

// Rows of qkv (n, ld) hold q | k | v (one GEMM of the joined weights): the keys, rotated as
// rope_kernel rotates them (token i at position pos0 + i), into k_out (n, heads·head_dim) and
// the values, copied, into v_out; with q_heads > 0 the first q_heads heads of each row (q) are
// rotated in place too.
__global__ void split_kv_rope_kernel(float* qkv, int ld, int k_col, int heads, int head_dim,
                                     int pos0, const float* cos, const float* sin, float* k_out,
                                     float* v_out, int q_heads) {
  pdl_wait();
  pdl_allow_next();
  const int half = head_dim / 2, width = heads * head_dim;
  const int i = blockIdx.x;
  float* row = qkv + size_t(i) * ld;
  const float* k_in = row + k_col;
  const float* v_in = k_in + width;
  const float* c = cos + size_t(pos0 + i) * half;
  const float* s = sin + size_t(pos0 + i) * half;
  float* ko = k_out + size_t(i) * width;
  for (int j = threadIdx.x; j < heads * half; j += blockDim.x) {
    const int h = j / half, k = j % half;
    const float a = k_in[h * head_dim + k], b = k_in[h * head_dim + k + half];
    ko[h * head_dim + k] = rope_lo(a, b, c[k], s[k]);
    ko[h * head_dim + k + half] = rope_hi(a, b, c[k], s[k]);
  }
  for (int j = threadIdx.x; j < width; j += blockDim.x) v_out[size_t(i) * width + j] = v_in[j];
  for (int j = threadIdx.x; j < q_heads * half; j += blockDim.x) {
    float* v = row + (j / half) * head_dim;
    const int k = j % half;
    const float a = v[k], b = v[k + half];
    v[k] = rope_lo(a, b, c[k], s[k]);
    v[k + half] = rope_hi(a, b, c[k], s[k]);
  }
}

}  // namespace

cudaError_t launch_split_kv_rope(float* qkv, int n, int ld, int k_col, int heads, int head_dim,
                                 int pos0, const float* cos, const float* sin, float* k_out,
                                 float* v_out, int q_heads, cudaStream_t stream) {
  if (n <= 0 || heads <= 0 || head_dim < 2) return cudaSuccess;
  return launch_pdl(split_kv_rope_kernel, dim3(n), dim3(128), 0, stream, qkv, ld, k_col, heads,
                    head_dim, pos0, cos, sin, k_out, v_out, q_heads);
}

cudaError_t launch_rope(float* x, int n, int heads, int head_dim, const int32_t* pos, int pos0,
                        const float* cos, const float* sin, cudaStream_t stream) {
  if (n <= 0 || heads <= 0 || head_dim < 2) return cudaSuccess;
  rope_kernel<<<n, 128, 0, stream>>>(x, heads, head_dim, pos, pos0, cos, sin);
  return cudaGetLastError();
}

}  // namespace quad::cuda
