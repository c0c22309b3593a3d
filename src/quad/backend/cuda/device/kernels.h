// Host-callable launchers of the CUDA backend's kernels. Every pointer is a device pointer;
// shapes and layouts are those of quad::Backend (backend/backend.h). Each launcher enqueues its
// kernel on `stream` and returns cudaGetLastError() (the caller checks it). Device-only code
// lives in this folder and includes nothing outside it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace quad::cuda {

// out (n) = x (n) rounded to nearest even fp16 (bf16 = false) or bf16 (true), as bit patterns.
cudaError_t launch_to_half(const float* x, size_t n, uint16_t* out, bool bf16, cudaStream_t stream);
// The next token from logits (n) in GPU memory into *out (GPU memory): the first maximum
// (launch_argmax), or nucleus sampling as backend/sampling.h's sample_from_logits with the
// uniform draw `canonical` (launch_nucleus_sample; temperature > 0, a workspace of
// nucleus_sample_workspace_bytes(n) bytes, 256-byte aligned).
cudaError_t launch_argmax(const float* x, int n, int32_t* out, cudaStream_t stream);
size_t nucleus_sample_workspace_bytes(int n);
cudaError_t launch_nucleus_sample(const float* logits, int n, float temperature, float top_p,
                                  double canonical, void* workspace, int32_t* out,
                                  cudaStream_t stream);
// x (n) as an fp16 pair: hi = fp16(x), lo = fp16(x − hi) (bit patterns; x − hi is exact in fp32).
cudaError_t launch_split_half(const float* x, size_t n, uint16_t* hi, uint16_t* lo,
                              cudaStream_t stream);
// x (n, width) ← rows tokens[i] of table (vocab, width); the ids are checked by the caller.
cudaError_t launch_embed(const float* table, int width, const int32_t* tokens, int n, float* x,
                         cudaStream_t stream);
// y (n, out) += bias (out), broadcast over rows.
cudaError_t launch_add_bias(float* y, const float* bias, int n, int out, cudaStream_t stream);
// x (n) += y (n).
cudaError_t launch_add(float* x, const float* y, size_t n, cudaStream_t stream);
// out (n) = silu(gate) ⊙ up; out may alias gate or up.
cudaError_t launch_silu_mul(const float* gate, const float* up, size_t n, float* out,
                            cudaStream_t stream);
// out (n) = silu(gate) ⊙ up rounded as launch_to_half rounds it (the same values as the two).
cudaError_t launch_silu_mul_to_half(const float* gate, const float* up, size_t n, uint16_t* out,
                                    bool bf16, cudaStream_t stream);
// The same from one (n, 2·ff) 16-bit matrix whose rows hold gate then up (each widened
// exactly, the product in fp32, rounded once): out (n, ff).
cudaError_t launch_silu_mul_of_joined_half(const uint16_t* gu, int n, int ff, uint16_t* out,
                                           bool bf16, cudaStream_t stream);
// y (n, width) = x / sqrt(Σ x² / divisor + eps) ⊙ weight (weight may be null).
cudaError_t launch_rmsnorm(const float* x, int n, int width, const float* weight, int divisor,
                           float eps, float* y, cudaStream_t stream);
// The same after x (n, width) += r (n, width), x written back (the residual add fused).
cudaError_t launch_add_rmsnorm(float* x, const float* r, int n, int width, const float* weight,
                               int divisor, float eps, float* y, cudaStream_t stream);
// launch_add_rmsnorm (r may be null: no add) with y written as 16-bit bit patterns (bf16 or
// fp16, rounded as launch_to_half rounds), the input of the 16-bit GEMMs.
cudaError_t launch_add_rmsnorm_to_half(float* x, const float* r, int n, int width,
                                       const float* weight, int divisor, float eps, uint16_t* y16,
                                       bool bf16, cudaStream_t stream);
// In-place half-split RoPE on x (n, heads, head_dim); cos/sin tables (positions, head_dim/2);
// token i at position pos[i], or pos0 + i when pos is null; positions already checked against
// the table.
cudaError_t launch_rope(float* x, int n, int heads, int head_dim, const int32_t* pos, int pos0,
                        const float* cos, const float* sin, cudaStream_t stream);
// From qkv (n, ld) whose rows hold q, then k (from column k_col; heads × head_dim), then v (as
// wide): k rotated like launch_rope (token i at position pos0 + i) into k_out and v copied into
// v_out, both (n, heads·head_dim); with q_heads > 0, q's heads (from column 0) rotated in place
// the same way (what launch_rope does to them), else q untouched.
cudaError_t launch_split_kv_rope(float* qkv, int n, int ld, int k_col, int heads, int head_dim,
                                 int pos0, const float* cos, const float* sin, float* k_out,
                                 float* v_out, int q_heads, cudaStream_t stream);
// Largest head_dim launch_attention supports.
inline constexpr int kMaxAttentionHeadDim = 512;
// Causal GQA attention: q (n, n_heads, hd) at positions pos0.., k/v (pos0 + n, n_kv_heads, hd),
// out (n, n_heads, hd); scores scaled by `scale`.
cudaError_t launch_attention(const float* q, int n, int n_heads, int n_kv_heads, int hd,
                             const float* k, const float* v, int pos0, float scale, float* out,
                             cudaStream_t stream);
