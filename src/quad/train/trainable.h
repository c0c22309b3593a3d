// The trainable view of a quantized model (QUAD-SPEC §7.1): the fp outlier columns `w_outlier`
// of the U-type linears (q, k, v, gate, up) and the per-row weight scales of all seven linears
// of every layer. Integer codes, embeddings, norms, biases and the LM head stay frozen.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "quad/model/model.h"

namespace quad::train {

// One trainable tensor: its values live in the model (a QuantizedWeight's vector), its gradient
// and AdamW moments here.
struct Param {
  std::string name;  // e.g. "model.layers.3.mlp.up_proj.weight_scales"
  float* value = nullptr;
  size_t size = 0;
  std::vector<float> grad, m, v;  // (size)
};

// A linear layer as training sees it: fixed integer codes, trainable scales / outlier columns,
// and the dequantized fp weights Ŵ = [w_outlier | diag(s)·Q] (out, in) the forward pass uses.
struct TrainLinear {
  Linear* lin = nullptr;
  QuantizedWeight* qw = nullptr;  // the model's own (made mutable) copy
  std::vector<int8_t> codes;      // (out, k)
  std::vector<float> weight;      // (out, in), rebuilt by refresh()
  Param* scales = nullptr;
  Param* outlier = nullptr;  // null for D-type layers (o, down)
  void refresh();
};

class TrainableModel {
 public:
  // Takes the model (a loaded quantized folder) by reference; fails with a clear error if any
  // decoder linear is not quantized. The model's QuantizedWeights are replaced by private
  // mutable copies so updates show in everything that later uses or saves the model.
  explicit TrainableModel(Model& model);
  TrainableModel(const TrainableModel&) = delete;
  TrainableModel& operator=(const TrainableModel&) = delete;

  Model& model() { return model_; }
  const Model& model() const { return model_; }
  // Per layer: q, k, v, o, gate, up, down.
  std::array<TrainLinear, 7>& linears(int layer) { return linears_[layer]; }
  std::vector<Param>& params() { return params_; }
  const std::vector<Param>& params() const { return params_; }
  size_t num_trainable() const;
  void zero_grad();
  // Rebuilds every dequantized weight after the parameters changed.
  void refresh();

 private:
  Model& model_;
  std::vector<Param> params_;
  std::vector<std::array<TrainLinear, 7>> linears_;
};

}  // namespace quad::train
