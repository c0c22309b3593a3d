// fp32 activations × fp16 weights (out, in), as the LM head of a QUAD folder is held:
// one token: a GEMV that widens 8 halves at a time with F16C and streams each row once
// (memory-bound: half the bytes of an fp32 GEMV); more tokens: blocks of 64 rows widened into
// an fp32 tile and multiplied with OpenBLAS sgemm, blocks split between threads.
#pragma once

#include <cstdint>

namespace quad::kernels {

void linear_f16(const float* x, int n, int in, const uint16_t* w16, int out, const float* bias,
                float* y);

}  // namespace quad::kernels
