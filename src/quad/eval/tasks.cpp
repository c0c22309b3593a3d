#include "quad/eval/tasks.h"

#include <cctype>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "quad/core/error.h"
#include "quad/io/text_file.h"

namespace quad::eval {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Lines of a text file, without "\r\n" / "\n"; a final newline does not add an empty line.
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

bool blank(const std::string& s) {
  return s.find_first_not_of(" \t\r\n") == std::string::npos;
}

// Parses each non-blank line of a jsonl file as an object; calls f(object, line number).
template <typename F>
void for_each_jsonl(const std::string& text, const std::string& path, F f) {
  const std::vector<std::string> lines = split_lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (blank(lines[i])) continue;
    json j;
    try {
      j = json::parse(lines[i]);
    } catch (const json::exception& e) {
      fail("eval", "{} line {}: not valid JSON ({})", path, i + 1, e.what());
    }
    check(j.is_object(), "eval", "{} line {}: expected a JSON object", path, i + 1);
    f(j, i + 1);
  }
}

std::string get_string(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  check(it != j.end() && it->is_string(), "eval", "{}: missing string field \"{}\"", where, key);
  return it->get<std::string>();
}

int get_label(const json& j, const char* key, int n, const std::string& where) {
  auto it = j.find(key);
  check(it != j.end(), "eval", "{}: missing field \"{}\"", where, key);
  int label = -1;
  if (it->is_number_integer()) {
    label = it->get<int>();
  } else if (it->is_string()) {
    const std::string s = it->get<std::string>();
    check(!s.empty() && s.size() < 9 && s.find_first_not_of("0123456789") == std::string::npos,
          "eval", "{}: \"{}\" is not an integer: \"{}\"", where, key, s);
    label = std::stoi(s);
  } else {
    fail("eval", "{}: \"{}\" is not an integer", where, key);
  }
  check(label >= 0 && label < n, "eval", "{}: \"{}\" = {} is out of range [0, {})", where, key,
        label, n);
  return label;
}

// A multiple-choice item with a shared context and " " + choice continuations (lm-eval's
// default target delimiter).
TaskItem shared_context_item(const std::string& context, std::vector<std::string> choices,
                             int gold) {
  TaskItem item;
  for (const std::string& c : choices) item.requests.push_back({context, " " + c});
  item.choices = std::move(choices);
  item.gold = gold;
  return item;
}

std::string file_in(const std::string& data_dir, const std::string& rel) {
  return (fs::path(data_dir) / rel).string();
}

}  // namespace

std::string hellaswag_preprocess(const std::string& text) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = text.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  std::string s = text.substr(b, text.find_last_not_of(ws) - b + 1);
  // " [title]" -> ". "
  std::string t;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 8, " [title]") == 0) {
      t += ". ";
      i += 8;
    } else {
      t += s[i++];
    }
  }
  // re.sub("\[.*?\]", "", t): '.' does not match a newline.
  std::string u;
  for (size_t i = 0; i < t.size();) {
    if (t[i] == '[') {
      size_t close = i + 1;
      while (close < t.size() && t[close] != ']' && t[close] != '\n') ++close;
      if (close < t.size() && t[close] == ']') {
        i = close + 1;
        continue;
      }
    }
    u += t[i++];
  }
  // "  " -> " " (one left-to-right pass, like str.replace)
  std::string v;
  for (size_t i = 0; i < u.size();) {
    if (u.compare(i, 2, "  ") == 0) {
      v += ' ';
      i += 2;
    } else {
      v += u[i++];
    }
  }
  return v;
}

std::string python_capitalize(const std::string& text) {
  std::string s = text;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = s[i];
    if (c >= 0x80) continue;
    s[i] = char(i == 0 ? std::toupper(c) : std::tolower(c));
  }
  return s;
}

