// A quantized model Linear (model/layers.h) on the GPU in the form of the fused QUAD kernels
// (device/quad_linear.h, issue 8): the weight codes prepared once into the kernels' layout, the
// scales, fp16 outlier columns and fp32 bias uploaded, and the online input transform as the
// quantization kernel's outer mix.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "quad/backend/cuda/device/quad_linear.h"
#include "quad/backend/cuda/device_buffer.h"
#include "quad/model/layers.h"

namespace quad::cuda {

class DeviceQuadLinear {
 public:
  // Throws quad::Error (naming the layer and what `unsupported` says) for a layer the kernels
  // do not take.
  explicit DeviceQuadLinear(const Linear& lin);
  // U-type layers reading the same input (q/k/v, gate/up) as one layer whose outputs are the
  // parts' outputs side by side: one quantization and one GEMM. Throws quad::Error for parts
  // unsupported_joined refuses.
  explicit DeviceQuadLinear(std::span<const Linear* const> parts);
  // Why these parts cannot be joined (one line), or "" when they can: each supported, U-type,
  // quantizing its input as the first does, biased like it, all but the last with a multiple of
  // 16 outputs.
  static std::string unsupported_joined(std::span<const Linear* const> parts);
  // Whether the constructor and the kernels take this layer.
  static bool supports(const Linear& lin);
  // Why not (one line naming what is unsupported), or "" when supported.
  static std::string unsupported(const Linear& lin);
  DeviceQuadLinear(const DeviceQuadLinear&) = delete;
  DeviceQuadLinear& operator=(const DeviceQuadLinear&) = delete;

  // U-type (no input transform): the input is the residual stream h (M, in) bf16, normalized
  // here (weightless RMSNorm with `divisor`, `eps`) as the layer's preceding norm does.
  // D-type (online Hadamard): the input is the layer's raw input (M, in) bf16.
  // y (M, out) bf16. Scratch for M rows is allocated on first use and grows.
  void forward(const __nv_bfloat16* x, int M, int divisor, float eps, __nv_bfloat16* y,
               cudaStream_t stream);
  // fp32 rows in and out (device pointers), as the model's apply_linear sees the layer: U-type
  // input already normalized, D-type input before its transform.
  // With `quantized` (another layer's forward on the same x, just before, for which
  // quantizes_like holds), its quantized activations are reused and only the GEMM runs.
  void forward(const float* x, int M, float* y, cudaStream_t stream,
               const DeviceQuadLinear* quantized = nullptr);
  // D-type only: the input is silu(gate) ⊙ up (SwiGLU, fp32 device rows (M, in) each), formed
  // by the quantization kernel as it loads them: the codes and output of forward() on the
  // stored product.
  void forward_swiglu(const float* gate, const float* up, int M, float* y, cudaStream_t stream);
  // The steps of a forward, for callers that run them apart (the cuda backend's block ops):
  // U-type: x (M, in; fp32 residual rows) += add when add is not null, then the normalized
  // rows (weightless RMSNorm with divisor, eps) quantized into this layer's activations.
  void quantize_u(float* x, const float* add, int M, int divisor, float eps, cudaStream_t stream);
  // y (M, out) = the GEMM of the activations last quantized (M rows), fp32 or bf16 out.
  void gemm(int M, float* y, cudaStream_t stream) const;
  void gemm(int M, __nv_bfloat16* y, cudaStream_t stream) const;
  // D-type: x (M, in; fp32) transformed and quantized into this layer's activations.
  void quantize_d(const float* x, int M, cudaStream_t stream);
  // D-type: the same for silu(gate) ⊙ up of gate_up (M, 2·in) bf16, each row gate | up (a
  // joined gate|up layer's bf16 output).
  void quantize_swiglu(const __nv_bfloat16* gate_up, int M, cudaStream_t stream);
  // Whether this layer quantizes an M-row input exactly as `other` does (U-type both, same
  // width, outlier count, bits, clip and activation layout), so one quantization serves both.
  bool quantizes_like(const DeviceQuadLinear& other, int M) const;
  bool u_type() const { return K_o_ == 0; }
  const QuadWeights& weights() const { return w_; }

 private:
  QuadWeights w_;
  int act_bits_ = 4;
  float clip_ = 1.0f;
  int K_o_ = 0;  // 0: U-type (no transform)
  bool inner_fwht_ = false;
  float* mix_ = nullptr;
  // Device memory: the uploaded weights (codes, scales, sums, outlier columns, bias, mix) and the
  // activation scratch, which grows with M.
  DeviceBuffer codes_, scales_, sums_, outlier_, bias_, mixbuf_;
  DeviceBuffer act_codes_, act_scales_, act_sums_, act_outlier_;
  QuadActivations act_;
  void grow(int M);
};

}  // namespace quad::cuda
