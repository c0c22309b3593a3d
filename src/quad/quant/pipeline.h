// The whole conversion (QUAD-SPEC §3 order): load → fold norms (+ center embeddings) →
// outlier subspace P from calibration → expansion + residual rotation → online Hadamards →
// weight quantization (GPTQ layer by layer, or RTN) → activation quantizers attached.
#pragma once

#include <string>

#include "quad/backend/backend.h"
#include "quad/io/tokenizer.h"
#include "quad/model/model.h"
#include "quad/quant/recipe.h"

namespace quad {

// Per-linear output error proxy tr(ΔW·H·ΔWᵀ) on the calibration data, for GPTQ's codes and
// for round-to-nearest with the same scales (GPTQ must not be worse).
struct LayerError {
  int layer = 0;
  std::string name;
  double gptq = 0, rtn = 0;
};

// Runs the pipeline on `model` (as loaded from an HF folder) in place. `recipe` is completed
// (calibration hash, effective rank). Progress goes to stderr.
void quantize_model(Model& model, const Tokenizer& tokenizer, Recipe& recipe, Backend& backend,
                    bool progress = true, std::vector<LayerError>* errors = nullptr);

// Attaches the activation and KV quantizers a recipe asks for (U-type inputs: a_bits with the
// first r entries excluded; o/down inputs: od_bits).
void attach_quantizers(Model& model, const Recipe& recipe);

// Integer weight codes from fp weights for every linear (skipping the first r input columns of
// U-type layers), by GPTQ on `windows` (layer by layer, true-sequential groups) or RTN.
void quantize_weights(Model& model, const Recipe& recipe, Backend& backend,
                      const std::vector<std::vector<int32_t>>& windows, bool progress,
                      std::vector<LayerError>* errors = nullptr);

}  // namespace quad
