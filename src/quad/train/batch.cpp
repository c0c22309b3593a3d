#include "quad/train/batch.h"

namespace quad::train {

int Example::num_targets() const {
  int n = 0;
  for (size_t i = 1; i < target.size(); ++i) n += target[i] != 0;
  return n;
}

int PackedBatch::num_targets() const {
  int n = 0;
  for (int32_t l : labels) n += l >= 0;
  return n;
}

PackedBatch pack(const std::vector<const Example*>& examples) {
  PackedBatch b;
  for (const Example* e : examples) {
    const int offset = b.rows(), len = int(e->tokens.size());
    b.segments.push_back({offset, len});
    for (int i = 0; i < len; ++i) {
      b.tokens.push_back(e->tokens[i]);
      b.positions.push_back(i);
      // Row i predicts token i + 1 when that token is a target.
      b.labels.push_back(i + 1 < len && e->target[i + 1] ? e->tokens[i + 1] : -1);
    }
  }
  return b;
}

}  // namespace quad::train