// One decode step from the joined row qkv (q | k from column k_col | v, of the token at position
// pos): RoPE of q and of the new key (as launch_split_kv_rope and launch_rope), the new key and
// value into cache row pos, and the attention of launch_attention over rows [0, pos]: the same
// results as those three launches, in one. head_dim 64 or 128 (decode_attention_supported).
bool decode_attention_supported(int hd);
cudaError_t launch_decode_attention(const float* qkv, int k_col, int n_heads, int n_kv_heads,
                                    int hd, float* k_cache, float* v_cache, int pos,
                                    const float* cos, const float* sin, float scale, float* out,
                                    cudaStream_t stream);
// Causal GQA attention on fp16 tensor cores (flash_attention.cu), same arguments as
// launch_attention; q, k, v and the probabilities are rounded to fp16, accumulation in fp32.
// For head_dim 64 and 128 (flash_attention_supported); rows are independent, so any n works.
// `scratch` holds flash_attention_scratch(pos0 + n, n_kv_heads, hd) halves (fp16 K and V).
// With RoPE tables (cos/sin (positions, hd/2), covering pos0 + n), q is given unrotated and
// rotated on load as launch_rope would (query i at position pos0 + i); q itself is not written.
// With out16, the output goes there as 16-bit bit patterns (bf16 when out_bf16, else fp16;
// rounded as launch_to_half rounds) instead of to out. q_ld: q's row stride (0: n_heads·hd).
bool flash_attention_supported(int hd);
size_t flash_attention_scratch(int len, int n_kv_heads, int hd);
cudaError_t launch_flash_attention(const float* q, int n, int n_heads, int n_kv_heads, int hd,
                                   const float* k, const float* v, int pos0, float scale,
                                   float* out, uint16_t* scratch, cudaStream_t stream,
                                   const float* rope_cos = nullptr, const float* rope_sin = nullptr,
                                   uint16_t* out16 = nullptr, bool out_bf16 = false, int q_ld = 0);
// Prefill attention through GEMMs: scores (heads, rows, L) row-major, row i of each head sees
// keys [0, first_len + i) (causal); softmax over those in place, the rest set to 0.
cudaError_t launch_causal_softmax(float* scores, int heads, int rows, int L, int first_len,
                                  cudaStream_t stream);
// In-place per-token fake quantization of x (n, width), the first skip_first columns untouched.
cudaError_t launch_act_quant(float* x, int n, int width, int bits, int skip_first, float clip,
                             cudaStream_t stream);
// Per-token codes (n, width) and scales (n) of x (n rows of stride ld).
cudaError_t launch_quantize_rows(const float* x, int n, int width, int ld, int bits, float clip,
                                 int8_t* codes, float* scales, cudaStream_t stream);
// y (n, out) = (xq (n, k) · wq (out, k)ᵀ in int32) · sx[i] · sw[o].
cudaError_t launch_int_gemm(const int8_t* xq, const float* sx, int n, int k, const int8_t* wq,
                            const float* sw, int out, float* y, cudaStream_t stream);
// The same with packed int4 weights w4 (out, k/2) (low nibble = even column); k even.
cudaError_t launch_int4_gemm(const int8_t* xq, const float* sx, int n, int k, const uint8_t* w4,
                             const float* sw, int out, float* y, cudaStream_t stream);

// out (n, k) = columns [col, col + k) of x (n rows, stride ld), widened to fp64.
cudaError_t launch_widen_columns(const float* x, int n, int ld, int col, int k, double* out,
                                 cudaStream_t stream);
// out (n) = x (n) rounded to fp32 (to nearest).
cudaError_t launch_narrow(const double* x, size_t n, float* out, cudaStream_t stream);

// Per-row weight scales of w (rows, cols) (quant/weight_quant.h's weight_scales).
cudaError_t launch_weight_scales(const float* w, int rows, int cols, int bits, bool clip_search,
                                 float* scales, cudaStream_t stream);
// Widest column block launch_gptq_block takes (its block sits in shared memory).
inline constexpr int kMaxGptqBlock = 128;
// GPTQ inside columns [b0, b0 + width) of W (rows, cols; fp64, row-major) with U (cols, cols)
// the upper Cholesky factor of H⁻¹ (row-major upper triangle): codes (rows, cols) of those
// columns, and the scaled errors errT (width, rows). W's block columns are left as they were.
cudaError_t launch_gptq_block(const double* W, const double* U, const float* scales, int rows,
                              int cols, int b0, int width, int bits, int8_t* codes, double* errT,
                              cudaStream_t stream);
// a (n, n) += v·I, a zero diagonal entry (a dead input) counting as 1.
cudaError_t launch_damp_diagonal(double* a, int n, double v, cudaStream_t stream);
// out (rows, k) = w − codes · scales (per row), in fp64: the weights' quantization residual.
cudaError_t launch_weight_residual(const float* w, const int8_t* codes, const float* scales,
                                   int rows, int k, double* out, cudaStream_t stream);
// a (k, k) ← scale · its upper triangle, mirrored to the lower one (Backend::finish_gram).
cudaError_t launch_finish_gram(double* a, int k, double scale, cudaStream_t stream);

}  // namespace quad::cuda
