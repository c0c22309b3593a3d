// One linear layer in training (QUAD-SPEC §7.2): the online input transform, fake activation
// quantization with a straight-through estimator, and an fp GEMM with the dequantized weights
// Ŵ = [w_outlier | diag(s)·Q]. Backward: dX = G·Ŵ (then through the transform), and for a
// trainable layer dL/dw_outlier = (Gᵀ·X)[:, :r] and dL/ds_o = Σ_j (Gᵀ·X)[o, r + j]·Q[o, j].
#pragma once

#include <vector>

#include "quad/backend/backend.h"
#include "quad/model/layers.h"
#include "quad/train/trainable.h"

namespace quad::train {

// y (n, out) from x (n, in); `input` receives what the GEMM saw (transformed, fake-quantized),
// which the backward pass needs.
void linear_forward(Backend& backend, const Linear& lin, const float* weight, const float* x, int n,
                    std::vector<float>& input, float* y);

// dx (n, in) from dy (n, out). With a TrainLinear, its parameters' gradients are incremented;
// `dw` is scratch (out, in).
void linear_backward(Backend& backend, const Linear& lin, const float* weight, TrainLinear* t,
                     const float* input, const float* dy, int n, float* dx, std::vector<float>& dw);

}  // namespace quad::train