std::vector<TaskItem> parse_piqa(const std::string& jsonl, const std::string& labels,
                                 const std::string& path) {
  std::vector<TaskItem> items;
  for_each_jsonl(jsonl, path, [&](const json& j, size_t line) {
    const std::string where = fmt::format("{} line {}", path, line);
    items.push_back(
        shared_context_item("Question: " + get_string(j, "goal", where) + "\nAnswer:",
                            {get_string(j, "sol1", where), get_string(j, "sol2", where)}, 0));
  });
  std::vector<std::string> label_lines;
  for (const std::string& l : split_lines(labels))
    if (!blank(l)) label_lines.push_back(l);
  check(label_lines.size() == items.size(), "eval",
        "{}: {} items but {} labels in valid-labels.lst", path, items.size(), label_lines.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string& l = label_lines[i];
    check(l == "0" || l == "1", "eval", "{}: label {} of valid-labels.lst is \"{}\", not 0 or 1",
          path, i + 1, l);
    items[i].gold = l == "1";
  }
  return items;
}

std::vector<TaskItem> parse_hellaswag_llamacpp(const std::string& text, const std::string& path) {
  const std::vector<std::string> lines = split_lines(text);
  check(!lines.empty() && lines.size() % 6 == 0, "eval",
        "{}: {} lines, not a multiple of 6 (context, label, 4 endings per task)", path,
        lines.size());
  std::vector<TaskItem> items;
  for (size_t t = 0; t < lines.size() / 6; ++t) {
    const std::string where = fmt::format("{} task {} (line {})", path, t + 1, 6 * t + 1);
    const std::string& label = lines[6 * t + 1];
    check(label.size() == 1 && label[0] >= '0' && label[0] <= '3', "eval",
          "{}: label line is \"{}\", not 0..3", where, label);
    check(!blank(lines[6 * t]), "eval", "{}: empty context line", where);
    std::vector<std::string> endings;
    for (int e = 0; e < 4; ++e) {
      const std::string& ending = lines[6 * t + 2 + e];
      check(!blank(ending), "eval", "{}: ending {} is empty", where, e + 1);
      endings.push_back(hellaswag_preprocess(ending));
    }
    items.push_back(shared_context_item(hellaswag_preprocess(lines[6 * t]), std::move(endings),
                                        label[0] - '0'));
  }
  return items;
}

std::vector<TaskItem> parse_hellaswag_jsonl(const std::string& text, const std::string& path) {
  std::vector<TaskItem> items;
  for_each_jsonl(text, path, [&](const json& j, size_t line) {
    const std::string where = fmt::format("{} line {}", path, line);
    const std::string ctx =
        get_string(j, "ctx_a", where) + " " + python_capitalize(get_string(j, "ctx_b", where));
    auto e = j.find("endings");
    check(e != j.end() && e->is_array() && e->size() >= 2, "eval",
          "{}: \"endings\" must be an array of at least 2 strings", where);
    std::vector<std::string> endings;
    for (const json& x : *e) {
      check(x.is_string(), "eval", "{}: \"endings\" must hold strings", where);
      endings.push_back(hellaswag_preprocess(x.get<std::string>()));
    }
    const int gold = get_label(j, "label", int(endings.size()), where);
    items.push_back(shared_context_item(
        hellaswag_preprocess(get_string(j, "activity_label", where) + ": " + ctx),
        std::move(endings), gold));
  });
  return items;
}

std::vector<TaskItem> parse_lambada(const std::string& text, const std::string& path) {
  std::vector<TaskItem> items;
  for_each_jsonl(text, path, [&](const json& j, size_t line) {
    const std::string where = fmt::format("{} line {}", path, line);
    const std::string t = get_string(j, "text", where);
    check(!t.empty() && t.back() != ' ', "eval", "{}: the text has no last word", where);
    // lm-eval: context = " ".join(text.split(" ")[:-1]), continuation = " " + last word.
    const size_t sp = t.rfind(' ');
    TaskItem item;
    const std::string context = sp == std::string::npos ? "" : t.substr(0, sp);
    const std::string word = sp == std::string::npos ? t : t.substr(sp + 1);
    item.requests.push_back({context, " " + word});
    item.choices.push_back(word);
    items.push_back(std::move(item));
  });
  return items;
}

