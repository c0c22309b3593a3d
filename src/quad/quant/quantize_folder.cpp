#include "quad/quant/quantize_folder.h"

#include "quad/core/error.h"
#include "quad/io/safetensors.h"
#include "quad/model/quantized_folder.h"

namespace quad {

void quantize_folder(const std::string& model_dir, const std::string& out_dir,
                     const Tokenizer& tokenizer, Recipe& recipe, Backend& backend,
                     const FolderQuantizeOptions& options, std::vector<LayerError>* errors) {
  check(!is_quantized_folder(model_dir), "quantize", "{} is already quantized", model_dir);
  const ModelConfig config = ModelConfig::load(model_dir);
  const TensorStore store = TensorStore::open_dir(model_dir);
  Model m = load_model_without_layers(store, config);
  QuantizedFolderWriter writer(recipe, model_dir, out_dir, options.overwrite,
                               options.max_shard_bytes);
  LayerSink sink;
  sink.embedding_ready = [&](Model& model) { writer.add_embedding(model); };
  sink.layer_done = [&](Model& model, int l) {
    writer.add_layer(model.layers[l]);
    model.layers[l] = DecoderLayer{};  // written: free it
  };
  quantize_layers(
      m, [&](int l) { return load_decoder_layer(store, config, l); }, sink, tokenizer, recipe,
      backend, options.progress, errors);
  writer.finish(m, recipe);
}

}  // namespace quad
