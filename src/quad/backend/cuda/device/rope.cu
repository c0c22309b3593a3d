// Half-split RoPE ("rotate_half"): (a, b) -> (a·cos − b·sin, b·cos + a·sin) for the pairs
// (k, k + head_dim/2). Each product is rounded on its own (no fused multiply-add), so results are
// deterministic; they may differ from the CPU's by an ulp where its compiler fuses one product.
#include "kernels.h"

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
    v[k] = __fsub_rn(__fmul_rn(a, c[k]), __fmul_rn(b, s[k]));
    v[k + half] = __fadd_rn(__fmul_rn(b, c[k]), __fmul_rn(a, s[k]));
  }
}

}  // namespace

cudaError_t launch_rope(float* x, int n, int heads, int head_dim, const int32_t* pos, int pos0,
                        const float* cos, const float* sin, cudaStream_t stream) {
  if (n <= 0 || heads <= 0 || head_dim < 2) return cudaSuccess;
  rope_kernel<<<n, 128, 0, stream>>>(x, heads, head_dim, pos, pos0, cos, sin);
  return cudaGetLastError();
}

}  // namespace quad::cuda
