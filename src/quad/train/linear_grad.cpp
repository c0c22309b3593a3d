#include "quad/train/linear_grad.h"

namespace quad::train {

void linear_forward(Backend& backend, const Linear& lin, const float* weight, const float* x, int n,
                    std::vector<float>& input, float* y) {
  input.assign(x, x + size_t(n) * lin.in);
  if (lin.input_transform) lin.input_transform->apply(input.data(), n, lin.in);
  if (lin.input_quant.enabled()) backend.act_quant(input.data(), n, lin.in, lin.input_quant);
  backend.linear(input.data(), n, lin.in, weight, lin.out,
                 lin.has_bias() ? lin.bias.data() : nullptr, y);
}

void linear_backward(Backend& backend, const Linear& lin, const float* weight, TrainLinear* t,
                     const float* input, const float* dy, int n, float* dx,
                     std::vector<float>& dw) {
  backend.linear_backward_input(dy, n, lin.out, weight, lin.in, dx);
  // The activation quantizer passes the gradient straight through; the transform is linear.
  if (lin.input_transform) lin.input_transform->apply_backward(dx, n, lin.in);
  if (!t) return;
  dw.resize(size_t(lin.out) * lin.in);
  backend.linear_backward_weight(dy, n, lin.out, input, lin.in, dw.data());
  const int r = t->qw->outlier, k = t->qw->k;
#pragma omp parallel for schedule(static) if (lin.out > 64)
  for (int o = 0; o < lin.out; ++o) {
    const float* row = dw.data() + size_t(o) * lin.in;
    if (t->outlier)
      for (int j = 0; j < r; ++j) t->outlier->grad[size_t(o) * r + j] += row[j];
    const int8_t* q = t->codes.data() + size_t(o) * k;
    double ds = 0;
    for (int j = 0; j < k; ++j) ds += double(row[r + j]) * q[j];
    t->scales->grad[o] += float(ds);
  }
}

}  // namespace quad::train
