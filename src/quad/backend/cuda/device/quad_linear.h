// The QUAD linear layer on Hopper's INT8 tensor cores (issue 8): 4-bit weights and 4- or 8-bit
// activations stay packed in device memory and are widened to 8 bits in registers just before
// `mma.sync ... .s32.{u8,s8}` (Hopper's 4-bit mma is emulated and ~25x slower).
//
//   y (M, N) = (Σ_k a_k q_k) · s_x[i] · s_w[o]  +  a_o (M, r) · w_outᵀ (N, r)  +  bias (N)
//
// Pieces, each a kernel:
//  - quant_u: weightless RMSNorm (divisor d) of the residual h (M, r + d) bf16, the first r
//    entries out as fp16 (a_o), the other d quantized per token (U-type input: q/k/v/gate/up);
//  - quant_d: the online Hadamard (an outer K×K mix, optionally after a Sylvester FWHT on the
//    inner index) then per-token quantization (D-type input: o_proj, down_proj);
//  - gemm: the integer product with the epilogue above; a tiled prefill kernel, and a
//    weight-streaming kernel for M ≤ 16 tokens.
//
// Layouts ("fragment-major"). mma's k order does not matter as long as both operands use the
// same one, so codes are stored in the order a thread consumes them: rows are split into blocks
// of 128 codes (K padded to a multiple of 128 with zero codes), and inside a block thread t of a
// quad (t = lane % 4) finds everything it needs for the block's four k32 steps in one 16-byte
// (4-bit) or 32-byte (8-bit) run. 4-bit codes are stored offset by 8 (nibble = q + 8, 0..15, so
// widening is a mask and a shift) and padding nibbles are 0; the integer sums are corrected
// with per-row code sums: Σ a·q = Σ (a+8)(q+8) − 8·Σa − 8·Σq − 64·K (A4) or Σ a·(q+8) − 8·Σa (A8).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#ifdef __CUDACC__
#define QUAD_HD __host__ __device__
#else
#define QUAD_HD
#endif

