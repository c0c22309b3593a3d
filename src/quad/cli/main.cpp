// The `quad` binary: subcommands, and the one place where errors become exit codes.
#include <cstdio>
#include <map>
#include <new>

#include "quad/cli/commands.h"
#include "quad/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"quad: QUAD 4-bit quantization and inference for Llama and Qwen2 models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("quad ") + QUAD_VERSION);
  std::map<std::string, quad::cli::Runner> runners;
  runners["ppl"] = quad::cli::add_ppl(app);
  runners["generate"] = quad::cli::add_generate(app);
  runners["inspect"] = quad::cli::add_inspect(app);
  runners["bench"] = quad::cli::add_bench(app);
  runners["quantize"] = quad::cli::add_quantize(app);
  runners["eval"] = quad::cli::add_eval(app);
  runners["finetune"] = quad::cli::add_finetune(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(
        stderr, "quad: [cli] %s (see quad %s--help)\n", e.what(),
        app.get_subcommands().empty() ? "" : (app.get_subcommands()[0]->get_name() + " ").c_str());
    return 2;
  }
  try {
    for (auto* sub : app.get_subcommands()) return runners.at(sub->get_name())();
  } catch (const quad::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nquad: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "\nquad: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nquad: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
