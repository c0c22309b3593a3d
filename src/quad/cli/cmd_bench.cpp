// quad bench -m DIR | --random SHAPE [--quant fp32|w4a4|w4a8] [--dtype fp32|bf16] [-p 512]
// [-n 128] [-r 3] [-t T]
// [--json]: llama-bench-style speed table.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "quad/backend/backend.h"
#include "quad/cli/commands.h"
#include "quad/core/error.h"
#include "quad/model/model.h"
#include "quad/quant/random_model.h"

namespace quad::cli {

namespace {

struct Stat {
  double mean = 0, sd = 0;
};

Stat stats(const std::vector<double>& v) {
  Stat s;
  for (double x : v) s.mean += x;
  s.mean /= v.size();
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / (v.size() - 1)) : 0;
  return s;
}

}  // namespace

Runner add_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "prefill and decode speed (tokens/s)");
  struct Opts {
    RunOptions run;
    int prompt = 512, gen = 128, reps = 3;
    bool json = false;
    std::string random, quant = "fp32";
  };
  auto o = std::make_shared<Opts>();
  auto* model_opt = add_run_options(*cmd, o->run, false);
  add_dtype_option(*cmd, o->run);
  auto* random_opt = cmd->add_option(
                            "--random", o->random,
                            "a random-weight model of a named shape instead of -m (" +
                                [] {
                                  std::string s;
                                  for (const auto& n : random_shape_names())
                                    s += (s.empty() ? "" : ", ") + n;
                                  return s;
                                }() +
                                "); for speed only")
                         ->excludes(model_opt);
  cmd->add_option("--quant", o->quant,
                  "with --random: fp32, or the QUAD folder structure (r = 64) with w4a4 "
                  "(4-bit o/down inputs too) or w4a8 (8-bit o/down inputs)")
      ->check(CLI::IsMember({"fp32", "w4a4", "w4a8"}))
      ->needs(random_opt);
  cmd->add_option("-p,--n-prompt", o->prompt, "prompt tokens (pp test; 0 skips)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-n,--n-gen", o->gen, "generated tokens (tg test; 0 skips)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-r,--repetitions", o->reps, "repetitions per test")->check(CLI::Range(1, 1000));
  cmd->add_flag("--json", o->json, "JSON lines instead of the table");
  return [o] {
    set_num_threads(o->run.threads);
    check(!o->run.model_dir.empty() || !o->random.empty(), "bench",
          "give a model folder (-m DIR) or a random shape (--random SHAPE)");
    Model model;
    std::string name;
    if (o->random.empty()) {
      model = load_run_model(o->run);
      std::filesystem::path dir(o->run.model_dir);
      if (!dir.has_filename()) dir = dir.parent_path();  // "models/x/" names x
      name = dir.filename().string();
    } else {
      RandomQuant rq;
      rq.quantized = o->quant != "fp32";
      rq.od_bits = o->quant == "w4a4" ? 4 : 8;
      const ModelConfig config = random_shape_config(o->random);
      std::fprintf(stderr, "bench: building a random-weight %s model (%s)...\n", o->random.c_str(),
                   o->quant.c_str());
      model = make_random_model(config, rq);
      apply_dtype(model, o->run);
      name = fmt::format("random {} {}", o->random,
                         o->quant == "fp32"   ? (o->run.dtype == "bf16" ? "BF16" : "FP32")
                         : o->quant == "w4a4" ? "QUAD W4A4"
                                              : "QUAD W4A4/A8");
    }
    auto backend = make_inference_backend(o->run);
    const int capacity = std::max(o->prompt, o->gen);
    model.ensure_positions(capacity);
    KVCache cache(model.config, std::max(capacity, 1), backend->memory());
    ForwardScratch scratch;
    std::mt19937 rng(0);
    std::uniform_int_distribution<int32_t> token(0, model.config.vocab_size - 1);
    std::vector<int32_t> ids(capacity);
    for (auto& id : ids) id = token(rng);

    auto time_it = [](auto&& fn) {
      auto t0 = std::chrono::steady_clock::now();
      fn();
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    const double params = model.num_params();
    const double size_mib = model.weight_bytes() / 1048576.0;  // as held in memory
    if (!o->json) {
      fmt::print("| model | size | params | backend | threads | test | t/s |\n");
      fmt::print("| --- | ---: | ---: | --- | ---: | --- | ---: |\n");
    }
    auto report = [&](const std::string& test, const std::vector<double>& rates) {
      Stat s = stats(rates);
      if (o->json) {
        nlohmann::json j = {{"model", name},
                            {"size_mib", size_mib},
                            {"params", params},
                            {"backend", backend->name()},
                            {"threads", num_threads()},
                            {"test", test},
                            {"tps_mean", s.mean},
                            {"tps_sd", s.sd},
                            {"reps", rates.size()}};
        if (const size_t gpu = backend->device_memory_used(); gpu > 0)
          j["gpu_memory_mib"] = double(gpu) / 1048576.0;
        fmt::print("{}\n", j.dump());
      } else {
        fmt::print("| {} | {:.2f} MiB | {:.2f} M | {} | {} | {} | {:.2f} ± {:.2f} |\n", name,
                   size_mib, params / 1e6, backend->name(), num_threads(), test, s.mean, s.sd);
      }
      std::fflush(stdout);
    };
    // A pass as `quad generate` runs it: the last position's logits, then the greedy choice of
    // the next token where they are (Backend::sample_token; on cuda only the token comes back).
    // The inputs are the fixed random ids, so every run does the same work.
    const int vocab = model.config.vocab_size;
    auto pass = [&](const int32_t* tokens, int n, int pos0) {
      const float* logits = forward_last_logits(model, *backend, tokens, n, pos0, cache, scratch);
      return backend->sample_token(logits, vocab, 0.0f, 1.0f, 0.0);
    };
    // Warm-up run at the prompt's size (page in or upload the weights, grow every buffer to
    // what the timed runs use).
    pass(ids.data(), o->prompt > 0 ? o->prompt : std::min(capacity, 16), 0);
    if (o->prompt > 0) {
      std::vector<double> rates;
      for (int r = 0; r < o->reps; ++r)
        rates.push_back(o->prompt / time_it([&] { pass(ids.data(), o->prompt, 0); }));
      report(fmt::format("pp{}", o->prompt), rates);
    }
    if (o->gen > 0) {
      std::vector<double> rates;
      for (int r = 0; r < o->reps; ++r)
        rates.push_back(o->gen / time_it([&] {
                          for (int i = 0; i < o->gen; ++i) pass(ids.data() + i, 1, i);
                        }));
      report(fmt::format("tg{}", o->gen), rates);
    }
    // Device allocations only grow during the run, so what is in use now is its peak.
    if (const size_t gpu = backend->device_memory_used(); gpu > 0 && !o->json)
      fmt::print(
          "\nGPU memory in use after the runs (their peak, incl. the CUDA context): {:.0f} "
          "MiB\n",
          double(gpu) / 1048576.0);
    return 0;
  };
}

}  // namespace quad::cli
