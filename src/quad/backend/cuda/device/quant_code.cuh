// The reference quantizer's formulas (backend/ref): scale = max|a| / qmax · clip and code =
// clamp(round_half_even(a / scale), −qmax−1, qmax), in IEEE fp32, shared by every CUDA kernel
// that writes codes.
#pragma once

#include <math.h>

namespace quad::cuda {

__device__ __forceinline__ float quant_scale(float amax, float qmax, float clip) {
  return __fmul_rn(__fdiv_rn(amax, qmax), clip);
}

// The code of a value for one scale (not 0), bit for bit the quotient's, without a division per
// value: fl(v · fl(1/scale)) lies within 2 ulp of fl(v / scale), so both round to the same integer
// unless the product lies within 1e-4 of a half-integer, where the quotient is computed. (2 ulp
// stay under 1e-4 for |v / scale| < 256; larger quotients clamp alike.)
struct CodeOf {
  float scale, inv, lo, hi;
  __device__ __forceinline__ float operator()(float v) const {
    const float t = __fmul_rn(v, inv);
    float q = rintf(t);
    if (!(fabsf(__fsub_rn(t, q)) <= 0.4999f)) q = rintf(__fdiv_rn(v, scale));
    return fminf(fmaxf(q, lo), hi);
  }
};

__device__ __forceinline__ CodeOf code_of(float scale, float qmax) {
  return {scale, __fdiv_rn(1.0f, scale), -qmax - 1.0f, qmax};
}

}  // namespace quad::cuda
