#include "quad/core/error.h"
#include "quad/model/layers.h"
#include "quad/quant/weight_quant.h"
#include "quad/tensor/dtype.h"

namespace quad {

namespace {

// Exactly one of the two outlier forms holds (out, outlier) values; both empty when outlier is 0.
bool outlier_sizes_match(size_t f32, size_t f16, int out, int outlier) {
  const size_t want = size_t(out) * outlier;
  return (f32 == want && f16 == 0) || (f32 == 0 && f16 == want);
}

}  // namespace

std::shared_ptr<QuantizedWeight> QuantizedWeight::make(int bits, int outlier, int out, int k,
                                                       std::vector<int8_t> codes,
                                                       std::vector<float> scales,
                                                       std::vector<float> w_outlier,
                                                       std::vector<uint16_t> w_outlier_f16) {
  check(bits == 4 || bits == 8, "quant", "weights must be 4 or 8 bits, not {}", bits);
  check(codes.size() == size_t(out) * k && scales.size() == size_t(out) &&
            outlier_sizes_match(w_outlier.size(), w_outlier_f16.size(), out, outlier),
        "quant", "quantized weight buffers do not match shape {}x{}", out, k);
  if (bits == 4)
    return make_packed(outlier, out, k, pack_int4(codes.data(), out, k), std::move(scales),
                       std::move(w_outlier), std::move(w_outlier_f16));
  auto q = std::make_shared<QuantizedWeight>();
  q->bits = bits;
  q->outlier = outlier;
  q->out = out;
  q->k = k;
  q->codes = std::move(codes);
  q->scales = std::move(scales);
  q->w_outlier = std::move(w_outlier);
  q->w_outlier_f16 = std::move(w_outlier_f16);
  return q;
}

std::shared_ptr<QuantizedWeight> QuantizedWeight::make_packed(int outlier, int out, int k,
                                                              std::vector<uint8_t> packed,
                                                              std::vector<float> scales,
                                                              std::vector<float> w_outlier,
                                                              std::vector<uint16_t> w_outlier_f16) {
  check(out >= 0 && k >= 0 && k % 2 == 0 && outlier >= 0 &&
            packed.size() == size_t(out) * (k / 2) && scales.size() == size_t(out) &&
            outlier_sizes_match(w_outlier.size(), w_outlier_f16.size(), out, outlier),
        "quant", "packed int4 weight buffers do not match shape {}x{}", out, k);
  auto q = std::make_shared<QuantizedWeight>();
  q->bits = 4;
  q->outlier = outlier;
  q->out = out;
  q->k = k;
  q->packed = std::move(packed);
  q->scales = std::move(scales);
  q->w_outlier = std::move(w_outlier);
  q->w_outlier_f16 = std::move(w_outlier_f16);
  return q;
}

std::vector<int8_t> QuantizedWeight::unpacked() const {
  return bits == 4 ? unpack_int4(packed.data(), out, k) : codes;
}

std::vector<float> QuantizedWeight::outlier_f32() const {
  if (w_outlier_f16.empty()) return w_outlier;
  std::vector<float> w(w_outlier_f16.size());
  for (size_t i = 0; i < w.size(); ++i) w[i] = f16_to_f32(w_outlier_f16[i]);
  return w;
}

void QuantizedWeight::widen_outlier() {
  if (w_outlier_f16.empty()) return;
  w_outlier = outlier_f32();
  w_outlier_f16 = {};
}

std::vector<float> QuantizedWeight::dequantized() const {
  const std::vector<int8_t> c = unpacked();
  const std::vector<float> w_outlier = outlier_f32();
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
