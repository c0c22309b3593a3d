// Random-weight models of named real shapes, for speed runs (`quad bench --random SHAPE`):
// nothing here is a trained model, and every report of one says "random".
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "quad/model/model.h"

namespace quad {

// Named shapes: "llama3.2-1b", "llama3-8b", "llama2-7b", "qwen2.5-7b", "tiny-llama3-30m".
std::vector<std::string> random_shape_names();
// The config of a named shape (as its Hugging Face config.json says); throws quad::Error naming
// the known shapes for anything else.
ModelConfig random_shape_config(const std::string& shape);
// The same as a config.json (with "quad_random_shape": the name, so its folders say "random").
nlohmann::json random_shape_json(const std::string& shape);

// What the random model holds: fp32 weights, or the structure of a QUAD folder (residual width
// d + rank, weightless norms, packed int4 codes with per-row scales, fp outlier columns, the
// online Hadamards, activation quantizers: a_bits for q/k/v/gate/up, od_bits for o/down).
struct RandomQuant {
  bool quantized = false;
  int rank = 64, a_bits = 4, od_bits = 8;
};

// Weights drawn uniformly with the spread of a trained model (σ ≈ 0.02; int4 codes uniform over
// [−8, 7]) from `seed`, in parallel.
Model make_random_model(const ModelConfig& config, const RandomQuant& quant, uint64_t seed = 0);
// The same model in parts, for streaming one layer at a time: everything but the decoder layers
// (their slots empty; no online transforms or quantizers attached), and decoder layer l.
Model make_random_model_without_layers(const ModelConfig& config, const RandomQuant& quant,
                                       uint64_t seed = 0);
DecoderLayer make_random_layer(const ModelConfig& config, const RandomQuant& quant, uint64_t seed,
                               int layer);

}  // namespace quad
