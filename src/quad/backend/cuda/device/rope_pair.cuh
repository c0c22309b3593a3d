// RoPE's rotation of one pair (a at k, b at k + half) by the angle with cosine c and sine s, in
// the reference's rounding (each product and each sum rounded on its own, no FMA), so that every
// kernel that rotates (rope, split_kv_rope, decode attention, the flash kernel's q load) gives the
// same bits.
#pragma once

namespace quad::cuda {

__device__ __forceinline__ float rope_lo(float a, float b, float c, float s) {
  return __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
}
__device__ __forceinline__ float rope_hi(float a, float b, float c, float s) {
  return __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
}

}  // namespace quad::cuda
