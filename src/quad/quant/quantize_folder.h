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

}  // namespace quad
