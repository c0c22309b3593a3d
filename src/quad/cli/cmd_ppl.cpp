// quad ppl -m DIR --text FILE [--ctx N] [--json]
#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>

#include "quad/backend/backend.h"
#include "quad/cli/commands.h"
#include "quad/core/error.h"
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
    std::string kl_base;
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
  cmd->add_option("--kl-base", o->kl_base,
                  "also run this model (e.g. the FP original) and report the KL divergence from "
                  "it, the top-1 agreement and its perplexity");
  return [o] {
    set_num_threads(o->run.threads);
    const std::string text = read_text_file(o->text, "ppl");
    Tokenizer tokenizer = Tokenizer::load(o->run.model_dir);
    Model model = load_run_model(o->run);
    auto backend = make_inference_backend(o->run);
    const int ctx = o->ctx > 0 ? o->ctx : std::min(2048, model.config.max_position_embeddings);
    std::fprintf(stderr, "ppl: tokenizing %zu bytes...\n", text.size());
    std::vector<int32_t> ids = tokenizer.encode(text, true);
    std::unique_ptr<Model> base;
    if (!o->kl_base.empty()) {
      RunOptions base_run = o->run;
      base_run.model_dir = o->kl_base;
      base = std::make_unique<Model>(load_run_model(base_run));
      size_t cut = std::min<size_t>(text.size(), 4096);  // a sample, cut between characters
      while (cut > 0 && cut < text.size() && (text[cut] & 0xC0) == 0x80) --cut;
      const std::string sample = text.substr(0, cut);
      check(Tokenizer::load(o->kl_base).encode(sample, true) == tokenizer.encode(sample, true),
            "ppl", "--kl-base {} tokenizes the text differently from {}", o->kl_base,
            o->run.model_dir);
    }
    PerplexityResult r = perplexity(model, *backend, ids, ctx, o->max_chunks, true, base.get());
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
      if (base) {
        j["kl"] = r.kl;
        j["top1_agreement"] = r.top1_agreement;
        j["base_ppl"] = r.base_ppl;
        j["kl_base"] = o->kl_base;
      }
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("tokens = %lld, chunks = %lld x %d, scored = %lld, nll = %.6f\n",
                  (long long)r.tokens, (long long)r.chunks, r.ctx, (long long)r.scored, r.nll);
      std::printf("PPL = %.4f\n", r.ppl);
      if (base)
        std::printf(
            "KL(base || model) = %.6f nats/token, top-1 agreement = %.2f%%, base PPL = %.4f\n",
            r.kl, 100 * r.top1_agreement, r.base_ppl);
    }
    return 0;
  };
}

}  // namespace quad::cli
