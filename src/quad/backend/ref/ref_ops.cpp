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

void rope(float* x, int n, int heads, int head_dim, const int32_t* pos, const RopeTable& table,
          bool inverse) {
  const float sign = inverse ? -1.0f : 1.0f;
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
        const float sk = sign * s[k];
        v[k] = a * c[k] - b * sk;
        v[k + half] = b * c[k] + a * sk;
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

namespace {

// The one definition of the per-token quantizer: scale = max|x| / qmax · clip (0 for an
// all-zero row), code = clamp(round_half_even(x / scale), −qmax−1, qmax).
float row_scale(const float* row, int len, int bits, float clip) {
  const float qmax = float((1 << (bits - 1)) - 1);
  float amax = 0;
  for (int c = 0; c < len; ++c) amax = std::max(amax, std::fabs(row[c]));
  return amax / qmax * clip;
}

int8_t code(float v, float scale, int bits) {
  const float qmax = float((1 << (bits - 1)) - 1);
  return int8_t(std::clamp(std::nearbyint(v / scale), -qmax - 1, qmax));
}

}  // namespace

void act_quant(float* x, int n, int width, const ActQuantSpec& spec) {
  if (!spec.enabled()) return;
  for (int i = 0; i < n; ++i) {
    float* row = x + size_t(i) * width + spec.skip_first;
    const int len = width - spec.skip_first;
    const float scale = row_scale(row, len, spec.bits, spec.clip);
    if (scale == 0) continue;  // an all-zero row quantizes to itself
    for (int c = 0; c < len; ++c) row[c] = float(code(row[c], scale, spec.bits)) * scale;
  }
}

void quantize_rows(const float* x, int n, int width, int ld, int bits, float clip, int8_t* codes,
                   float* scales) {
  for (int i = 0; i < n; ++i) {
    const float* row = x + size_t(i) * ld;
    int8_t* out = codes + size_t(i) * width;
    const float scale = row_scale(row, width, bits, clip);
    scales[i] = scale;
    for (int c = 0; c < width; ++c) out[c] = scale == 0 ? 0 : code(row[c], scale, bits);
  }
}

int32_t dot_i8(const int8_t* a, const int8_t* b, int k) {
  int32_t acc = 0;
  for (int c = 0; c < k; ++c) acc += int16_t(a[c]) * int16_t(b[c]);
  return acc;
}

}  // namespace quad::ref
