// quad generate -m DIR -p TEXT [-n N] [--temp T] [--top-p P] [--seed S] [--json]
#include <chrono>
#include <nlohmann/json.hpp>

#include "quad/backend/backend.h"
#include "quad/cli/commands.h"
#include "quad/core/error.h"
#include "quad/io/tokenizer.h"
#include "quad/model/model.h"
#include "quad/model/sampler.h"

namespace quad::cli {

Runner add_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "generate text from a prompt (streamed)");
  struct Opts {
    RunOptions run;
    std::string prompt;
    int n = 128;
    SamplerOptions sampling;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  add_run_options(*cmd, o->run);
  add_dtype_option(*cmd, o->run);
  cmd->add_option("-p,--prompt", o->prompt, "prompt text")->required();
  cmd->add_option("-n,--n-predict", o->n, "tokens to generate")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--temp", o->sampling.temperature, "temperature (0: greedy)")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-p", o->sampling.top_p, "nucleus sampling mass")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", o->sampling.seed, "sampling seed");
  cmd->add_flag("--json", o->json, "print one JSON object (ids and text) instead of streaming");
  return [o] {
    set_num_threads(o->run.threads);
    Tokenizer tokenizer = Tokenizer::load(o->run.model_dir);
    Model model = load_run_model(o->run);
    auto backend = make_inference_backend(o->run);
    Sampler sampler(o->sampling);
    std::vector<int32_t> prompt_ids = tokenizer.encode(o->prompt, true);
    check(!prompt_ids.empty(), "generate", "the prompt encodes to no tokens");
    const int capacity = int(prompt_ids.size()) + o->n;
    model.ensure_positions(capacity);
    KVCache cache(model.config, capacity, backend->memory());
    ForwardScratch scratch;
    const int vocab = model.config.vocab_size;

    if (!o->json) {
      std::printf("%s", o->prompt.c_str());
      std::fflush(stdout);
    }
    auto t0 = std::chrono::steady_clock::now();
    // The logits stay where the backend computed them; the sampler chooses there.
    const float* logits = forward_last_logits(model, *backend, prompt_ids.data(),
                                              int(prompt_ids.size()), 0, cache, scratch);
    auto t1 = std::chrono::steady_clock::now();
    StreamDecoder stream(tokenizer);
    std::vector<int32_t> generated;
    int pos = int(prompt_ids.size());
    for (int i = 0; i < o->n; ++i) {
      int32_t next = sampler.sample(*backend, logits, vocab);
      generated.push_back(next);
      if (!o->json) {
        std::printf("%s", stream.push(next).c_str());
        std::fflush(stdout);
      }
      if (model.config.is_eos(next) || next == tokenizer.eos_id()) break;
      if (i + 1 == o->n) break;
      logits = forward_last_logits(model, *backend, &next, 1, pos++, cache, scratch);
    }
    auto t2 = std::chrono::steady_clock::now();
    const double prefill_s = std::chrono::duration<double>(t1 - t0).count();
    const double decode_s = std::chrono::duration<double>(t2 - t1).count();
    if (o->json) {
      nlohmann::json j = {{"prompt_ids", prompt_ids},
                          {"ids", generated},
                          {"text", tokenizer.decode(generated, true)}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s\n", stream.flush().c_str());
    }
    std::fprintf(stderr, "generate: prompt %zu tokens in %.3fs, %zu tokens in %.3fs (%.1f t/s)\n",
                 prompt_ids.size(), prefill_s, generated.size(), decode_s,
                 generated.size() / std::max(decode_s, 1e-9));
    return 0;
  };
}

}  // namespace quad::cli
