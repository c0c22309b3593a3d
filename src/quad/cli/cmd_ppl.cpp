// quad ppl -m DIR --text FILE [--ctx N] [--json]
#include <algorithm>
#include <nlohmann/json.hpp>

#include "quad/backend/backend.h"
#include "quad/cli/commands.h"
#include "quad/core/progress.h"
#include "quad/eval/perplexity.h"
#include "quad/io/text_file.h"
#include "quad/io/tokenizer.h"
#include "quad/model/model.h"

namespace quad::cli {

Runner add_ppl(CLI::App& app) {
  auto* cmd = app.add_subcommand("ppl", "perplexity of a text file (non-overlapping chunks)");
  struct Opts {
    RunOptions run;
    std::string text;
    int ctx = 0;
    int64_t max_chunks = 0;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  add_run_options(*cmd, o->run);
  add_dtype_option(*cmd, o->run);
  cmd->add_option("--text", o->text, "UTF-8 text file (e.g. wiki.test.raw)")->required();
  cmd->add_option("--ctx", o->ctx, "chunk length in tokens (default: min(2048, model context))")
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--chunks", o->max_chunks, "score only the first N chunks (0: all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", o->json, "print one JSON object instead of the text summary");
  return [o] {
    set_num_threads(o->run.threads);
    const std::string text = read_text_file(o->text, "ppl");
    Tokenizer tokenizer = Tokenizer::load(o->run.model_dir);
    Model model = load_run_model(o->run);
    auto backend = make_inference_backend(o->run);
    const int ctx = o->ctx > 0 ? o->ctx : std::min(2048, model.config.max_position_embeddings);
    std::fprintf(stderr, "ppl: tokenizing %zu bytes...\n", text.size());
    std::vector<int32_t> ids = tokenizer.encode(text, true);
    PerplexityResult r = perplexity(model, *backend, ids, ctx, o->max_chunks);
    if (o->json) {
      nlohmann::json j = {{"ppl", r.ppl},
                          {"nll", r.nll},
                          {"tokens", r.tokens},
                          {"scored", r.scored},
                          {"chunks", r.chunks},
                          {"ctx", r.ctx},
                          {"seconds", r.seconds},
                          {"model", o->run.model_dir},
                          {"text", o->text},
                          {"backend", backend->name()},
                          {"threads", num_threads()}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("tokens = %lld, chunks = %lld x %d, scored = %lld, nll = %.6f\n",
                  (long long)r.tokens, (long long)r.chunks, r.ctx, (long long)r.scored, r.nll);
      std::printf("PPL = %.4f\n", r.ppl);
    }
    return 0;
  };
}

}  // namespace quad::cli
