// The online halves of QuaRot's Hadamards (QUAD-SPEC §3.7b–c), as InputTransforms on linears:
//  - before down_proj: t ← t·H_mᵀ (the size-m Hadamard of hadamard::plan(m));
//  - before o_proj: view each token's attention output as (heads, head_dim) and mix across
//    heads with the size-h Hadamard for every within-head index.
// The offline halves (weight-side) are in rotate.h and use the same hadamard::Transform objects.
#pragma once

#include <memory>
#include <mutex>

#include "quad/model/layers.h"
#include "quad/quant/hadamard.h"

namespace quad {

class HadamardInput final : public InputTransform {
 public:
  explicit HadamardInput(int n);
  void apply(float* x, int rows, int width) const override;
  void apply_backward(float* dy, int rows, int width) const override;
  std::string describe() const override;
  // A = A_K/√K, B = the Sylvester matrix of order n/K over √(n/K): H_n = A ⊗ B (built once).
  const KronForm* kron_form() const override;
  const hadamard::Transform& transform() const { return transform_; }

 private:
  hadamard::Transform transform_;
  mutable std::once_flag kron_once_;
  mutable KronForm kron_;
};

class HeadMixInput final : public InputTransform {
 public:
  HeadMixInput(int heads, int head_dim);
  void apply(float* x, int rows, int width) const override;
  void apply_backward(float* dy, int rows, int width) const override;
  std::string describe() const override;
  // A = H_heads (normalized), B = I over the head dimension.
  const KronForm* kron_form() const override;
  // The same operation on fp64 rows (for the offline weight transform).
  void apply(double* x, int rows) const;
  int heads() const { return heads_; }
  int head_dim() const { return head_dim_; }
  const hadamard::Transform& transform() const { return transform_; }

 private:
  int heads_, head_dim_;
  hadamard::Transform transform_;  // size heads
  mutable std::once_flag kron_once_;
  mutable KronForm kron_;
};

}  // namespace quad
