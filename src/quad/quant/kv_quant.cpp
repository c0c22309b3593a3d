#include "quad/quant/kv_quant.h"

#include <fmt/format.h>

#include <algorithm>

#include "quad/backend/ref/ref_ops.h"
#include "quad/quant/hadamard.h"

namespace quad {

namespace {

class KvQuantizer final : public InputTransform {
 public:
  KvQuantizer(int hd, int bits, float clip)
      : hd_(hd), bits_(bits), clip_(clip), h_(hadamard::dense(hadamard::plan(hd))) {}

  // Straight-through estimator (QUAD-SPEC §7.2): quantization passes gradients unchanged.
  void apply_backward(float* dy, int rows, int width) const override {}

  // x (rows, hd) ← ((x·Hᵀ) fake-quantized)·H
  void apply(float* x, int rows, int width) const override {
#pragma omp parallel for schedule(static) if (rows > 64)
    for (int r = 0; r < rows; ++r) {
      float* row = x + size_t(r) * width;
      std::vector<float> t(hd_);
      for (int i = 0; i < hd_; ++i) {
        double acc = 0;
        for (int j = 0; j < hd_; ++j) acc += double(row[j]) * h_[size_t(i) * hd_ + j];
        t[i] = float(acc);
      }
      for (int c0 = 0; c0 < hd_; c0 += 128) {
        const int len = std::min(128, hd_ - c0);
        ref::act_quant(t.data() + c0, 1, len, ActQuantSpec{bits_, 0, clip_});
      }
      for (int j = 0; j < hd_; ++j) {
        double acc = 0;
        for (int i = 0; i < hd_; ++i) acc += double(t[i]) * h_[size_t(i) * hd_ + j];
        row[j] = float(acc);
      }
    }
  }
  std::string describe() const override {
    return fmt::format("int{} KV (per head, clip {}, Hadamard {})", bits_, clip_, hd_);
  }

 private:
  int hd_, bits_;
  float clip_;
  std::vector<double> h_;
};

}  // namespace

std::shared_ptr<const InputTransform> make_kv_quantizer(int head_dim, int bits, float clip) {
  return std::make_shared<KvQuantizer>(head_dim, bits, clip);
}

}  // namespace quad
