// Zero-shot tasks as lm-evaluation-harness 0.4 builds them: every item becomes a list of
// (context, continuation) requests whose log-likelihoods are compared.
//
// Built-in tasks and the files they read under the data folder (docs/zeroshot.md):
//   piqa            piqa/valid.jsonl + piqa/valid-labels.lst      "Question: {goal}\nAnswer:"
//   hellaswag       hellaswag/hellaswag_val.jsonl (HF fields) if present, else
//                   hellaswag/hellaswag_val_full.txt (llama.cpp)  "{label}: {ctx}"
//   arc_easy        llm_adapters/ARC-Easy.test.json               "Question: {q}\nAnswer:"
//   arc_challenge   llm_adapters/ARC-Challenge.test.json          "Question: {q}\nAnswer:"
//   openbookqa      llm_adapters/openbookqa.test.json             "{question_stem}"
//   boolq           llm_adapters/boolq.test.json (no passages)    "Question: {q}?\nAnswer:"
//   social_iqa      llm_adapters/social_i_qa.test.json            "Q: {context} {question}\nA:"
//   winogrande      llm_adapters/winogrande.test.json             partial scoring
//   lambada_openai  lambada/lambada_test.jsonl                    last word
//   piqa_llm_adapters  llm_adapters/piqa.test.json (same items as piqa)
// A task name that ends in ".jsonl" is a user file: one {"context", "choices", "gold"} object
// per line.
#pragma once

#include <string>
#include <vector>

namespace quad::eval {

// One log-likelihood query: log P(continuation | context).
struct Request {
  std::string context, continuation;
};

struct TaskItem {
  std::vector<Request> requests;     // one per choice (one for lambada)
  std::vector<std::string> choices;  // the choice texts, whose lengths normalize acc_norm
  int gold = 0;                      // index of the right choice
};

enum class TaskKind {
  kMultipleChoice,  // acc (and acc_norm) over the choices' log-likelihoods
  kLastWord,        // lambada: acc = greedy decoding reproduces the continuation; perplexity
};

struct Task {
  std::string name;
  std::string source;  // the file(s) read
  TaskKind kind = TaskKind::kMultipleChoice;
  bool has_acc_norm = false;  // whether lm-eval reports acc_norm for the task
  std::vector<TaskItem> items;
};

// The built-in task names, in the order of the QUAD paper's tables.
const std::vector<std::string>& builtin_task_names();

// Loads a built-in task from `data_dir`, or a user .jsonl file. Throws quad::Error (module
// "eval") naming the file and item for anything it cannot parse.
Task load_task(const std::string& name, const std::string& data_dir);

// Parsers of each file format (path is used in error messages only).
std::vector<TaskItem> parse_piqa(const std::string& jsonl, const std::string& labels,
                                 const std::string& path);
std::vector<TaskItem> parse_hellaswag_llamacpp(const std::string& text, const std::string& path);
std::vector<TaskItem> parse_hellaswag_jsonl(const std::string& text, const std::string& path);
std::vector<TaskItem> parse_lambada(const std::string& text, const std::string& path);
std::vector<TaskItem> parse_user_jsonl(const std::string& text, const std::string& path);
// llm_adapters instruction files; `task` is one of arc_easy, arc_challenge, openbookqa, boolq,
// social_iqa, winogrande, piqa_llm_adapters (it selects the instruction pattern and template).
std::vector<TaskItem> parse_llm_adapters(const std::string& json, const std::string& task,
                                         const std::string& path);

// lm-eval's hellaswag `preprocess`: strip, " [title]" -> ". ", drop "[...]", "  " -> " ".
std::string hellaswag_preprocess(const std::string& text);
// Python's str.capitalize() on ASCII letters (first upper, the rest lower).
std::string python_capitalize(const std::string& text);

}  // namespace quad::eval
