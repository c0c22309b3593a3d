// Cross-entropy of next-token prediction, and its gradient with respect to the logits.
#pragma once

#include <cstdint>

namespace quad::train {

// For each of the n rows of logits (n, vocab) with labels[i] >= 0: adds −log softmax(row)[label]
// to the returned sum and overwrites the row with scale·(softmax(row) − onehot(label)); rows
// with label −1 get a zero gradient. The log-sum-exp is computed in double.
double cross_entropy_backward(float* logits, const int32_t* labels, int n, int vocab, float scale);
// The loss alone (logits untouched).
double cross_entropy(const float* logits, const int32_t* labels, int n, int vocab);

}  // namespace quad::train
