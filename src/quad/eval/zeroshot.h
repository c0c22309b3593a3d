// Zero-shot evaluation: scores each task's items and aggregates the metrics lm-evaluation-
// harness 0.4 reports (acc, acc_norm, lambada's perplexity) with their standard errors.
#pragma once

#include <string>
#include <vector>

#include "quad/eval/loglikelihood.h"
#include "quad/eval/tasks.h"

namespace quad::eval {

// Per-item results: the log-likelihood of each request and whether it was greedy.
struct ItemScores {
  std::vector<Score> scores;
};

struct Metric {
  double value = 0;
  double se = 0;  // standard error
};

struct TaskResult {
  std::string task;
  std::string source;
  int64_t items = 0;
  Metric acc;
  bool has_acc_norm = false;
  Metric acc_norm;
  bool has_ppl = false;
  Metric ppl;  // lambada: exp(-mean per-item log-likelihood); stderr by the delta method
  double seconds = 0;
  // The number the QUAD paper averages: acc_norm where the task has it, else acc.
  double paper_metric() const { return has_acc_norm ? acc_norm.value : acc.value; }
};

// Sample standard deviation (n - 1) over sqrt(n): lm-eval's mean_stderr. For 0/1 values with
// mean p this is sqrt(p (1 - p) / (n - 1)). Zero for n < 2.
double mean_stderr(const std::vector<double>& values);

// Number of Unicode code points of UTF-8 text (Python's len(str), which lm-eval's acc_norm
// divides by).
size_t utf8_length(const std::string& text);

// Index of the first maximum of `lls`, or of lls[i] / lengths[i] when `lengths` is given.
int argmax_choice(const std::vector<double>& lls, const std::vector<double>* lengths = nullptr);

// acc / acc_norm / perplexity of a task from its items' scores (same order as task.items).
TaskResult aggregate(const Task& task, const std::vector<ItemScores>& scores);

struct EvalOptions {
  int64_t limit = 0;  // first N items of each task (0: all)
  BosMode bos = BosMode::kAuto;
  bool progress = true;
};

// Runs one task (its first `limit` items).
TaskResult evaluate_task(const Task& task, Model& model, Backend& backend,
                         const Tokenizer& tokenizer, const EvalOptions& options);

// Mean of paper_metric() over the results.
double paper_average(const std::vector<TaskResult>& results);

}  // namespace quad::eval
