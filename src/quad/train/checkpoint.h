// Training checkpoints: every trainable parameter with its AdamW moments (one safetensors file)
// plus the position in the schedule and a fingerprint of the settings that must not change
// across a resume (JSON). Both files are written atomically.
#pragma once

#include <string>

#include "quad/train/trainable.h"

namespace quad::train {

struct CheckpointState {
  long step = 0;            // optimizer steps done
  std::string fingerprint;  // settings that a resume must match
};

void save_checkpoint(const std::string& dir, const TrainableModel& model,
                     const CheckpointState& state);
// False if `dir` holds no checkpoint; throws quad::Error if it holds one that is damaged or
// does not fit the model.
bool load_checkpoint(const std::string& dir, TrainableModel& model, CheckpointState& state);

}  // namespace quad::train
