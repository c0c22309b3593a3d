// Subcommands of the `quad` binary. Each registers its options on the CLI11 app and returns
// the function that runs it (after parsing).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "quad/backend/backend.h"
#include "quad/model/model.h"

namespace quad::cli {

using Runner = std::function<int()>;

Runner add_ppl(CLI::App& app);
Runner add_generate(CLI::App& app);
Runner add_inspect(CLI::App& app);
Runner add_bench(CLI::App& app);
Runner add_quantize(CLI::App& app);
Runner add_eval(CLI::App& app);
Runner add_finetune(CLI::App& app);

// Options shared by the commands that run a model.
struct RunOptions {
  std::string model_dir;
  int threads = 0;             // 0: all cores
  std::string backend;         // empty: the command's default (make_run_backend)
  std::string dtype = "fp32";  // fp32 | bf16: how fp linear weights are held (add_dtype_option)
};
// Adds -m (required unless model_required is false), -t, --backend/--device; returns -m.
CLI::Option* add_run_options(CLI::App& cmd, RunOptions& options, bool model_required = true);
// The backend the options name; without --device/--backend, cuda where quad was built with CUDA
// and a GPU is present (when gpu_by_default), else cpu.
std::unique_ptr<Backend> make_run_backend(const RunOptions& options, bool gpu_by_default = true);
// Adds --dtype (fp32 | bf16) for commands that run a model.
void add_dtype_option(CLI::App& cmd, RunOptions& options);
// Model::load(-m) with the fp linears stored as --dtype says.
Model load_run_model(const RunOptions& options);
// Applies --dtype to a model built in memory.
void apply_dtype(Model& model, const RunOptions& options);
// make_run_backend for commands that only run a model (ppl, generate, eval, bench): weights
// promised frozen, and reduced-precision ops allowed under --dtype bf16.
std::unique_ptr<Backend> make_inference_backend(const RunOptions& options);

// Adds --max-shard-size SIZE for commands that write a model folder; `bytes` receives the
// parsed limit (parse_byte_size; default 5GB, as save_pretrained).
void add_shard_size_option(CLI::App& cmd, uint64_t& bytes);

}  // namespace quad::cli
