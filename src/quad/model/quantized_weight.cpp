#include "quad/core/error.h"
#include "quad/model/layers.h"
#include "quad/quant/weight_quant.h"

namespace quad {

std::shared_ptr<QuantizedWeight> QuantizedWeight::make(int bits, int outlier, int out, int k,
                                                       std::vector<int8_t> codes,
                                                       std::vector<float> scales,
                                                       std::vector<float> w_outlier) {
  check(bits == 4 || bits == 8, "quant", "weights must be 4 or 8 bits, not {}", bits);
  check(codes.size() == size_t(out) * k && scales.size() == size_t(out) &&
            w_outlier.size() == size_t(out) * outlier,
        "quant", "quantized weight buffers do not match shape {}x{}", out, k);
  if (bits == 4)
    return make_packed(outlier, out, k, pack_int4(codes.data(), out, k), std::move(scales),
                       std::move(w_outlier));
  auto q = std::make_shared<QuantizedWeight>();
  q->bits = bits;
  q->outlier = outlier;
  q->out = out;
  q->k = k;
  q->codes = std::move(codes);
  q->scales = std::move(scales);
  q->w_outlier = std::move(w_outlier);
  return q;
}

std::shared_ptr<QuantizedWeight> QuantizedWeight::make_packed(int outlier, int out, int k,
                                                              std::vector<uint8_t> packed,
                                                              std::vector<float> scales,
                                                              std::vector<float> w_outlier) {
  check(out >= 0 && k >= 0 && k % 2 == 0 && outlier >= 0 &&
            packed.size() == size_t(out) * (k / 2) && scales.size() == size_t(out) &&
            w_outlier.size() == size_t(out) * outlier,
        "quant", "packed int4 weight buffers do not match shape {}x{}", out, k);
  auto q = std::make_shared<QuantizedWeight>();
  q->bits = 4;
  q->outlier = outlier;
  q->out = out;
  q->k = k;
  q->packed = std::move(packed);
  q->scales = std::move(scales);
  q->w_outlier = std::move(w_outlier);
  return q;
}

std::vector<int8_t> QuantizedWeight::unpacked() const {
  return bits == 4 ? unpack_int4(packed.data(), out, k) : codes;
}

std::vector<float> QuantizedWeight::dequantized() const {
  const std::vector<int8_t> c = unpacked();
  const int in = outlier + k;
  std::vector<float> w(size_t(out) * in);
  for (int o = 0; o < out; ++o) {
    for (int j = 0; j < outlier; ++j) w[size_t(o) * in + j] = w_outlier[size_t(o) * outlier + j];
    for (int j = 0; j < k; ++j)
      w[size_t(o) * in + outlier + j] = float(c[size_t(o) * k + j]) * scales[o];
  }
  return w;
}

}  // namespace quad
