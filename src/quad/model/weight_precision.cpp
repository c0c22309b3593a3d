// --dtype bf16: the fp weights of linear layers held as bf16 (Linear::weight_bf16).
#include "quad/model/model.h"
#include "quad/tensor/dtype.h"

namespace quad {

namespace {

void to_bf16(Linear& lin) {
  if (lin.weight.empty()) return;  // quantized, or already 16-bit
  lin.weight_bf16.resize(lin.weight.size());
  for (size_t i = 0; i < lin.weight.size(); ++i) lin.weight_bf16[i] = f32_to_bf16(lin.weight[i]);
  std::vector<float>().swap(lin.weight);  // release the fp32 copy now
}

}  // namespace

void store_fp_linears_in_bf16(Model& m) {
  for (DecoderLayer& L : m.layers)
    for (Linear* lin : L.linears()) to_bf16(*lin);
  to_bf16(m.lm_head);
}

}  // namespace quad
