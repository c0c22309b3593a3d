// `quad quantize` end to end with one decoder layer in memory at a time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/io/sharded_writer.h"
#include "quad/io/tokenizer.h"
#include "quad/quant/pipeline.h"
#include "quad/quant/recipe.h"

namespace quad {

struct FolderQuantizeOptions {
  bool overwrite = false;  // replace an existing out_dir
  uint64_t max_shard_bytes = kDefaultMaxShardBytes;
  bool progress = true;
};

// Reads the HF folder model_dir through its mmapped safetensors layer by layer (the
// embedding, final norm and head are held throughout), runs quantize_layers and writes every
// finished layer into out_dir's shards at once (QuantizedFolderWriter), so memory stays near
// one layer plus the calibration activations. The output is the folder that quantize_model +
// save_quantized would write from the whole model in memory, byte for byte.
void quantize_folder(const std::string& model_dir, const std::string& out_dir,
                     const Tokenizer& tokenizer, Recipe& recipe, Backend& backend,
                     const FolderQuantizeOptions& options = {},
                     std::vector<LayerError>* errors = nullptr);

// `quad quantize --random SHAPE`: a random-weight FP model of a named shape (random_model.h),
// each layer drawn when the pipeline asks for it, quantized and written like quantize_folder;
// config.json is the shape's (marked "quad_random_shape"), the tokenizer files come from
// tokenizer_dir. For timing the pipeline at sizes no shared model has.
void quantize_random(const std::string& shape, const std::string& tokenizer_dir,
                     const std::string& out_dir, const Tokenizer& tokenizer, Recipe& recipe,
                     Backend& backend, const FolderQuantizeOptions& options = {},
                     std::vector<LayerError>* errors = nullptr);

}  // namespace quad
