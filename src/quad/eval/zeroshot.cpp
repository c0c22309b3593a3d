#include "quad/eval/zeroshot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "quad/core/error.h"
#include "quad/core/progress.h"

namespace quad::eval {

double mean_stderr(const std::vector<double>& values) {
  const size_t n = values.size();
  if (n < 2) return 0;
  double mean = 0;
  for (double v : values) mean += v;
  mean /= double(n);
  double ss = 0;
  for (double v : values) ss += (v - mean) * (v - mean);
  return std::sqrt(ss / double(n - 1)) / std::sqrt(double(n));
}

size_t utf8_length(const std::string& text) {
  size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

int argmax_choice(const std::vector<double>& lls, const std::vector<double>* lengths) {
  int best = 0;
  double best_v = 0;
  for (size_t i = 0; i < lls.size(); ++i) {
    const double v = lengths ? lls[i] / (*lengths)[i] : lls[i];
    if (i == 0 || v > best_v) {
      best = int(i);
      best_v = v;
    }
  }
  return best;
}

TaskResult aggregate(const Task& task, const std::vector<ItemScores>& scores) {
  TaskResult r;
  r.task = task.name;
  r.source = task.source;
  r.items = int64_t(scores.size());
  check(!scores.empty(), "eval", "task {}: no items scored", task.name);
  std::vector<double> acc, acc_norm, ll;
  for (size_t i = 0; i < scores.size(); ++i) {
    const TaskItem& item = task.items[i];
    const std::vector<Score>& s = scores[i].scores;
    if (task.kind == TaskKind::kLastWord) {
      acc.push_back(s.at(0).greedy ? 1.0 : 0.0);
      ll.push_back(s.at(0).loglik);
      continue;
    }
    std::vector<double> lls, lengths;
    for (size_t c = 0; c < s.size(); ++c) {
      lls.push_back(s[c].loglik);
      lengths.push_back(double(std::max<size_t>(1, utf8_length(item.choices[c]))));
    }
    acc.push_back(argmax_choice(lls) == item.gold ? 1.0 : 0.0);
    acc_norm.push_back(argmax_choice(lls, &lengths) == item.gold ? 1.0 : 0.0);
  }
  auto mean = [](const std::vector<double>& v) {
    double m = 0;
    for (double x : v) m += x;
    return m / double(v.size());
  };
  r.acc = {mean(acc), mean_stderr(acc)};
  if (task.kind == TaskKind::kMultipleChoice && task.has_acc_norm) {
    r.has_acc_norm = true;
    r.acc_norm = {mean(acc_norm), mean_stderr(acc_norm)};
  }
  if (task.kind == TaskKind::kLastWord) {
    r.has_ppl = true;
    r.ppl.value = std::exp(-mean(ll));
    r.ppl.se = r.ppl.value * mean_stderr(ll);  // delta method: d exp(-m) = exp(-m) dm
  }
  return r;
}

TaskResult evaluate_task(const Task& task, Model& model, Backend& backend,
                         const Tokenizer& tokenizer, const EvalOptions& options) {
  const int64_t n = options.limit > 0 ? std::min<int64_t>(options.limit, int64_t(task.items.size()))
                                      : int64_t(task.items.size());
  Scorer scorer(model, backend);
  Progress progress("eval " + task.name, n, "items", options.progress);
  std::vector<ItemScores> scores;
  scores.reserve(size_t(n));
  double correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const TaskItem& item = task.items[size_t(i)];
    std::vector<TokenizedRequest> requests;
    for (const Request& req : item.requests)
      requests.push_back(encode_request(tokenizer, req, options.bos));
    ItemScores s{scorer.score(requests)};
    if (task.kind == TaskKind::kLastWord) {
      correct += s.scores[0].greedy;
    } else {
      std::vector<double> lls;
      for (const Score& x : s.scores) lls.push_back(x.loglik);
      correct += argmax_choice(lls) == item.gold;
    }
    scores.push_back(std::move(s));
    progress.update(i + 1, fmt::format("acc {:.4f}", correct / double(i + 1)));
  }
  TaskResult r = aggregate(task, scores);
  r.seconds = progress.elapsed_seconds();
  progress.finish(fmt::format("{:.0f} tokens/s", scorer.tokens_run() / std::max(r.seconds, 1e-9)));
  return r;
}

double paper_average(const std::vector<TaskResult>& results) {
  if (results.empty()) return 0;
  double sum = 0;
  for (const TaskResult& r : results) sum += r.paper_metric();
  return sum / double(results.size());
}

}  // namespace quad::eval
