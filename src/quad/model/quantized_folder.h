// Quantized model folders (format: docs/format.md): an HF-style folder whose config.json has a
// `quantization_config` block with the recipe, one model.safetensors with packed int4 (U8) or
// int8 (I8) codes, F16 per-row `weight_scales`, F16 `w_outlier` columns and F16 embeddings and
// head (F32 everywhere for an unquantized recipe), and the tokenizer files copied.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "quad/io/sharded_writer.h"
#include "quad/model/model.h"
#include "quad/quant/recipe.h"

namespace quad {

// Rounds what will be stored in half precision (scales, outlier columns, biases, embeddings,
// head) to fp16 in memory, so the saved-and-reloaded model computes exactly as this one.
void round_to_storage_precision(Model& model, const Recipe& recipe);

// Writes a quantized folder piece by piece, as the pipeline finishes them: the embedding, the
// layers in order, then finish() adds the head, config.json (source config + recipe) and the
// tokenizer files. Everything goes to "<out_dir>.tmp-quad", renamed into place by finish();
// a writer destroyed unfinished (an error on the way) removes it. Refuses to replace an
// existing out_dir unless `overwrite`. Tensors are stored in the recipe's precision (fp16 for
// a quantized recipe) in shards of at most max_shard_bytes, each written when full.
class QuantizedFolderWriter {
 public:
  QuantizedFolderWriter(const Recipe& recipe, std::string source_dir, const std::string& out_dir,
                        bool overwrite, uint64_t max_shard_bytes = kDefaultMaxShardBytes);
  ~QuantizedFolderWriter();
  QuantizedFolderWriter(const QuantizedFolderWriter&) = delete;
  QuantizedFolderWriter& operator=(const QuantizedFolderWriter&) = delete;
  // The config to record instead of source_dir's config.json (a random-weight model's).
  void set_source_config(const nlohmann::json& config);
  void add_embedding(const Model& model);
  void add_layer(const DecoderLayer& layer);
  void finish(const Model& model, const Recipe& recipe);

 private:
  std::string source_dir_, out_, tmp_;
  std::unique_ptr<nlohmann::json> source_config_;
  bool half_;
  bool finished_ = false;
  std::unique_ptr<ShardedSafetensorsWriter> tensors_;
};

// Writes the folder at out_dir via a temporary sibling folder renamed into place; refuses to
// replace an existing out_dir unless `overwrite`. Tokenizer files are copied from source_dir.
// Tensors go into safetensors shards of at most max_shard_bytes (ShardedSafetensorsWriter).
void save_quantized(const Model& model, const Recipe& recipe, const std::string& source_dir,
                    const std::string& out_dir, bool overwrite = false,
                    uint64_t max_shard_bytes = kDefaultMaxShardBytes);

// True if config.json of `dir` carries a quad quantization_config.
bool is_quantized_folder(const std::string& dir);

// Loads a folder written by save_quantized (Model::load calls this for such folders).
Model load_quantized(const std::string& dir, const ModelConfig& config,
                     const nlohmann::json& quantization_config);

}  // namespace quad
