// quad inspect -m DIR: what is in a model folder.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "quad/cli/commands.h"
#include "quad/io/safetensors.h"
#include "quad/io/tokenizer.h"
#include "quad/model/config.h"

namespace quad::cli {

Runner add_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "describe a model folder");
  auto dir = std::make_shared<std::string>();
  cmd->add_option("-m,--model", *dir, "model folder")->required();
  return [dir] {
    ModelConfig c = ModelConfig::load(*dir);
    TensorStore store = TensorStore::open_dir(*dir);
    std::map<std::string, std::pair<int64_t, int64_t>> by_dtype;  // dtype -> (tensors, bytes)
    int64_t params = 0;
    for (const auto& name : store.names()) {
      const TensorView& t = store.get(name);
      auto& entry = by_dtype[std::string(dtype_name(t.dtype))];
      entry.first += 1;
      entry.second += int64_t(t.nbytes);
      params += t.numel();
    }
    fmt::print("model:        {}\n", std::filesystem::absolute(*dir).string());
    fmt::print("architecture: {} ({})\n", c.architecture_name, c.arch_label());
    fmt::print("shape:        d={} ff={} layers={} heads={} kv_heads={} head_dim={} vocab={}\n",
               c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads, c.num_kv_heads,
               c.head_dim, c.vocab_size);
    fmt::print("context:      {} positions, rope theta {}, rope type {}\n",
               c.max_position_embeddings, c.rope_theta, c.rope_scaling.type);
    fmt::print("norm eps:     {}\n", c.rms_norm_eps);
    fmt::print("embeddings:   {}\n", c.tie_word_embeddings ? "tied" : "untied");
    fmt::print("biases:       qkv={} o={} mlp={}\n", c.qkv_bias, c.o_bias, c.mlp_bias);
    fmt::print("dtype:        {} (config)\n", c.dtype);
    if (c.dtype.empty() || !store.has("model.layers.0.self_attn.q_proj.weight_scales"))
      fmt::print("parameters:   {} ({:.2f} M)\n", params, params / 1e6);
    else  // packed int4 tensors hold two values per stored byte
      fmt::print("stored:       {} tensor elements ({:.2f} M; int4 codes two per byte)\n", params,
                 params / 1e6);
    fmt::print("tensors:      {}\n", store.names().size());
    for (const auto& [dtype, e] : by_dtype)
      fmt::print("  {:5} {:5} tensors {:10.2f} MiB\n", dtype, e.first, e.second / 1048576.0);
    nlohmann::json cfg = nlohmann::json::parse(
        std::ifstream(std::filesystem::path(*dir) / "config.json"), nullptr, false);
    if (cfg.is_object() && cfg.contains("quantization_config")) {
      fmt::print("quantization: {}\n", cfg["quantization_config"].value("quant_method", "?"));
      for (const auto& [key, value] : cfg["quantization_config"].items())
        fmt::print("  {:20} {}\n", key, value.dump());
    } else {
      fmt::print("quantization: none\n");
    }
    try {
      Tokenizer tok = Tokenizer::load(*dir);
      fmt::print("tokenizer:    {}, {} tokens, bos {}, eos {}, adds bos: {}\n", tok.kind(),
                 tok.vocab_size(), tok.bos_id(), tok.eos_id(), tok.adds_bos());
    } catch (const std::exception& e) {
      fmt::print("tokenizer:    unavailable ({})\n", e.what());
    }
    return 0;
  };
}

}  // namespace quad::cli
