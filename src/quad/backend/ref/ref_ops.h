// Row-local reference ops shared by the ref backend and, where they are already as fast as
// they need to be, by the cpu backend (which parallelizes over rows).
#pragma once

#include <cstddef>
#include <cstdint>

#include "quad/backend/backend.h"

namespace quad::ref {

void rmsnorm(const float* x, int n, int width, const float* weight, int divisor, float eps,
             float* y);
// inverse: rotate by the negative angle (the transpose; RoPE's backward pass).
void rope(float* x, int n, int heads, int head_dim, const int32_t* pos, const RopeTable& table,
          bool inverse = false);
void silu_mul(const float* gate, const float* up, size_t n, float* out);
void act_quant(float* x, int n, int width, const ActQuantSpec& spec);
void quantize_rows(const float* x, int n, int width, int ld, int bits, float clip, int8_t* codes,
                   float* scales);
// Dot product of int8 codes accumulated in int32 (auto-vectorized).
int32_t dot_i8(const int8_t* a, const int8_t* b, int k);

}  // namespace quad::ref
