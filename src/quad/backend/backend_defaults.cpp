// The defaults of Backend::linear_f16 / linear_bf16 (widen the weights to fp32, then the
// backend's linear) and of Backend::copy (host memory only).
#include <cstring>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/tensor/dtype.h"

namespace quad {

void Backend::linear_f16(const float* x, int n, int in, const uint16_t* w16, int out,
                         const float* bias, float* y) {
  std::vector<float> w(size_t(out) * in);
  for (size_t i = 0; i < w.size(); ++i) w[i] = f16_to_f32(w16[i]);
  linear(x, n, in, w.data(), out, bias, y);
}

void Backend::linear_bf16(const float* x, int n, int in, const uint16_t* w16, int out,
                          const float* bias, float* y) {
  std::vector<float> w(size_t(out) * in);
  for (size_t i = 0; i < w.size(); ++i) w[i] = bf16_to_f32(w16[i]);
  linear(x, n, in, w.data(), out, bias, y);
}

void Backend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}

}  // namespace quad
