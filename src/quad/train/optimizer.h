// AdamW (decoupled weight decay, bias-corrected moments as in torch.optim.AdamW), the
// learning-rate schedule of QUAD-SPEC §7.3 (linear warm-up, then cosine decay to a minimum),
// and global gradient-norm clipping.
#pragma once

#include <vector>

#include "quad/train/trainable.h"

namespace quad::train {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

// One update of every parameter with learning rate lr; `step` counts from 1.
void adamw_step(std::vector<Param>& params, const AdamWConfig& cfg, double lr, long step);

// lr at optimizer step `step` (0-based) of `total`: peak·(step+1)/warmup during the warm-up, then
// cosine from peak to min_lr over the remaining steps.
double learning_rate(long step, long total, long warmup, double peak, double min_lr);

// Scales the gradients so their global L2 norm is at most max_norm (no-op for max_norm <= 0);
// returns the norm before clipping.
double clip_grad_norm(std::vector<Param>& params, double max_norm);

}  // namespace quad::train