std::vector<TaskItem> parse_user_jsonl(const std::string& text, const std::string& path) {
  std::vector<TaskItem> items;
  for_each_jsonl(text, path, [&](const json& j, size_t line) {
    const std::string where = fmt::format("{} line {}", path, line);
    const std::string context = get_string(j, "context", where);
    auto c = j.find("choices");
    check(c != j.end() && c->is_array() && c->size() >= 2, "eval",
          "{}: \"choices\" must be an array of at least 2 strings", where);
    std::vector<std::string> choices;
    for (const json& x : *c) {
      check(x.is_string() && !x.get<std::string>().empty(), "eval",
            "{}: \"choices\" must hold non-empty strings", where);
      choices.push_back(x.get<std::string>());
    }
    const int gold = get_label(j, "gold", int(choices.size()), where);
    items.push_back(shared_context_item(context, std::move(choices), gold));
  });
  check(!items.empty(), "eval", "{}: no items", path);
  return items;
}

const std::vector<std::string>& builtin_task_names() {
  static const std::vector<std::string> names = {"piqa",          "hellaswag",  "arc_easy",
                                                 "arc_challenge", "winogrande", "lambada_openai",
                                                 "openbookqa",    "boolq",      "social_iqa"};
  return names;
}

Task load_task(const std::string& name, const std::string& data_dir) {
  Task task;
  task.name = name;
  auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".jsonl")) {
    task.name = fs::path(name).stem().string();
    task.source = name;
    task.has_acc_norm = true;
    task.items = parse_user_jsonl(read_text_file(name, "eval"), name);
    return task;
  }
  static const std::vector<std::pair<std::string, std::string>> adapters = {
      {"arc_easy", "llm_adapters/ARC-Easy.test.json"},
      {"arc_challenge", "llm_adapters/ARC-Challenge.test.json"},
      {"openbookqa", "llm_adapters/openbookqa.test.json"},
      {"boolq", "llm_adapters/boolq.test.json"},
      {"social_iqa", "llm_adapters/social_i_qa.test.json"},
      {"winogrande", "llm_adapters/winogrande.test.json"},
      {"piqa_llm_adapters", "llm_adapters/piqa.test.json"}};
  for (const auto& [task_name, rel] : adapters) {
    if (name != task_name) continue;
    task.source = file_in(data_dir, rel);
    task.has_acc_norm = name == "arc_easy" || name == "arc_challenge" || name == "openbookqa" ||
                        name == "piqa_llm_adapters";
    task.items = parse_llm_adapters(read_text_file(task.source, "eval"), name, task.source);
    return task;
  }
  if (name == "piqa") {
    const std::string data = file_in(data_dir, "piqa/valid.jsonl");
    const std::string labels = file_in(data_dir, "piqa/valid-labels.lst");
    task.source = data + " + " + labels;
    task.has_acc_norm = true;
    const std::string jsonl = read_text_file(data, "eval");  // read first: errors name it
    task.items = parse_piqa(jsonl, read_text_file(labels, "eval"), data);
  } else if (name == "hellaswag") {
    task.has_acc_norm = true;
    const std::string hf = file_in(data_dir, "hellaswag/hellaswag_val.jsonl");
    if (fs::exists(hf)) {
      task.source = hf;
      task.items = parse_hellaswag_jsonl(read_text_file(hf, "eval"), hf);
    } else {
      task.source = file_in(data_dir, "hellaswag/hellaswag_val_full.txt");
      task.items = parse_hellaswag_llamacpp(read_text_file(task.source, "eval"), task.source);
    }
  } else if (name == "lambada_openai") {
    task.source = file_in(data_dir, "lambada/lambada_test.jsonl");
    task.kind = TaskKind::kLastWord;
    task.items = parse_lambada(read_text_file(task.source, "eval"), task.source);
  } else {
    std::string known;
    for (const std::string& n : builtin_task_names()) known += (known.empty() ? "" : ", ") + n;
    fail("eval", "unknown task \"{}\" (known: {}, piqa_llm_adapters, or a .jsonl file)", name,
         known);
  }
  check(!task.items.empty(), "eval", "{}: no items", task.source);
  return task;
}

}  // namespace quad::eval
