// fp32 → 16-bit (bf16 or fp16 bit patterns), round to nearest even: the one rounding of every
// kernel that writes an input of the 16-bit GEMMs, so that fused and separate paths agree.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace quad::cuda {

__device__ __forceinline__ uint16_t to_half(float x, bool bf16) {
  return bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(x)) : __half_as_ushort(__float2half_rn(x));
}

// Two values packed into one 32-bit word, the first in the low half.
__device__ __forceinline__ uint32_t to_half2(float lo, float hi, bool bf16) {
  return uint32_t(to_half(lo, bf16)) | (uint32_t(to_half(hi, bf16)) << 16);
}

// x as the fp16 pair hi = fp16(x), lo = fp16(x − hi) (x − hi is exact in fp32): hi + lo carries
// x to ~22 bits. The one split of the outlier activations (quant_u, launch_split_half).
__device__ __forceinline__ void split_half(float x, __half* hi, __half* lo) {
  *hi = __float2half_rn(x);
  *lo = __float2half_rn(__fsub_rn(x, __half2float(*hi)));
}

}  // namespace quad::cuda
