// quad eval -m DIR --tasks a,b,c [--data DIR] [--limit N] [--bos auto|on|off] [--json]
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "quad/backend/backend.h"
#include "quad/cli/commands.h"
#include "quad/core/error.h"
#include "quad/eval/zeroshot.h"
#include "quad/io/tokenizer.h"
#include "quad/model/model.h"

namespace quad::cli {

namespace {

std::string default_data_dir() {
  const char* env = std::getenv("QUAD_ASSETS");
  std::string assets = env && *env ? env : "../shared/assets";
  return assets + "/data/zeroshot";
}

std::vector<std::string> split_tasks(const std::string& list) {
  std::vector<std::string> names;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    std::string name = list.substr(start, comma - start);
    check(!name.empty(), "eval", "--tasks \"{}\" has an empty task name", list);
    names.push_back(name == "all" ? "" : name);
    start = comma + 1;
  }
  std::vector<std::string> out;
  for (const std::string& n : names) {
    if (!n.empty()) {
      out.push_back(n);
      continue;
    }
    for (const std::string& b : eval::builtin_task_names()) out.push_back(b);
  }
  return out;
}

std::string metric(const eval::Metric& m) {
  return fmt::format("{:.4f} ± {:.4f}", m.value, m.se);
}

}  // namespace

Runner add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "eval", "zero-shot accuracy on multiple-choice tasks, scored as lm-evaluation-harness does");
  struct Opts {
    RunOptions run;
    std::string tasks, data, bos = "auto";
    int64_t limit = 0;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  add_run_options(*cmd, o->run);
  add_dtype_option(*cmd, o->run);
  cmd->add_option("--tasks", o->tasks,
                  "comma-separated: piqa, hellaswag, arc_easy, arc_challenge, winogrande, "
                  "lambada_openai, openbookqa, boolq, social_iqa, all, or FILE.jsonl")
      ->required();
  cmd->add_option("--data", o->data, "folder of the task files")
      ->default_str("$QUAD_ASSETS/data/zeroshot");
  cmd->add_option("--limit", o->limit, "score only the first N items of each task (0: all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--bos", o->bos, "prepend BOS: auto (as the tokenizer does by default), on, off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_flag("--json", o->json, "print one JSON object instead of the table");
  return [o] {
    set_num_threads(o->run.threads);
    const std::string data = o->data.empty() ? default_data_dir() : o->data;
    std::vector<eval::Task> tasks;
    for (const std::string& name : split_tasks(o->tasks))
      tasks.push_back(eval::load_task(name, data));
    Tokenizer tokenizer = Tokenizer::load(o->run.model_dir);
    Model model = load_run_model(o->run);
    auto backend = make_inference_backend(o->run);
    eval::EvalOptions options;
    options.limit = o->limit;
    options.bos = o->bos == "on"    ? eval::BosMode::kOn
                  : o->bos == "off" ? eval::BosMode::kOff
                                    : eval::BosMode::kAuto;
    std::vector<eval::TaskResult> results;
    for (const eval::Task& task : tasks)
      results.push_back(eval::evaluate_task(task, model, *backend, tokenizer, options));
    const double average = eval::paper_average(results);
    if (o->json) {
      nlohmann::json j = {{"model", o->run.model_dir},  {"data", data},
                          {"limit", o->limit},          {"bos", o->bos},
                          {"backend", backend->name()}, {"threads", num_threads()},
                          {"average", average},         {"tasks", nlohmann::json::array()}};
      for (const eval::TaskResult& r : results) {
        nlohmann::json t = {{"task", r.task},
                            {"source", r.source},
                            {"items", r.items},
                            {"acc", r.acc.value},
                            {"acc_stderr", r.acc.se},
                            {"seconds", r.seconds},
                            {"paper_metric", r.paper_metric()}};
        if (r.has_acc_norm) {
          t["acc_norm"] = r.acc_norm.value;
          t["acc_norm_stderr"] = r.acc_norm.se;
        }
        if (r.has_ppl) {
          t["perplexity"] = r.ppl.value;
          t["perplexity_stderr"] = r.ppl.se;
        }
        j["tasks"].push_back(t);
      }
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("| task | items | acc | acc_norm | perplexity |\n|---|---:|---|---|---|\n");
      for (const eval::TaskResult& r : results)
        std::printf("| %s | %lld | %s | %s | %s |\n", r.task.c_str(), (long long)r.items,
                    metric(r.acc).c_str(), r.has_acc_norm ? metric(r.acc_norm).c_str() : "-",
                    r.has_ppl ? metric(r.ppl).c_str() : "-");
      std::printf("\naverage (acc_norm where the task has it, else acc) = %.4f over %zu tasks\n",
                  average, results.size());
    }
    return 0;
  };
}

}  // namespace quad::cli
