// fp32 activations × 16-bit weights (out, in): fp16 (the LM head of a QUAD folder) or bf16
// (--dtype bf16). One token: a GEMV that widens 8 weights at a time (F16C, or a shift for bf16)
// and streams each row once (memory-bound: half the bytes of an fp32 GEMV); more tokens: blocks
// of 64 rows widened into an fp32 tile and multiplied with OpenBLAS sgemm, blocks split between
// threads. Exact products of the widened weights, like the fp32 path.
#pragma once

#include <cstdint>

namespace quad::kernels {

void linear_f16(const float* x, int n, int in, const uint16_t* w16, int out, const float* bias,
                float* y);
void linear_bf16(const float* x, int n, int in, const uint16_t* w16, int out, const float* bias,
                 float* y);

}  // namespace quad::kernels
