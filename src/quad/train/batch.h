// Training examples and the packed micro-batches the model runs: several sequences stacked
// row-wise without padding; row-local ops (linears, norms) see one matrix, attention and RoPE
// run per segment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace quad::train {

// One training sequence. target[i] says whether token i is predicted (and counted in the loss)
// from the tokens before it; target[0] is ignored (nothing precedes it).
struct Example {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> target;
  int num_targets() const;  // predicted tokens (target[1..])
};

struct PackedBatch {
  std::vector<int32_t> tokens;     // (rows)
  std::vector<int32_t> positions;  // (rows) position within the row's sequence
  std::vector<int32_t> labels;     // (rows) next token to predict from this row, or -1
  struct Segment {
    int offset = 0, length = 0;
  };
  std::vector<Segment> segments;
  int rows() const { return int(tokens.size()); }
  int num_targets() const;
};

PackedBatch pack(const std::vector<const Example*>& examples);

}  // namespace quad::train
