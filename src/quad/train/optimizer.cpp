#include "quad/train/optimizer.h"

#include <cmath>
#include <numbers>

namespace quad::train {

void adamw_step(std::vector<Param>& params, const AdamWConfig& cfg, double lr, long step) {
  const double bc1 = 1.0 - std::pow(cfg.beta1, double(step));
  const double bc2 = 1.0 - std::pow(cfg.beta2, double(step));
  for (Param& p : params) {
#pragma omp parallel for schedule(static) if (p.size > 65536)
    for (size_t i = 0; i < p.size; ++i) {
      const double g = p.grad[i];
      const double m = cfg.beta1 * p.m[i] + (1.0 - cfg.beta1) * g;
      const double v = cfg.beta2 * p.v[i] + (1.0 - cfg.beta2) * g * g;
      p.m[i] = float(m);
      p.v[i] = float(v);
      double w = p.value[i] * (1.0 - lr * cfg.weight_decay);
      w -= lr * (m / bc1) / (std::sqrt(v / bc2) + cfg.eps);
      p.value[i] = float(w);
    }
  }
}

double learning_rate(long step, long total, long warmup, double peak, double min_lr) {
  if (step < warmup) return peak * double(step + 1) / double(warmup);
  const long decay = total - warmup;
  if (decay <= 0) return peak;
  const double progress = std::min(1.0, double(step - warmup) / double(decay));
  return min_lr + 0.5 * (peak - min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
}

double clip_grad_norm(std::vector<Param>& params, double max_norm) {
  double ss = 0;
  for (const Param& p : params)
    for (float g : p.grad) ss += double(g) * g;
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm) {
    const float f = float(max_norm / (norm + 1e-6));
    for (Param& p : params)
      for (float& g : p.grad) g *= f;
  }
  return norm;
}

}  // namespace quad::train
