#include "quad/cli/commands.h"
#include "quad/core/error.h"
#include "quad/io/sharded_writer.h"

namespace quad::cli {

CLI::Option* add_run_options(CLI::App& cmd, RunOptions& o, bool model_required) {
  auto* model =
      cmd.add_option("-m,--model", o.model_dir, "model folder (Hugging Face or quad-quantized)");
  if (model_required) model->required();
  cmd.add_option("-t,--threads", o.threads, "CPU threads (0: all cores)")
      ->check(CLI::Range(0, 1024));
  // "cuda" is always accepted here so that a build or machine without it gets the backend's own
  // clear error ("[cuda] quad was built without CUDA ...") instead of a list of choices.
  auto* backend = cmd.add_option("--backend", o.backend,
                                 "compute backend: cpu, cuda (NVIDIA GPU) or ref (slow reference)")
                      ->check(CLI::IsMember({"cpu", "cuda", "ref"}));
  // --device is the user-facing alias.
  cmd.add_option_function<std::string>(
         "--device", [&o](const std::string& device) { o.backend = device; },
         "where to run: cpu or cuda (same as --backend; default: cuda when quad was built with "
         "CUDA and a GPU is present, else cpu; fine-tuning: cpu)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->excludes(backend);
  return model;
}

std::unique_ptr<Backend> make_run_backend(const RunOptions& o, bool gpu_by_default) {
  if (!o.backend.empty()) return make_backend(o.backend);
  return make_backend(gpu_by_default && backend_available("cuda") ? "cuda" : "cpu");
}

void add_dtype_option(CLI::App& cmd, RunOptions& o) {
  cmd.add_option("--dtype", o.dtype,
                 "fp32 (default, exact) or bf16: fp linear weights held in bf16 (half the memory; "
                 "exact for bf16 checkpoints; bf16 tensor cores on cuda) and reduced-precision "
                 "ops allowed (cuda: fp16 flash attention)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
}

void apply_dtype(Model& model, const RunOptions& o) {
  if (o.dtype == "bf16") store_fp_linears_in_bf16(model);
}

std::unique_ptr<Backend> make_inference_backend(const RunOptions& o) {
  auto backend = make_run_backend(o);
  backend->assume_weights_frozen();  // nothing edits weights while running
  if (o.dtype == "bf16") backend->allow_reduced_precision();
  return backend;
}

Model load_run_model(const RunOptions& o) {
  Model model = Model::load(o.model_dir);
  apply_dtype(model, o);
  return model;
}

void add_shard_size_option(CLI::App& cmd, uint64_t& bytes) {
  bytes = kDefaultMaxShardBytes;
  cmd.add_option_function<std::string>(
         "--max-shard-size",
         [&bytes](const std::string& text) {
           try {
             bytes = parse_byte_size(text);
           } catch (const Error& e) {  // reported by CLI11 like every other bad option value
             throw CLI::ValidationError("--max-shard-size", e.what());
           }
         },
         "largest safetensors file of the output (e.g. 2GB, 500MiB); more shards + index.json")
      ->default_str("5GB");
}

}  // namespace quad::cli
