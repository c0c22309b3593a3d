#include "quad/train/trainable.h"

#include <memory>

#include "quad/core/error.h"
#include "quad/tensor/dtype.h"

namespace quad::train {

void TrainLinear::refresh() {
  const int r = qw->outlier, k = qw->k, in = r + k;
  weight.resize(size_t(qw->out) * in);
  for (int o = 0; o < qw->out; ++o) {
    float* row = weight.data() + size_t(o) * in;
    for (int j = 0; j < r; ++j) row[j] = qw->w_outlier[size_t(o) * r + j];
    const float s = qw->scales[o];
    const int8_t* q = codes.data() + size_t(o) * k;
    for (int j = 0; j < k; ++j) row[r + j] = s * float(q[j]);
  }
}

TrainableModel::TrainableModel(Model& model) : model_(model) {
  // The frozen head's backward pass needs fp32 weights; the values are the fp16 ones exactly.
  Linear& head = model.lm_head;
  if (head.weight.empty() && !head.weight_f16.empty()) {
    head.weight.resize(head.weight_f16.size());
    for (size_t i = 0; i < head.weight.size(); ++i) head.weight[i] = f16_to_f32(head.weight_f16[i]);
    head.weight_f16 = {};
  }
  const int L = model.config.num_layers;
  linears_.resize(L);
  // Parameters are added in a fixed order (layer, linear, outlier then scales): the checkpoint
  // format relies on it. Reserve so the Param pointers stay valid.
  params_.reserve(size_t(L) * 12);
  auto add_param = [&](const std::string& name, std::vector<float>& values) {
    Param p;
    p.name = name;
    p.value = values.data();
    p.size = values.size();
    p.grad.assign(p.size, 0.0f);
    p.m.assign(p.size, 0.0f);
    p.v.assign(p.size, 0.0f);
    params_.push_back(std::move(p));
    return &params_.back();
  };
  for (int l = 0; l < L; ++l) {
    DecoderLayer& layer = model.layers[l];
    Linear* all[7] = {&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down};
    for (int i = 0; i < 7; ++i) {
      Linear& lin = *all[i];
      check(lin.qweight != nullptr, "finetune",
            "{} has no quantized weights: fine-tuning needs a folder written by `quad quantize` "
            "with integer weights (--w-bits 4 or 8)",
            lin.name);
      auto copy = std::make_shared<QuantizedWeight>(*lin.qweight);
      copy->widen_outlier();  // trained in fp32
      lin.qweight = copy;
      TrainLinear& t = linears_[l][i];
      t.lin = &lin;
      t.qw = copy.get();
      t.codes = copy->unpacked();
      if (copy->outlier > 0) t.outlier = add_param(lin.name + ".w_outlier", copy->w_outlier);
      t.scales = add_param(lin.name + ".weight_scales", copy->scales);
      t.refresh();
    }
  }
}

size_t TrainableModel::num_trainable() const {
  size_t n = 0;
  for (const Param& p : params_) n += p.size;
  return n;
}

void TrainableModel::zero_grad() {
  for (Param& p : params_) std::fill(p.grad.begin(), p.grad.end(), 0.0f);
}

void TrainableModel::refresh() {
  for (auto& layer : linears_)
    for (TrainLinear& t : layer) t.refresh();
}

}  // namespace quad::train
