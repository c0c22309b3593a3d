#include "quad/train/finetune.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "quad/core/error.h"
#include "quad/core/progress.h"
#include "quad/core/random.h"
#include "quad/io/tokenizer.h"
#include "quad/model/quantized_folder.h"
#include "quad/quant/calibration.h"
#include "quad/train/checkpoint.h"
#include "quad/train/model_grad.h"
#include "quad/train/optimizer.h"

namespace quad::train {

namespace fs = std::filesystem;
using nlohmann::json;

void FinetuneOptions::validate() const {
  check(!model_dir.empty() && !data_path.empty() && !out_dir.empty(), "finetune",
        "-m, --data and -o are required");
  check(epochs >= 1 && epochs <= 1000, "finetune", "--epochs must be in [1, 1000] (got {})",
        epochs);
  check(max_steps >= 0, "finetune", "--max-steps must be >= 0 (got {})", max_steps);
  check(lr > 0 && lr < 1, "finetune", "--lr must be in (0, 1) (got {})", lr);
  check(min_lr >= 0 && min_lr <= lr, "finetune", "--min-lr must be in [0, --lr] (got {})", min_lr);
  check(warmup >= 0, "finetune", "--warmup must be >= 0 (got {})", warmup);
  check(batch >= 1, "finetune", "--batch must be >= 1 (got {})", batch);
  check(micro_batch >= 1 && micro_batch <= batch, "finetune",
        "--micro-batch must be in [1, --batch] (got {})", micro_batch);
  check(data.seqlen >= 2 && data.seqlen <= 1 << 20, "finetune", "--seqlen must be in [2, 2^20]");
  check(max_grad_norm >= 0, "finetune", "--clip must be >= 0 (0: off)");
  check(weight_decay >= 0 && weight_decay < 1, "finetune", "--weight-decay must be in [0, 1)");
  check(val_examples >= 0, "finetune", "--val must be >= 0");
  check(save_every >= 0, "finetune", "--save-every must be >= 0");
  check(stop_after >= 0, "finetune", "--stop-after must be >= 0");
}

namespace {

// The settings a resumed run must share with the run that wrote the checkpoint.
std::string fingerprint(const FinetuneOptions& o, const std::string& data_sha, long examples) {
  return json{{"data_sha256", data_sha},
              {"examples", examples},
              {"format", data_format_name(o.data.format)},
              {"seqlen", o.data.seqlen},
              {"mask_prompt", o.data.mask_prompt},
              {"epochs", o.epochs},
              {"max_steps", o.max_steps},
              {"lr", o.lr},
              {"min_lr", o.min_lr},
              {"warmup", o.warmup},
              {"batch", o.batch},
              {"seed", o.seed},
              {"shuffle", o.shuffle},
              {"val", o.val_examples}}
      .dump();
}

// The example order of epoch e: a seeded Fisher–Yates shuffle, or file order.
std::vector<int> epoch_order(size_t n, uint64_t seed, long epoch, bool shuffle) {
  std::vector<int> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = int(i);
  if (!shuffle) return order;
  Rng rng(seed * 0x9e3779b97f4a7c15ull + uint64_t(epoch) + 1);
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  return order;
}

// Mean loss per predicted token over examples, micro-batch by micro-batch.
double mean_loss(ModelGrad& mg, const std::vector<Example>& examples, int micro_batch) {
  LossSum total;
  for (size_t a = 0; a < examples.size(); a += micro_batch) {
    std::vector<const Example*> mb;
    for (size_t i = a; i < std::min(examples.size(), a + micro_batch); ++i)
      mb.push_back(&examples[i]);
    const LossSum s = mg.forward_loss(pack(mb));
    total.sum += s.sum;
    total.targets += s.targets;
  }
  return total.mean();
}

json settings_json(const FinetuneOptions& o, const Dataset& d, long steps) {
  return {{"data", fs::path(o.data_path).filename().string()},
          {"format", data_format_name(d.format)},
          {"examples", long(d.examples.size())},
          {"seqlen", o.data.seqlen},
          {"mask_prompt", o.data.mask_prompt || d.format == DataFormat::Gsm8k},
          {"steps", steps},
          {"epochs", o.epochs},
          {"lr", o.lr},
          {"min_lr", o.min_lr},
          {"warmup", o.warmup},
          {"batch", o.batch},
          {"micro_batch", o.micro_batch},
          {"clip", o.max_grad_norm},
          {"weight_decay", o.weight_decay},
          {"seed", o.seed},
          {"trainable", "w_outlier (q, k, v, gate, up) + weight_scales (all linears)"}};
}

}  // namespace

FinetuneReport finetune(const FinetuneOptions& opt_in, Backend& backend) {
  FinetuneOptions opt = opt_in;
  opt.validate();
  if (opt.checkpoint_dir.empty())
    opt.checkpoint_dir = fs::path(opt.out_dir).lexically_normal().string() + ".ckpt";
  check(opt.overwrite || !fs::exists(opt.out_dir), "finetune",
        "{} already exists (choose another -o or pass --force to replace it)", opt.out_dir);
  check(is_quantized_folder(opt.model_dir), "finetune",
        "{} is not a quantized folder: run `quad quantize` first (fine-tuning trains the "
        "quantized model's outlier weights and scales)",
        opt.model_dir);

  // Model, recipe and data.
  Model model = Model::load(opt.model_dir);
  json cfg = json::parse(std::ifstream(fs::path(opt.model_dir) / "config.json"));
  Recipe recipe = Recipe::from_json(cfg["quantization_config"], opt.model_dir + "/config.json");
  const Tokenizer tokenizer = Tokenizer::load(opt.model_dir);
  Dataset data = load_dataset(opt.data_path, tokenizer, opt.data);
  opt.data.format = data.format;
  check(opt.val_examples < int(data.examples.size()), "finetune",
        "--val {} leaves no training examples (the data has {})", opt.val_examples,
        data.examples.size());
  std::vector<Example> val(data.examples.end() - opt.val_examples, data.examples.end());
  data.examples.resize(data.examples.size() - opt.val_examples);
  const long n_train = long(data.examples.size());
  const long steps_per_epoch = (n_train + opt.batch - 1) / opt.batch;
  const long total_steps = opt.max_steps > 0 ? opt.max_steps : opt.epochs * steps_per_epoch;
  model.ensure_positions(opt.data.seqlen);

  TrainableModel tm(model);
  ModelGrad mg(tm, backend);
  FinetuneReport report;
  report.train_examples = n_train;
  report.trainable_params = tm.num_trainable();
  fmt::print(stderr,
             "finetune: {} training examples ({} tokens, format {}{}), {} held out; {} trainable "
             "parameters; {} steps of {} sequences ({} per micro-batch)\n",
             n_train, data.num_tokens(), data_format_name(data.format),
             data.dropped ? fmt::format(", {} dropped as too long", data.dropped) : "", val.size(),
             report.trainable_params, total_steps, opt.batch, opt.micro_batch);

  // Resume, or refuse to silently overwrite a previous run's checkpoint.
  CheckpointState state;
  state.fingerprint = fingerprint(opt, sha256_file(opt.data_path), long(data.examples.size()));
  const std::string fp = state.fingerprint;
  const bool has_ckpt = fs::exists(fs::path(opt.checkpoint_dir) / "checkpoint.json");
  if (opt.resume && has_ckpt) {
    load_checkpoint(opt.checkpoint_dir, tm, state);
    check(state.fingerprint == fp, "finetune",
          "the checkpoint in {} was written with different settings or data; resume with the "
          "same options, or remove it to start over",
          opt.checkpoint_dir);
    fmt::print(stderr, "finetune: resuming from {} at step {}\n", opt.checkpoint_dir, state.step);
  } else {
    check(!has_ckpt, "finetune",
          "{} holds a checkpoint of an earlier run: pass --resume to continue it, or remove it",
          opt.checkpoint_dir);
    state.step = 0;
  }
  report.first_step = state.step;
  const fs::path log_path = fs::path(opt.checkpoint_dir) / "log.jsonl";
  fs::create_directories(opt.checkpoint_dir);
  std::ofstream log(log_path, state.step > 0 ? std::ios::app : std::ios::trunc);

  if (!val.empty()) {
    report.val_loss_before = mean_loss(mg, val, opt.micro_batch);
    fmt::print(stderr, "finetune: validation loss {:.4f} before step {}\n", report.val_loss_before,
               state.step);
  }

  const AdamWConfig adam{0.9, 0.999, 1e-8, opt.weight_decay};
  Progress progress("finetune", total_steps, "steps", opt.progress);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int> order;
  long order_epoch = -1;
  for (long step = state.step; step < total_steps; ++step) {
    const long epoch = step / steps_per_epoch;
    if (epoch != order_epoch) {
      order = epoch_order(data.examples.size(), opt.seed, epoch, opt.shuffle);
      order_epoch = epoch;
    }
    const long first = (step % steps_per_epoch) * opt.batch;
    const long last = std::min(n_train, first + opt.batch);
    int targets = 0;
    long tokens = 0;
    for (long i = first; i < last; ++i) {
      targets += data.examples[order[i]].num_targets();
      tokens += long(data.examples[order[i]].tokens.size());
    }
    LossSum loss;
    if (targets > 0) {
      for (long a = first; a < last; a += opt.micro_batch) {
        std::vector<const Example*> mb;
        for (long i = a; i < std::min(last, a + opt.micro_batch); ++i)
          mb.push_back(&data.examples[order[i]]);
        const LossSum s = mg.forward_backward(pack(mb), 1.0f / float(targets));
        loss.sum += s.sum;
        loss.targets += s.targets;
      }
    }
    StepLog entry;
    entry.step = step + 1;
    entry.lr = learning_rate(step, total_steps, opt.warmup, opt.lr, opt.min_lr);
    entry.grad_norm = clip_grad_norm(tm.params(), opt.max_grad_norm);
    adamw_step(tm.params(), adam, entry.lr, step + 1);
    tm.refresh();
    tm.zero_grad();
    entry.loss = loss.mean();
    entry.tokens = tokens;
    entry.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    report.train_tokens_seen += tokens;
    report.log.push_back(entry);
    log << json{{"step", entry.step},      {"epoch", epoch + 1},           {"lr", entry.lr},
                {"loss", entry.loss},      {"grad_norm", entry.grad_norm}, {"tokens", tokens},
                {"seconds", entry.seconds}}
               .dump()
        << "\n"
        << std::flush;
    progress.update(step + 1, fmt::format("loss {:.4f} lr {:.2e}", entry.loss, entry.lr));
    state.step = step + 1;
    const bool epoch_end = state.step % steps_per_epoch == 0;
    const bool stop =
        opt.stop_after > 0 && state.step == opt.stop_after && state.step < total_steps;
    if (epoch_end || stop || (opt.save_every > 0 && state.step % opt.save_every == 0))
      save_checkpoint(opt.checkpoint_dir, tm, state);
    if (stop) {
      report.stopped_early = true;
      break;
    }
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report.steps = state.step;
  report.tokens_per_second = report.seconds > 0 ? report.train_tokens_seen / report.seconds : 0;
  progress.finish(fmt::format("{:.0f} tokens/s", report.tokens_per_second));
  if (report.stopped_early) {
    fmt::print(stderr, "finetune: stopped after step {} of {}; checkpoint in {} (--resume)\n",
               state.step, total_steps, opt.checkpoint_dir);
    return report;
  }
  if (!val.empty()) {
    report.val_loss_after = mean_loss(mg, val, opt.micro_batch);
    fmt::print(stderr, "finetune: validation loss {:.4f} after step {}\n", report.val_loss_after,
               total_steps);
  }

  // The output folder: the same format, scales and outlier columns rounded to their storage
  // precision, the recipe extended with this run's settings.
  round_to_storage_precision(model, recipe);
  json runs = recipe.finetune_json.empty() ? json::array() : json::parse(recipe.finetune_json);
  runs.push_back(settings_json(opt, data, total_steps));
  recipe.finetune_json = runs.dump();
  save_quantized(model, recipe, opt.model_dir, opt.out_dir, opt.overwrite, opt.max_shard_bytes);
  log.close();
  std::error_code ec;
  fs::copy_file(log_path, fs::path(opt.out_dir) / "finetune_log.jsonl",
                fs::copy_options::overwrite_existing, ec);
  fs::remove_all(opt.checkpoint_dir, ec);
  return report;
}

}  // namespace quad::train