namespace quad::cuda {

inline constexpr int kQuadBlockK = 128;
QUAD_HD constexpr int quad_padded_k(int k) {
  return (k + kQuadBlockK - 1) / kQuadBlockK * kQuadBlockK;
}
// Bytes of one row of K codes at `bits` (4 or 8) in the fragment-major layout.
QUAD_HD constexpr int quad_row_bytes(int k, int bits) {
  return quad_padded_k(k) * bits / 8;
}

// 4-bit code k of a row: byte offset and nibble shift (0 or 4). `a8_order` is the order of
// weights that meet 8-bit activations (low nibbles k = 4t+i, high nibbles k = 16+4t+i of each
// k32 step); otherwise each 32-bit word holds 8 consecutive codes, the even one in the low
// nibble, like the on-disk packing (weights meeting 4-bit activations, and 4-bit activations).
QUAD_HD inline void quad_w4_position(int k, bool a8_order, int* byte, int* shift) {
  const int block = k >> 7, s = (k & 127) >> 5, j = k & 31;
  int t, i, hi;
  if (a8_order) {
    hi = j >> 4;
    t = (j & 15) >> 2;
    i = j & 3;
  } else {
    t = j >> 3;
    i = (j & 7) >> 1;
    hi = j & 1;
  }
  *byte = block * 64 + 16 * t + 4 * s + i;
  *shift = 4 * hi;
}

// Weights are stored tile-major so that the kernels stream them contiguously: rows in groups of
// 16 (N padded to a multiple of 16 with zero rows), and inside a group the 64-byte k blocks of
// all 16 rows together: group G, k block b, row r % 16 at ((G · nb + b) · 1024 + (r % 16) · 64)
// with nb = padded K / 128.
QUAD_HD constexpr int quad_padded_n(int n) {
  return (n + 15) / 16 * 16;
}
QUAD_HD constexpr size_t quad_weight_bytes(int n, int k) {
  return size_t(quad_padded_n(n)) * quad_row_bytes(k, 4);
}
// Byte offset (and nibble shift) of weight code (row, k).
QUAD_HD inline size_t quad_weight_offset(int row, int k, int K, bool a8_order, int* shift) {
  int pos;
  quad_w4_position(k, a8_order, &pos, shift);
  const int nb = quad_padded_k(K) / kQuadBlockK;
  return (size_t(row / 16) * nb + (pos >> 6)) * 1024 + (row % 16) * 64 + (pos & 63);
}

// Byte offset of 8-bit code k of a row (activations meeting a8_order weights).
QUAD_HD inline int quad_a8_position(int k) {
  const int block = k >> 7, s = (k & 127) >> 5, j = k & 31;
  return block * 128 + 32 * ((j & 15) >> 2) + 8 * s + 4 * (j >> 4) + (j & 3);
}

// Quantized activations of one linear input, device buffers.
struct QuadActivations {
  uint8_t* codes = nullptr;  // (M, quad_row_bytes(K, bits))
  float* scales = nullptr;   // (M)
  int32_t* sums = nullptr;   // (M) Σ of the signed codes
  // U-type inputs (else null): the r outlier activations a_o as an fp16 pair, outlier =
  // fp16(a_o) and outlier_lo = fp16(a_o − outlier), (M, r) each. The GEMMs multiply both parts,
  // so a_o is carried to ~22 bits (fp16 alone moved quantized models' argmax at 3× the rate of
  // the CPU's own fp32 reorderings; docs/gpu.md).
  __half* outlier = nullptr;
  __half* outlier_lo = nullptr;
  // Codes in natural k order (what the wgmma prefill kernel reads) instead of fragment-major:
  // code k at byte k (8-bit) or in byte k / 2, even k in the low nibble (4-bit, offset by 8).
  // Set by the caller before quantizing (quad_gemm_natural).
  bool natural = false;
};

// U-type input: a = h / sqrt(Σ h² / divisor + eps) per row of h (M, r + K); a_o = a[:r] as the
// pair (outlier, outlier_lo); the codes of a[r:] with scale = max|a[r:]| / qmax · clip (qmax = 7 or
// 127).
cudaError_t launch_quad_quant_u(const __nv_bfloat16* h, int M, int r, int K, int divisor, float eps,
                                int bits, float clip, QuadActivations out, cudaStream_t stream);
// The same from fp32 rows (e.g. activations staged from host buffers). divisor ≤ 0 (either
// overload): the rows are already normalized, no RMSNorm. The RMSNorm is computed as the
// rmsnorm kernels compute it (sum of squares in double), so with a divisor the codes are those
// of the weightless rmsnorm followed by this quantization without one.
cudaError_t launch_quad_quant_u(const float* h, int M, int r, int K, int divisor, float eps,
                                int bits, float clip, QuadActivations out, cudaStream_t stream);
// h (M, r + K; fp32, 16-byte aligned) += add (the residual update, same shape), written back,
// then the quantization of the updated rows as above: the forward pass's residual add fused.
cudaError_t launch_quad_add_quant_u(float* h, const float* add, int M, int r, int K, int divisor,
                                    float eps, int bits, float clip, QuadActivations out,
                                    cudaStream_t stream);

// D-type input: each row of x (M, K) viewed as (K_o, K / K_o) row-major; optionally a
// Sylvester FWHT (unnormalized, natural order) on the inner index (K / K_o a power of two),
// then y[a, j] = Σ_b mix[a, b] · x[b, j] with mix (K_o × K_o, device, fp32, normalization
// folded in); then per-token codes of y (out.outlier unused). K_o ≤ 64.
cudaError_t launch_quad_quant_d(const __nv_bfloat16* x, int M, int K, const float* mix, int K_o,
                                bool inner_fwht, int bits, float clip, QuadActivations out,
                                cudaStream_t stream);
cudaError_t launch_quad_quant_d(const float* x, int M, int K, const float* mix, int K_o,
                                bool inner_fwht, int bits, float clip, QuadActivations out,
                                cudaStream_t stream);
// The D-type input silu(gate) ⊙ up (SwiGLU; gate and up (M, K) fp32, 16-byte aligned) formed as
// it is loaded, with the formula of launch_silu_mul: the codes of launch_quad_quant_d on the
// stored product, without storing it.
cudaError_t launch_quad_quant_d_swiglu(const float* gate, const float* up, int M, int K,
                                       const float* mix, int K_o, bool inner_fwht, int bits,
                                       float clip, QuadActivations out, cudaStream_t stream);
// The same from bf16 halves whose rows are ld elements apart (ld a multiple of 8; e.g. the rows
// gate | up of one GEMM of the joined weights: up = gate + K, ld = 2K).
cudaError_t launch_quad_quant_d_swiglu(const __nv_bfloat16* gate, const __nv_bfloat16* up, int ld,
                                       int M, int K, const float* mix, int K_o, bool inner_fwht,
                                       int bits, float clip, QuadActivations out,
                                       cudaStream_t stream);

// Weights of one QUAD linear in the kernel layout (prepared once by quad_prepare_weights).
struct QuadWeights {
  const uint8_t* codes = nullptr;   // quad_weight_bytes(N, K), tile-major, offset nibbles
  const float* scales = nullptr;    // (N)
  const int32_t* sums = nullptr;    // (N) Σ of the signed codes
  const __half* outlier = nullptr;  // (N, r) or null when r = 0
  // (N) or null; fp32, so that a folder's fp16 biases arrive exact (bf16 rounding of Qwen2's
  // q/k/v biases moved its argmax at 2× the rate of the CPU's own fp32 reorderings).
  const float* bias = nullptr;
  int N = 0, K = 0, r = 0;
  int act_bits = 4;  // the activations these weights meet: 4 or 8
};

// y (M, N) bf16 = the QUAD linear of `act` (same K, r and act_bits as w). M ≤ 16 runs the
// weight-streaming kernel, larger M the wgmma kernel where available, else the tiled mma.sync
// kernel. r must be a multiple of 16 and at most 128; K ≥ 1.
cudaError_t launch_quad_gemm(const QuadActivations& act, int M, const QuadWeights& w,
                             __nv_bfloat16* y, cudaStream_t stream);
// The same with fp32 output.
cudaError_t launch_quad_gemm(const QuadActivations& act, int M, const QuadWeights& w, float* y,
                             cudaStream_t stream);
// Whether launch_quad_gemm at this M takes the wgmma kernel, whose activations are in natural
// order; the quantization kernels write what QuadActivations::natural says.
bool quad_gemm_natural(int M, const QuadWeights& w);

// Multiprocessors of the current device (1 when there is none), read once.
int quad_sm_count();

// Whether the wgmma prefill kernel can run these weights here: built for sm_90a, running on a
// compute-capability 9.0 GPU, r ≤ 64, and not disabled by QUAD_CUDA_WGMMA=0.
bool quad_wgmma_available(const QuadWeights& w);
// The wgmma kernel's block tiles: 128 channels × 256 tokens (two warpgroups) or 256 channels ×
// 128 tokens (four); `automatic` picks by shape (quad_gemm_wgmma.cu says from which measurements).
enum class WgmmaTile { automatic, wide, tall };
// The wgmma prefill kernel at any M (tests, benchmarks); instantiated for bf16 and fp32 output.
template <typename OutT>
cudaError_t launch_quad_gemm_wgmma(const QuadActivations& act, int M, const QuadWeights& w, OutT* y,
                                   cudaStream_t stream, WgmmaTile tile = WgmmaTile::automatic);

// The tiled mma.sync kernel at any M (tests, benchmarks; fragment-major activations).
cudaError_t launch_quad_gemm_tiled(const QuadActivations& act, int M, const QuadWeights& w,
                                   __nv_bfloat16* y, cudaStream_t stream);

// The weight-streaming kernel (M ≤ 16) in one of its tuning variants (benchmarks): 0 = the
// default, chosen by shape between 2 and 3; 1 = a persistent grid of 3 blocks per SM, each looping
// over 16-row groups with the next group's weights in flight during the current one's epilogue; 2 =
// a block per group, 2 blocks per SM; 3 = a block per group, 3 blocks per SM; 4 = persistent, 4
// blocks per SM with 2 k blocks of loads in flight per thread (4 in the others). Above 8 tokens
// every variant allows at most 2 blocks per SM (3 spilled).
cudaError_t launch_quad_gemv_variant(const QuadActivations& act, int M, const QuadWeights& w,
                                     __nv_bfloat16* y, cudaStream_t stream, int variant);

// Host: signed codes (N, K) in [-8, 7] → kernel-layout bytes (quad_weight_bytes(N, K)) and
// per-row sums (N).
void quad_prepare_weights(const int8_t* codes, int N, int K, bool a8_order, uint8_t* packed,
                          int32_t* sums);
// The same from codes packed two per byte (N, K/2), even column in the low nibble (the layout
// of QuantizedWeight::packed and of a folder's U8 weights).
void quad_prepare_packed_weights(const uint8_t* nibbles, int N, int K, bool a8_order,
                                 uint8_t* packed, int32_t* sums);

}  // namespace quad::cuda
