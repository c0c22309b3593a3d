// Subcommands of the `quad` binary. Each registers its options on the CLI11 app and returns
// the function that runs it (after parsing).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

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
  int threads = 0;  // 0: all cores
  std::string backend = "cpu";
};
// Adds -m (required unless model_required is false), -t, --backend/--device; returns -m.
CLI::Option* add_run_options(CLI::App& cmd, RunOptions& options, bool model_required = true);

}  // namespace quad::cli
