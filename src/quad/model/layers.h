// The building blocks of the one transformer structure that serves FP, rotated-FP, QuaRot and
// QUAD models. They differ only in data:
//  - the residual stream width D (d, or d + r after QUAD's expansion);
//  - norms with a weight, or weightless after folding, always dividing by the original d;
//  - linears with an optional online input transform (e.g. a Hadamard) and an optional
//    per-token activation quantizer applied to their input.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "quad/backend/backend.h"

namespace quad {

// A transform applied to a linear layer's input rows before quantization and the GEMM,
// e.g. QuaRot's online Hadamard before down_proj. Implementations live in quant/.
class InputTransform {
 public:
  virtual ~InputTransform() = default;
  // In-place on x (rows, width).
  virtual void apply(float* x, int rows, int width) const = 0;
  virtual std::string describe() const = 0;
};

struct Linear {
  std::string name;  // HF prefix, e.g. "model.layers.0.self_attn.q_proj"
  int in = 0, out = 0;
  std::vector<float> weight;  // (out, in)
  std::vector<float> bias;    // (out) or empty
  std::shared_ptr<const InputTransform> input_transform;  // null: none
  ActQuantSpec input_quant;                                // bits 16: off

  bool has_bias() const { return !bias.empty(); }
  size_t num_params() const { return weight.size() + bias.size(); }
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
};

}  // namespace quad
