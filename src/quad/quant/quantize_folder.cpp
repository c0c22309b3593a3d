#include "quad/quant/quantize_folder.h"

#include "quad/core/error.h"
#include "quad/io/safetensors.h"
#include "quad/model/quantized_folder.h"
#include "quad/quant/random_model.h"

namespace quad {

namespace {

// The pipeline from `source` into `writer`, each layer written (and freed) when done.
void quantize_into(Model& m, const LayerSource& source, QuantizedFolderWriter& writer,
                   const Tokenizer& tokenizer, Recipe& recipe, Backend& backend,
                   const FolderQuantizeOptions& options, std::vector<LayerError>* errors) {
  LayerSink sink;
  sink.embedding_ready = [&](Model& model) { writer.add_embedding(model); };
  sink.layer_done = [&](Model& model, int l) {
    writer.add_layer(model.layers[l]);
    model.layers[l] = DecoderLayer{};  // written: free it
  };
  quantize_layers(m, source, sink, tokenizer, recipe, backend, options.progress, errors);
  writer.finish(m, recipe);
}

}  // namespace

void quantize_folder(const std::string& model_dir, const std::string& out_dir,
                     const Tokenizer& tokenizer, Recipe& recipe, Backend& backend,
                     const FolderQuantizeOptions& options, std::vector<LayerError>* errors) {
  check(!is_quantized_folder(model_dir), "quantize", "{} is already quantized", model_dir);
  const ModelConfig config = ModelConfig::load(model_dir);
  const TensorStore store = TensorStore::open_dir(model_dir);
  Model m = load_model_without_layers(store, config);
  QuantizedFolderWriter writer(recipe, model_dir, out_dir, options.overwrite,
                               options.max_shard_bytes);
  quantize_into(
      m, [&](int l) { return load_decoder_layer(store, config, l); }, writer, tokenizer, recipe,
      backend, options, errors);
}

void quantize_random(const std::string& shape, const std::string& tokenizer_dir,
                     const std::string& out_dir, const Tokenizer& tokenizer, Recipe& recipe,
                     Backend& backend, const FolderQuantizeOptions& options,
                     std::vector<LayerError>* errors) {
  const ModelConfig config = random_shape_config(shape);
  check(tokenizer.vocab_size() <= config.vocab_size, "quantize",
        "the tokenizer of {} has {} tokens, more than the {} of the random shape {}", tokenizer_dir,
        tokenizer.vocab_size(), config.vocab_size, shape);
  const RandomQuant fp;  // random FP weights, as a checkpoint would hold them
  Model m = make_random_model_without_layers(config, fp);
  QuantizedFolderWriter writer(recipe, tokenizer_dir, out_dir, options.overwrite,
                               options.max_shard_bytes);
  writer.set_source_config(random_shape_json(shape));
  quantize_into(
      m, [&](int l) { return make_random_layer(config, fp, 0, l); }, writer, tokenizer, recipe,
      backend, options, errors);
}

}  // namespace quad
