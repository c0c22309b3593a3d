// Forward and backward passes of a whole TrainableModel over packed micro-batches: the
// deployed quantized model's computation (fake-quantized activations, dequantized weights), the
// cross-entropy of next-token prediction, and the gradients of the trainable parameters.
// Activations each backward op needs are cached per layer during the forward pass.
#pragma once

#include <array>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/train/batch.h"
#include "quad/train/trainable.h"

namespace quad::train {

struct LossSum {
  double sum = 0;   // Σ −log p(target) in nats
  int targets = 0;  // predicted tokens
  double mean() const { return targets ? sum / targets : 0.0; }
};

class ModelGrad {
 public:
  ModelGrad(TrainableModel& model, Backend& backend);
  // Forward, loss and backward; gradients of (loss_scale · Σ losses) are added to the params'
  // grad (pass 1 / targets of the global batch for a mean over it).
  LossSum forward_backward(const PackedBatch& batch, float loss_scale);
  // Forward and loss only (validation).
  LossSum forward_loss(const PackedBatch& batch);

 private:
  struct LayerCache {
    std::vector<float> x_attn, x_mlp;  // (R, D) residual entering each norm
    std::vector<float> q, k, v;        // (R, H·hd), (R, Hkv·hd) after RoPE (and KV quantizer)
    std::vector<float> gate, up;       // (R, ff) before the SwiGLU
    std::array<std::vector<float>, 7> input;  // what each linear's GEMM saw
  };
  // The sizes one layer's passes work with: R packed rows, residual width D, heads and widths.
  struct Dims {
    int R, D, hd, H, Hkv, ff;
  };
  Dims dims(const PackedBatch& b) const;
  LossSum run(const PackedBatch& batch, float loss_scale, bool backward);
  void layer_forward(int l, const PackedBatch& b, float* x);
  void layer_backward(int l, const PackedBatch& b, float* dx);
  double head(const PackedBatch& b, const float* x, float loss_scale, float* dx);
  void check_batch(const PackedBatch& b) const;

  TrainableModel& tm_;
  Backend& backend_;
  std::vector<LayerCache> cache_;
  // Scratch, (R, ·).
  std::vector<float> xn_, proj_, attn_, h_, dxn_, dtmp_, d_attn_, dq_, dk_, dv_, dgate_, dup_,
      logits_, dw_, head_in_;
};

}  // namespace quad::train
