// quad finetune: PEFT of a quantized folder (QUAD-SPEC §7); see train/finetune.h.
#include <filesystem>

#include "quad/cli/commands.h"
#include "quad/core/error.h"
#include "quad/train/finetune.h"

namespace quad::cli {

Runner add_finetune(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "finetune", "fine-tune a quantized folder's outlier weights and scales (QUAD PEFT)");
  struct Opts {
    RunOptions run;
    train::FinetuneOptions ft;
    std::string format = "auto";
    bool no_shuffle = false;
  };
  auto o = std::make_shared<Opts>();
  train::FinetuneOptions& f = o->ft;
  add_run_options(*cmd, o->run);
  cmd->add_option("--data", f.data_path,
                  "training data: Alpaca .json, GSM8K .jsonl, jsonl {\"text\"} or plain text")
      ->required();
  cmd->add_option("-o,--output", f.out_dir, "output folder (written atomically)")->required();
  cmd->add_option("--format", o->format, "data format (auto: from the file)")
      ->check(CLI::IsMember({"auto", "alpaca", "gsm8k", "text"}));
  cmd->add_option("--epochs", f.epochs, "passes over the data")->capture_default_str();
  cmd->add_option("--max-steps", f.max_steps, "optimizer steps (overrides --epochs when > 0)");
  cmd->add_option("--lr", f.lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--min-lr", f.min_lr, "learning rate at the end of the cosine decay");
  cmd->add_option("--warmup", f.warmup, "linear warm-up steps")->capture_default_str();
  cmd->add_option("--batch", f.batch, "sequences per optimizer step")->capture_default_str();
  cmd->add_option("--micro-batch", f.micro_batch, "sequences per forward/backward pass")
      ->capture_default_str();
  cmd->add_option("--seqlen", f.data.seqlen, "maximum tokens per sequence")->capture_default_str();
  cmd->add_flag("--mask-prompt", f.data.mask_prompt,
                "Alpaca: no loss on the prompt (GSM8K always masks it)");
  cmd->add_option("--clip", f.max_grad_norm, "gradient-norm clipping (0: off)")
      ->capture_default_str();
  cmd->add_option("--weight-decay", f.weight_decay, "AdamW weight decay");
  cmd->add_option("--seed", f.seed, "seed for the data order");
  cmd->add_flag("--no-shuffle", o->no_shuffle, "keep the file order (as the reference code)");
  cmd->add_option("--val", f.val_examples, "examples held out from the end for validation");
  cmd->add_option("--save-every", f.save_every, "also checkpoint every N steps");
  cmd->add_option("--checkpoint-dir", f.checkpoint_dir, "checkpoints (default: OUTPUT.ckpt)");
  cmd->add_option("--stop-after", f.stop_after,
                  "stop after N steps with a checkpoint and no output (continue with --resume)");
  cmd->add_flag("--resume", f.resume, "continue from the checkpoint of an interrupted run");
  cmd->add_flag("--force", f.overwrite, "replace an existing output folder");
  add_shard_size_option(*cmd, f.max_shard_bytes);
  return [o] {
    train::FinetuneOptions& f = o->ft;
    f.model_dir = o->run.model_dir;
    f.data.format = train::parse_data_format(o->format);
    f.shuffle = !o->no_shuffle;
    check(std::filesystem::absolute(f.out_dir) != std::filesystem::absolute(f.model_dir),
          "finetune", "-o must differ from -m");
    set_num_threads(o->run.threads);
    auto backend = make_run_backend(o->run, false);  // training ops: CPU
    const train::FinetuneReport r = train::finetune(f, *backend);
    fmt::print("steps {} (from {}), {} tokens in {:.1f} s: {:.0f} tokens/s\n", r.steps,
               r.first_step, r.train_tokens_seen, r.seconds, r.tokens_per_second);
    if (r.stopped_early) {
      fmt::print("stopped early; continue with --resume\n");
      return 0;
    }
    if (!r.log.empty()) fmt::print("final train loss {:.4f}\n", r.log.back().loss);
    if (r.val_loss_before >= 0)
      fmt::print("validation loss {:.4f} -> {:.4f}\n", r.val_loss_before, r.val_loss_after);
    fmt::print("wrote {}\n", f.out_dir);
    return 0;
  };
}

}  // namespace quad::cli
