// The whole conversion (QUAD-SPEC §3 order): load → fold norms (+ center embeddings) →
// outlier subspace P from calibration → expansion + residual rotation → online Hadamards →
// weight quantization (GPTQ layer by layer, or RTN) → activation quantizers attached.
#pragma once

#include <functional>
#include <string>
#include <vector>

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

// Where quantize_layers gets decoder layer l as stored in the source folder (it asks for each
// layer twice when r > 0: for the calibration statistic, then to transform it) ...
using LayerSource = std::function<DecoderLayer(int)>;
// ... and what it tells about its progress: the embedding is final (transformed, not yet
// rounded to its storage precision), and layer l is done (quantized, quantizers attached, in
// model.layers[l]; the sink may take it away).
struct LayerSink {
  std::function<void(Model&)> embedding_ready;
  std::function<void(Model&, int)> layer_done;
};

// The pipeline one decoder layer at a time, so memory holds the embedding, the head, one layer
// and the calibration activations: `model` comes with its embedding, final norm and head and
// empty layer slots (load_model_without_layers); every layer comes from `source` and goes to
// `sink`. Afterwards the model has its transformed embedding and head, the KV quantizer, and
// whichever layers the sink left in place. quantize_model runs this on a model in memory.
void quantize_layers(Model& model, const LayerSource& source, const LayerSink& sink,
                     const Tokenizer& tokenizer, Recipe& recipe, Backend& backend,
                     bool progress = true, std::vector<LayerError>* errors = nullptr);

// Attaches the activation and KV quantizers a recipe asks for (U-type inputs: a_bits with the
// first r entries excluded; o/down inputs: od_bits).
void attach_quantizers(Model& model, const Recipe& recipe);

}  // namespace quad
