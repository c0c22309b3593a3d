// `quad finetune` (QUAD-SPEC §7): PEFT of a quantized folder's outlier columns and weight
// scales with AdamW, warm-up + cosine schedule, gradient accumulation to a global batch,
// gradient clipping, checkpoints (end of every epoch, optionally every N steps) and resume.
// The result is written as a quantized folder like any other, its recipe extended with the
// fine-tuning settings.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/io/sharded_writer.h"
#include "quad/train/dataset.h"

namespace quad::train {

struct FinetuneOptions {
  std::string model_dir, data_path, out_dir;
  std::string checkpoint_dir;  // default: <out_dir>.ckpt
  DataOptions data;
  int epochs = 1;
  long max_steps = 0;  // > 0: train exactly this many optimizer steps (looping over the data)
  double lr = 1e-5, min_lr = 0.0;
  long warmup = 50;
  int batch = 128;      // sequences per optimizer step (global batch)
  int micro_batch = 4;  // sequences per forward/backward
  double max_grad_norm = 1.0;
  double weight_decay = 0.0;
  uint64_t seed = 0;
  bool shuffle = true;   // per-epoch shuffle from the seed (the reference keeps file order)
  int val_examples = 0;  // held out from the end of the data; loss reported per epoch
  long save_every = 0;   // extra checkpoints every N steps (0: end of epochs only)
  long stop_after = 0;   // > 0: stop after this many steps with a checkpoint and no output, as
                         // an interrupted run would (time-boxed sessions; resume tests)
  bool resume = false, overwrite = false, progress = true;
  uint64_t max_shard_bytes = kDefaultMaxShardBytes;  // of the output folder's safetensors
  void validate() const;                             // throws quad::Error on absurd settings
};

struct StepLog {
  long step = 0;
  double lr = 0, loss = 0, grad_norm = 0, seconds = 0;
  long tokens = 0;
};

struct FinetuneReport {
  long steps = 0, first_step = 0;  // first_step > 0 after a resume
  long train_examples = 0, train_tokens_seen = 0;
  size_t trainable_params = 0;
  double seconds = 0, tokens_per_second = 0;
  double val_loss_before = -1, val_loss_after = -1;  // −1: no validation set
  bool stopped_early = false;  // stop_after reached: checkpoint written, no output folder
  std::vector<StepLog> log;
};

FinetuneReport finetune(const FinetuneOptions& options, Backend& backend);

}  // namespace quad::train
