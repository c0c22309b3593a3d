// The reference int4 GEMM: unpack each weight row to int8 codes, then plain int32 dot products.
#include <vector>

#include "quad/backend/cpu/kernels/int4_gemm.h"

namespace quad::kernels {

namespace {
// Two's-complement nibble → code in [-8, 7].
int8_t nibble_code(uint8_t v) {
  return int8_t(v >= 8 ? int(v) - 16 : int(v));
}
}  // namespace

void gemm_s8_s4_ref(const int8_t* xq, const float* sx, int n, int k, const uint8_t* w_packed,
                    const float* sw, int out, float* y) {
  std::vector<int8_t> row(static_cast<size_t>(k));
  for (int o = 0; o < out; ++o) {
    const uint8_t* wp = w_packed + size_t(o) * (k / 2);
    for (int b = 0; b < k / 2; ++b) {
      row[2 * b] = nibble_code(wp[b] & 0xF);
      row[2 * b + 1] = nibble_code(wp[b] >> 4);
    }
    for (int i = 0; i < n; ++i) {
      const int8_t* xi = xq + size_t(i) * k;
      int32_t acc = 0;
      for (int c = 0; c < k; ++c) acc += int32_t(xi[c]) * int32_t(row[c]);
      y[size_t(i) * out + o] = float(acc) * sx[i] * sw[o];
    }
  }
}

}  // namespace quad::kernels
