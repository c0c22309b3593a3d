#include "quad/cli/commands.h"

namespace quad::cli {

void add_run_options(CLI::App& cmd, RunOptions& o) {
  cmd.add_option("-m,--model", o.model_dir, "model folder (Hugging Face or quad-quantized)")
      ->required();
  cmd.add_option("-t,--threads", o.threads, "CPU threads (0: all cores)")
      ->check(CLI::Range(0, 1024));
  cmd.add_option("--backend", o.backend, "compute backend")->check(CLI::IsMember({"cpu", "ref"}));
}

}  // namespace quad::cli
