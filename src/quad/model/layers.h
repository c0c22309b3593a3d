// The building blocks of the one transformer structure that serves FP, rotated-FP, QuaRot and
// QUAD models. They differ only in data:
//  - the residual stream width D (d, or d + r after QUAD's expansion);
//  - norms with a weight, or weightless after folding, always dividing by the original d;
//  - linears with an optional online input transform (e.g. a Hadamard) and an optional
//    per-token activation quantizer applied to their input.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "quad/backend/backend.h"

namespace quad {

// A linear input transform as a Kronecker product: each row, viewed as X (outer, inner),
// becomes A·X·Bᵀ, which a backend runs as two GEMMs (Backend::kron_transform). b empty means
// B = I.
struct KronForm {
  int outer = 0, inner = 0;
  std::vector<float> a, b;  // (outer, outer), (inner, inner)
};

// A transform applied to a linear layer's input rows before quantization and the GEMM,
// e.g. QuaRot's online Hadamard before down_proj. Implementations live in quant/.
class InputTransform {
 public:
  virtual ~InputTransform() = default;
  // In-place on x (rows, width).
  virtual void apply(float* x, int rows, int width) const = 0;
  // The backward pass of apply for a linear transform x ← x·T: dx ← dy·Tᵀ, in place. Non-linear
  // transforms (the simulated KV quantizer) pass gradients straight through (identity).
  virtual void apply_backward(float* dy, int rows, int width) const = 0;
  virtual std::string describe() const = 0;
  // The same linear transform in Kronecker form, or null when it has none (non-linear ones).
  virtual const KronForm* kron_form() const { return nullptr; }
};

// Integer weights of a quantized linear (QUAD-SPEC §4): the first `outlier` input columns stay
// in floating point (`w_outlier`, QUAD's r columns of U-type layers); the other k = in − outlier
// columns are integer codes with one scale per output row: packed two per byte for 4 bits
// (the on-disk layout, even column in the low nibble), one int8 each for 8 bits. The outlier
// columns are held in fp32 (`w_outlier`, as quantization and fine-tuning produce them) or as
// fp16 bit patterns (`w_outlier_f16`, as a folder stores them: half the bytes a decode step
// streams); exactly one of the two is filled when outlier > 0.
struct QuantizedWeight {
  int bits = 4;                         // 4 or 8
  int outlier = 0;                      // r for U-type layers, 0 for D-type layers
  int out = 0, k = 0;                   // code matrix shape
  std::vector<uint8_t> packed;          // bits 4: (out, k/2)
  std::vector<int8_t> codes;            // bits 8: (out, k)
  std::vector<float> scales;            // (out)
  std::vector<float> w_outlier;         // (out, outlier) fp32, or empty
  std::vector<uint16_t> w_outlier_f16;  // (out, outlier) fp16 bit patterns, or empty

  // From int8 codes (out, k) in [−2^(bits−1), 2^(bits−1)). The outlier columns come in one of
  // w_outlier / w_outlier_f16; the other is empty.
  static std::shared_ptr<QuantizedWeight> make(int bits, int outlier, int out, int k,
                                               std::vector<int8_t> codes, std::vector<float> scales,
                                               std::vector<float> w_outlier,
                                               std::vector<uint16_t> w_outlier_f16 = {});
  // 4-bit weights already packed (out, k/2) in the layout above (every byte is two valid codes).
  static std::shared_ptr<QuantizedWeight> make_packed(int outlier, int out, int k,
                                                      std::vector<uint8_t> packed,
                                                      std::vector<float> scales,
                                                      std::vector<float> w_outlier,
                                                      std::vector<uint16_t> w_outlier_f16 = {});
  std::vector<int8_t> unpacked() const;  // (out, k) codes for any bit width
  // The outlier columns (out, outlier) in fp32, from whichever form holds them.
  std::vector<float> outlier_f32() const;
  // Holds the outlier columns in fp32 (fine-tuning updates them in place); no-op when they are.
  void widen_outlier();
  // The fp weights these stand for: (out, outlier + k) = [w_outlier | codes · scales].
  std::vector<float> dequantized() const;
};

struct Linear {
  std::string name;  // HF prefix, e.g. "model.layers.0.self_attn.q_proj"
  int in = 0, out = 0;
  std::vector<float> weight;  // (out, in) fp weights; empty when qweight computes the layer
  // (out, in) fp16 bit patterns: fp weights held in half precision (a QUAD folder's LM head,
  // stored F16), used when `weight` is empty. Halves the bytes decode streams per token.
  std::vector<uint16_t> weight_f16;
  // (out, in) bf16 bit patterns: fp weights kept in bf16 (FP models run with --dtype bf16), used
  // when `weight` and `weight_f16` are empty.
  std::vector<uint16_t> weight_bf16;
  std::vector<float> bias;                         // (out) or empty
  std::shared_ptr<const QuantizedWeight> qweight;  // integer path, used when input_quant is on
  std::shared_ptr<const InputTransform> input_transform;  // null: none
  ActQuantSpec input_quant;                               // bits 16: off

  bool has_bias() const { return !bias.empty(); }
  // Integer arithmetic: quantized weights and quantized inputs.
  bool integer_path() const { return qweight && input_quant.enabled(); }
  // Whether the layer multiplies its input as it is: no online transform, no quantizer, fp
  // weights.
  bool reads_input_as_is() const {
    return !input_transform && !integer_path() && !input_quant.enabled();
  }
  size_t num_params() const {
    return qweight ? size_t(out) * in + bias.size()
                   : weight.size() + weight_f16.size() + weight_bf16.size() + bias.size();
  }
};

struct RmsNorm {
  std::vector<float> weight;  // (D) or empty for a weightless norm
  int divisor = 0;            // the original hidden size d
  float eps = 1e-6f;
};

struct DecoderLayer {
  RmsNorm attn_norm, mlp_norm;
  Linear q, k, v, o;
  Linear gate, up, down;
  // The seven linears in checkpoint order.
  std::array<Linear*, 7> linears() { return {&q, &k, &v, &o, &gate, &up, &down}; }
  std::array<const Linear*, 7> linears() const { return {&q, &k, &v, &o, &gate, &up, &down}; }
};

}  // namespace quad
