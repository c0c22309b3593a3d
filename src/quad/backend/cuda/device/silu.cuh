// SwiGLU's silu(gate) · up, the one formula of every kernel that computes it, so that fused and
// separate paths agree bit for bit.
#pragma once

namespace quad::cuda {

// g / (1 + exp(−g)) · up as the CPU writes it; exp in double, rounded to float, so it agrees
// with a correctly rounded expf.
__device__ __forceinline__ float silu_mul(float g, float up) {
  const float e = float(exp(-double(g)));
  return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, e)), up);
}

}  // namespace quad::cuda
