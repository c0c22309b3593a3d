#include "quad/backend/ref/ref_ops.h"

#include <algorithm>
#include <cmath>

#include "quad/core/error.h"

namespace quad::ref {

void rmsnorm(const float* x, int n, int width, const float* weight, int divisor, float eps,
             float* y) {
  for (int i = 0; i < n; ++i) {
    const float* xi = x + size_t(i) * width;
    float* yi = y + size_t(i) * width;
    double ss = 0;
    for (int c = 0; c < width; ++c) ss += double(xi[c]) * xi[c];
    // transformers: x * rsqrt(mean(x²) + eps) in fp32, then weight * (that).
    const float inv = float(1.0 / std::sqrt(ss / divisor + double(eps)));
    for (int c = 0; c < width; ++c) yi[c] = weight ? weight[c] * (xi[c] * inv) : xi[c] * inv;
  }
}

void rope(float* x, int n, int heads, int head_dim, const int32_t* pos, const RopeTable& table) {
  const int half = head_dim / 2;
  for (int i = 0; i < n; ++i) {
    check(pos[i] >= 0 && pos[i] < table.max_positions, "rope",
          "position {} outside the table of {} positions", pos[i], table.max_positions);
    const float* c = table.cos.data() + size_t(pos[i]) * half;
    const float* s = table.sin.data() + size_t(pos[i]) * half;
    for (int h = 0; h < heads; ++h) {
      float* v = x + (size_t(i) * heads + h) * head_dim;
      for (int k = 0; k < half; ++k) {  // rotate_half: (x1, x2) -> (-x2, x1)
        const float a = v[k], b = v[k + half];
        v[k] = a * c[k] - b * s[k];
        v[k + half] = b * c[k] + a * s[k];
      }
    }
  }
}

void silu_mul(const float* gate, const float* up, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void act_quant(float* x, int n, int width, const ActQuantSpec& spec) {
  if (!spec.enabled()) return;
  const float qmax = float((1 << (spec.bits - 1)) - 1);
  const float qmin = -qmax - 1;
  for (int i = 0; i < n; ++i) {
    float* row = x + size_t(i) * width + spec.skip_first;
    const int len = width - spec.skip_first;
    float amax = 0;
    for (int c = 0; c < len; ++c) amax = std::max(amax, std::fabs(row[c]));
    const float scale = amax / qmax * spec.clip;
    if (scale == 0) continue;  // an all-zero row quantizes to itself
    for (int c = 0; c < len; ++c)
      row[c] = std::clamp(std::nearbyint(row[c] / scale), qmin, qmax) * scale;
  }
}

}  // namespace quad::ref
