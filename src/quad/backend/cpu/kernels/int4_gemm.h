// Integer GEMM of the QUAD linear layer with packed int4 weights:
//   y (n, out) = (xq (n, k) · wᵀ accumulated in int32) · sx[i] · sw[o]
// xq holds int8 activation codes (int4 activations are int8 codes in [-8, 7]); w_packed is the
// (out, k/2) layout of quad::pack_int4: two's-complement nibbles, two per byte along k, the even
// column in the low nibble. k must be even; n, out ≥ 0 are arbitrary.
//
// Every kernel computes the exact int32 dot product (for k < 2·10⁶) and then the backends'
// int_gemm expression float(dot) * sx[i] * sw[o], left to right, so all agree bit for bit.
// The SIMD kernels thread with OpenMP over output rows and keep a thread-local scratch buffer
// for the prepared activations (n·k bytes); see docs/kernels.md.
//
// Kernels: ref (plain loops, the oracle), avx2 (vpmaddubsw), avx512 (AVX-512 VNNI vpdpbusd).
// gemm_s8_s4 picks the best one the CPU supports once per process; QUAD_KERNEL=ref|avx2|avx512
// in the environment overrides the choice (for tests and benchmarks).
#pragma once

#include <cstddef>
#include <cstdint>

namespace quad::kernels {

enum class Int4Kernel { kRef, kAvx2, kAvx512Vnni };

// "ref", "avx2" or "avx512".
const char* kernel_name(Int4Kernel kernel);
// Whether this CPU (and this build) can run the kernel.
bool kernel_supported(Int4Kernel kernel);
// The kernel gemm_s8_s4 uses: $QUAD_KERNEL if set (quad::Error if unknown or unsupported),
// otherwise the fastest supported one. Decided on the first call.
Int4Kernel selected_kernel();
// kernel_name(selected_kernel()), for reports.
const char* kernel_name();

// y (n, out) = (xq (n, k) · unpack(w_packed) (out, k)ᵀ in int32) · sx[i] · sw[o].
void gemm_s8_s4(const int8_t* xq, const float* sx, int n, int k, const uint8_t* w_packed,
                const float* sw, int out, float* y);
// The same with an explicit kernel (quad::Error if it is not supported here).
void gemm_s8_s4_with(Int4Kernel kernel, const int8_t* xq, const float* sx, int n, int k,
                     const uint8_t* w_packed, const float* sw, int out, float* y);

// ---- Internals shared by the kernel files (not for callers) ----

// The SIMD kernels read activations prepared by prepare_activations: every token's row is
// zero-padded to kp = round_up(k, kBlock) and each block of kBlock = 128 columns is stored as
// its 64 even columns followed by its 64 odd columns, matching the low / high nibbles of 64
// packed weight bytes. xsum[i] = Σ_c xq[i][c] gives the correction of the unsigned-weight trick
// (the SIMD kernels multiply u = w + 8 ∈ [0, 15] by x, so Σ w·x = Σ u·x − 8·Σ x).
inline constexpr int kBlock = 128;
inline int padded_k(int k) {
  return (k + kBlock - 1) / kBlock * kBlock;
}
struct PreparedX {
  const int8_t* x;      // (n, kp), 64-byte aligned rows
  const int32_t* xsum;  // (n)
  int kp;
};

void gemm_s8_s4_ref(const int8_t* xq, const float* sx, int n, int k, const uint8_t* w_packed,
                    const float* sw, int out, float* y);
void gemm_s8_s4_avx2(const PreparedX& xp, const float* sx, int n, int k, const uint8_t* w_packed,
                     const float* sw, int out, float* y);
void gemm_s8_s4_avx512vnni(const PreparedX& xp, const float* sx, int n, int k,
                           const uint8_t* w_packed, const float* sw, int out, float* y);

}  // namespace quad::kernels
