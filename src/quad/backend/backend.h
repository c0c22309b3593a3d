// The op interface the model calls. One implementation per backend folder: ref/ (plain loops,
// the oracle for tests), cpu/ (OpenBLAS + OpenMP) and cuda/ (cuBLAS + own kernels). Activation
// buffers live in the backend's memory (memory()); the cuda backend's ops also take host
// pointers, staged per op. Weights are always host pointers (a GPU backend caches its copies).
// Buffers are row-major fp32; shapes are written as (rows, cols) in the comments.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "quad/backend/memory.h"

namespace quad {

struct Linear;   // model/layers.h
struct RmsNorm;  // model/layers.h

// cos/sin of the half-split RoPE for positions [0, max_positions): (max_positions, head_dim/2).
struct RopeTable {
  int head_dim = 0;
  int max_positions = 0;
  std::vector<float> cos, sin;
  // angle(p, i) = float(p) * inv_freq[i], rounded to fp32 as transformers does.
  static RopeTable build(const std::vector<float>& inv_freq, int max_positions);
};

// Per-token symmetric fake quantization of activations (quantize then dequantize).
// bits >= 16 means off. The first `skip_first` entries of every row (QUAD's outlier part) are
// left untouched and excluded from the scale.
struct ActQuantSpec {
  int bits = 16;
  int skip_first = 0;
  float clip = 1.0f;
  bool enabled() const { return bits < 16; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // ---- Memory (memory.h). Where the forward pass should keep activations and KV caches.
  virtual MemoryKind memory() const { return MemoryKind::host; }
  // Whether host code may read and write p directly.
  virtual bool host_accessible(const void* p) const {
    (void)p;
    return true;
  }
  // dst ← src, each in host memory or this backend's memory; returns once dst holds the data,
  // ordered after every op issued before it.
  virtual void copy(void* dst, const void* src, size_t bytes);
  // dst (host memory or this backend's) ← `bytes` zero bytes, ordered like copy.
  virtual void zero(void* dst, size_t bytes);
  // x (n, width; host memory or this backend's) ← rows tokens[0..n) of table (vocab, width; a
  // host weight). The caller has checked the ids against vocab.
  virtual void embed(const float* table, int vocab, int width, const int32_t* tokens, int n,
                     float* x);
  // The caller's promise that the weights it passes from now on do not change in place
  // (inference commands): backends that cache weights may skip their change checks.
  virtual void assume_weights_frozen() {}
  // The caller's word that no weight passed so far will be used again (the quantization
  // pipeline moving on to the next layer): backends that cache weights free those copies.
  virtual void release_weights() {}
  // Lets fp ops that have faster reduced-precision versions use them (--dtype bf16): on cuda,
  // prefill attention on fp16 tensor cores (q, k, v and probabilities rounded to fp16).
  virtual void allow_reduced_precision() {}
  // Bytes of device memory in use on the backend's GPU (0 for host backends). Allocations only
  // grow during a run, so at its end this is the run's peak (plus the driver's context).
  virtual size_t device_memory_used() const { return 0; }

  // y (n, out) = x (n, in) · w (out, in)ᵀ + bias (out) (bias may be null).
  virtual void linear(const float* x, int n, int in, const float* w, int out, const float* bias,
                      float* y) = 0;
  // y (n, width) = x / sqrt(Σ x² / divisor + eps) ⊙ weight; weight may be null (weightless
  // norm); divisor is the original hidden size d even when width is d + r.
  virtual void rmsnorm(const float* x, int n, int width, const float* weight, int divisor,
                       float eps, float* y) = 0;
  // The residual add and the next RMSNorm in one call: x (n, width) += r, then y = rmsnorm(x)
  // as above. The default runs add and rmsnorm; the cuda backend fuses them into one pass.
  virtual void add_rmsnorm(float* x, const float* r, int n, int width, const float* weight,
                           int divisor, float eps, float* y);
  // In-place half-split RoPE on x (n, heads, head_dim); token i is at position pos[i].
  virtual void rope(float* x, int n, int heads, int head_dim, const int32_t* pos,
                    const RopeTable& table) = 0;
  // Causal GQA attention. q (n, n_heads, hd) for positions pos0..pos0+n-1; k, v caches
  // (≥ pos0+n, n_kv_heads, hd) already holding those positions; out (n, n_heads, hd).
  // Scores are scaled by 1/sqrt(hd).
  virtual void attention(const float* q, int n, int n_heads, int n_kv_heads, int hd,
                         const float* k_cache, const float* v_cache, int pos0, float* out) = 0;
  // RoPE on q (n, n_heads, hd) and on the n new keys (k_cache rows pos0 .. pos0 + n, in place),
  // then attention as above: rope(q), rope(new keys), attention(q, ...), with token i at
  // position pos[i]. q's contents are unspecified afterwards (the cuda backend rotates q inside
  // its flash-attention kernel without writing it back). The default runs the three ops.
  virtual void rope_attention(float* q, int n, int n_heads, int n_kv_heads, int hd, float* k_cache,
                              const float* v_cache, int pos0, const int32_t* pos,
                              const RopeTable& table, float* out);
  // linear with fp16 weights w16 (out, in) (bit patterns). The default converts w16 to fp32 and
  // calls linear (backend/backend_defaults.cpp); backends override it with a direct kernel. The
  // cuda backend rounds x to the weights' 16-bit type (tensor-core GEMM, fp32 accumulation).
  virtual void linear_f16(const float* x, int n, int in, const uint16_t* w16, int out,
                          const float* bias, float* y);
  // linear_f16 for the outlier part of a QUAD layer (x: its r activations that stay in floating
  // point, QUAD-SPEC): x is multiplied at fp32 precision, no bias. The default is linear_f16
  // (which does not round x on the CPU backends); the cuda backend overrides it.
  virtual void outlier_linear_f16(const float* x, int n, int in, const uint16_t* w16, int out,
                                  float* y) {
    linear_f16(x, n, in, w16, out, nullptr, y);
  }
  // The next token from one row of logits (vocab) in this backend's memory: greedy at temperature
  // 0, else nucleus sampling with the uniform draw `canonical` ∈ [0, 1) — the choice of
  // sample_from_logits (backend/sampling.h). The default reads the row on the host and runs that
  // function; the cuda backend chooses on the GPU and returns only the token.
  virtual int32_t sample_token(const float* logits, int vocab, float temperature, float top_p,
                               double canonical);
  // The same with bf16 weights w16 (bit patterns): the FP path of models stored in bf16.
  virtual void linear_bf16(const float* x, int n, int in, const uint16_t* w16, int out,
                           const float* bias, float* y);
  // out (n) = silu(gate) ⊙ up.
  virtual void silu_mul(const float* gate, const float* up, size_t n, float* out) = 0;
  // x (n) += y (n).
  virtual void add(float* x, const float* y, size_t n) = 0;
  // In-place per-token fake quantization of x (n, width).
  virtual void act_quant(float* x, int n, int width, const ActQuantSpec& spec) = 0;
  // Per-token symmetric quantization to integer codes: for each row of x (n, width) with
  // stride ld, scale[i] = max|x_i| / qmax · clip and codes (n, width) = clamp(round(x / scale)).
  // Bit-for-bit the same codes and scales as act_quant's fake quantization.
  virtual void quantize_rows(const float* x, int n, int width, int ld, int bits, float clip,
                             int8_t* codes, float* scales) = 0;
  // y (n, out) = (xq (n, k) · wq (out, k)ᵀ accumulated in int32) · sx[i] · sw[o].
  virtual void int_gemm(const int8_t* xq, const float* sx, int n, int k, const int8_t* wq,
                        const float* sw, int out, float* y) = 0;
  // The same with packed int4 weight codes w4 (out, k/2): two's-complement nibbles, the even
  // column in the low nibble.
  virtual void int4_gemm(const int8_t* xq, const float* sx, int n, int k, const uint8_t* w4,
                         const float* sw, int out, float* y) = 0;

  // A quantized linear layer in one fused call where the backend has one (the CUDA backend's
  // QUAD kernels): y (n, out) = lin(x) with x (n, in) the layer's input before its online
  // transform. Returns false (the default, and for layers the backend cannot fuse) to let the
  // caller run the op-by-op integer path instead.
  virtual bool fused_linear(const Linear& lin, const float* x, int n, float* y) {
    (void)lin, (void)x, (void)n, (void)y;
    return false;
  }

  // y (n, down.out) = down(silu(gate) ⊙ up) for gate and up (n, down.in) in the backend's
  // memory, where the backend forms the product inside down's input quantization (the cuda
  // backend, for quantized down_proj layers on its fused kernels: the codes of the steps, the
  // product never stored). Returns false (the default) before changing anything, and the caller
  // runs silu_mul and the linear.
  virtual bool fused_swiglu_linear(const Linear& down, const float* gate, const float* up, int n,
                                   float* y) {
    (void)down, (void)gate, (void)up, (void)n, (void)y;
    return false;
  }

  // Whole blocks of a decoder layer in one call, where the backend has them (the cuda backend,
  // with reduced precision allowed: for fp linears with 16-bit weights of one type that read
  // their inputs as is, where the normalized rows and the attention output exist only in 16 bits,
  // rounded as the 16-bit linears round their inputs; and for QUAD layers on its fused kernels,
  // where the residual add, the weightless RMSNorm and the input quantization are one kernel).
  // Both first do x (n, width; the residual stream) += r when r is not null, then xn = norm(x).
  // Buffers in the backend's memory. They return false (the default, and for layers or arguments
  // the backend does not take) before changing anything, and the caller runs the steps.

  // The attention block: q(xn); the new keys k(xn) and values v(xn) into the cache rows pos0 ..
  // pos0 + n; RoPE on q and the new keys (token i at position pos0 + i); causal attention over
  // the cache; y (n, o.out) = o(attention). cuda: prefills (on the flash kernel) and one-token
  // decode steps.
  virtual bool attention_block(const RmsNorm& norm, const Linear& q, const Linear& k,
                               const Linear& v, const Linear& o, float* x, const float* r, int n,
                               int n_heads, int n_kv_heads, int hd, float* k_cache, float* v_cache,
                               int pos0, const RopeTable& rope, float* y) {
    (void)norm, (void)q, (void)k, (void)v, (void)o, (void)x, (void)r, (void)n, (void)n_heads,
        (void)n_kv_heads, (void)hd, (void)k_cache, (void)v_cache, (void)pos0, (void)rope, (void)y;
    return false;
  }
  // The SwiGLU MLP block: y (n, down.out) = down(silu(gate(xn)) ⊙ up(xn)); gate_buf and up_buf
  // (n, gate.out) are scratch; y may be r. cuda, fp layers: bit-identical to the steps, and with
  // reduced precision allowed, gate(xn) and up(xn) are kept in 16 bits (as PyTorch does); QUAD
  // layers: gate(xn) and up(xn) in bf16.
  virtual bool mlp_block(const RmsNorm& norm, const Linear& gate, const Linear& up,
                         const Linear& down, float* x, const float* r, int n, float* gate_buf,
                         float* up_buf, float* y) {
    (void)norm, (void)gate, (void)up, (void)down, (void)x, (void)r, (void)n, (void)gate_buf,
        (void)up_buf, (void)y;
    return false;
  }

  // In place on each row of x (rows, outer·inner), viewed as X (outer, inner): X ← A·X·Bᵀ with
  // a (outer, outer) and b (inner, inner) (b null: B = I); a and b are host memory (weights),
  // x host or the backend's. An online Hadamard in Kronecker form (KronForm, model/layers.h).
  virtual void kron_transform(float* x, int rows, int outer, const float* a, int inner,
                              const float* b);

  // ---- Calibration statistics (quant/): P's Gram matrix and GPTQ's Hessians, in fp64.

  // The upper triangle (row-major: acc[i·k + j], j ≥ i) of acc (k, k) += Σ_t x[t, col + i] ·
  // x[t, col + j] over the n rows of x (row stride ld): fp32 products are exact in fp64, so
  // backends differ only in the order of the fp64 sums. acc lives in the backend's memory
  // (memory()); x in host memory or the backend's. The lower triangle is left as it is. The
  // default is the host version (OpenBLAS dsyrk).
  virtual void gram_accumulate(const float* x, int n, int ld, int col, int k, double* acc);
  // Finishes such an accumulator in place: every entry ← scale · the upper-triangle one, so
  // acc (k, k) is whole and symmetric; its diagonal goes to diag (k, host memory). The default
  // is the host loop.
  virtual void finish_gram(double* acc, int k, double scale, double* diag);

  // Weight quantization on the backend, where it has its own (cuda); the defaults return false
  // and the caller runs the host versions (quant/weight_quant.h, which say what is computed).

  // The per-row scales of w (rows, cols) (host memory) into scales (rows): the clipping search
  // over p = 1 − i/100, i = 0..79, minimizing Σ|ŵ − w|^2.4, or max|w|/qmax without it.
  virtual bool weight_scales(const float* w, int rows, int cols, int bits, bool clip_search,
                             float* scales) {
    (void)w, (void)rows, (void)cols, (void)bits, (void)clip_search, (void)scales;
    return false;
  }
  // Whether gptq() runs here for blocks of block_size columns.
  virtual bool gptq_supported(int block_size) const {
    (void)block_size;
    return false;
  }
  // GPTQ's codes (rows, cols) for w (rows, cols) with fixed per-row scales, from the Hessian h
  // (cols, cols, symmetric; host or the backend's memory, never written; a zero diagonal entry,
  // a dead input whose weights the caller zeroed, counts as 1) damped by damp·I; w, scales and
  // codes in host memory. Returns false when H + damp·I is not positive definite.
  virtual bool gptq(const float* w, int rows, int cols, const double* h, double damp,
                    const float* scales, int bits, int block_size, int8_t* codes) {
    (void)w, (void)rows, (void)cols, (void)h, (void)damp, (void)scales, (void)bits,
        (void)block_size, (void)codes;
    return false;
  }

  // The offline weight transforms (quant/rotate.cpp) in fp64 on fp32 weights: out (rows, D) =
  // w (rows, d)·t (d, D), or with t_left, out (D, cols) = tᵀ (D, d)·w (d, cols); w and out
  // fp32 (rounded once, at the end), t fp64, all host memory. false to let the caller run it on
  // the host (OpenBLAS dgemm).
  virtual bool transform_weight(bool t_left, const float* w, int w_rows, int w_cols,
                                const double* t, int d, int D, float* out) {
    (void)t_left, (void)w, (void)w_rows, (void)w_cols, (void)t, (void)d, (void)D, (void)out;
    return false;
  }
  // GPTQ's output error proxy tr(ΔW·H·ΔWᵀ) into *result, ΔW (rows, k) = w − codes·scales (per
  // row) in fp64: w, codes and scales in host memory, H (k, k) fp64 in host or the backend's
  // memory. false to let the caller compute it on the host.
  virtual bool quantization_error(const float* w, const int8_t* codes, const float* scales,
                                  int rows, int k, const double* h, double* result) {
    (void)w, (void)codes, (void)scales, (void)rows, (void)k, (void)h, (void)result;
    return false;
  }

  // ---- Backward ops for training (train/), llm.c style: each takes what its forward op saw
  // and the gradient of its output, and writes (overwrites) the gradients of its inputs.
  // The defaults are the reference loops (backend/ref/ref_backward.cpp, fp64 accumulators);
  // backends override what they can do faster.

  // dx (n, in) = dy (n, out) · w (out, in): the input gradient of `linear`.
  virtual void linear_backward_input(const float* dy, int n, int out, const float* w, int in,
                                     float* dx);
  // dw (out, in) = dyᵀ · x (n, in): the weight gradient of `linear`.
  virtual void linear_backward_weight(const float* dy, int n, int out, const float* x, int in,
                                      float* dw);
  // dx (n, width) of `rmsnorm` with a frozen (or absent) weight, from its input x and dy.
  virtual void rmsnorm_backward(const float* x, const float* dy, int n, int width,
                                const float* weight, int divisor, float eps, float* dx);
  // In place on d (n, heads, head_dim): the gradient through `rope` (the inverse rotation).
  virtual void rope_backward(float* d, int n, int heads, int head_dim, const int32_t* pos,
                             const RopeTable& table);
  // Causal GQA attention of one sequence of n tokens at positions 0..n-1: q (n, n_heads, hd),
  // k, v (n, n_kv_heads, hd) and d_out (n, n_heads, hd) give dq, dk, dv (same shapes).
  virtual void attention_backward(const float* q, const float* k, const float* v,
                                  const float* d_out, int n, int n_heads, int n_kv_heads, int hd,
                                  float* dq, float* dk, float* dv);
  // d_gate, d_up (n) of out = silu(gate) ⊙ up.
  virtual void silu_mul_backward(const float* gate, const float* up, const float* d_out, size_t n,
                                 float* d_gate, float* d_up);
};

std::unique_ptr<Backend> make_ref_backend();
std::unique_ptr<Backend> make_cpu_backend();
// The CUDA backend on GPU 0; quad::Error ("[cuda] ...") when quad was built without CUDA or no
// GPU is usable.
std::unique_ptr<Backend> make_cuda_backend();
// Whether this build has the CUDA backend (CMake option QUAD_CUDA).
bool cuda_compiled();
// GPUs the CUDA runtime sees: 0 without the backend, a driver or a device.
int cuda_device_count();

// "ref", "cpu" or "cuda"; throws quad::Error for an unknown or unusable name.
std::unique_ptr<Backend> make_backend(const std::string& name);
// The backends this build has: ref, cpu, and cuda when compiled in (it may still lack a GPU).
std::vector<std::string> backend_names();
// Whether make_backend(name) can succeed on this machine (cuda: compiled in and a GPU present).
bool backend_available(const std::string& name);

// Sets the thread count used by OpenMP and OpenBLAS (0 = $OMP_NUM_THREADS if set, else all
// cores).
void set_num_threads(int threads);
int num_threads();

}  // namespace quad
