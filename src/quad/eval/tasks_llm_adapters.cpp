// The llm_adapters instruction files: a JSON array of {instruction, input, output, answer}
// whose options are embedded in the instruction text. Each item is parsed against the exact
// pattern of its task; an item that does not match is refused, never guessed.
#include <nlohmann/json.hpp>

#include "quad/core/error.h"
#include "quad/eval/tasks.h"

namespace quad::eval {

namespace {

using nlohmann::json;

// How the options are laid out: "<prefix>{question}<start><label>1: a<sep><label>2: b ...
// <end>Answer format: <word>1/<word>2/..."
struct OptionStyle {
  std::string prefix, start, label, sep, end, word;
};

const OptionStyle kAnswerStyle = {
    "Please choose the correct answer to the question: ", "\n\n", "Answer", " ", "\n\n", "answer"};
const OptionStyle kSolutionStyle = {"Please choose the correct solution to the question: ",
                                    "\n\n",
                                    "Solution",
                                    "\n\n",
                                    "\n\n",
                                    "solution"};
const OptionStyle kOptionStyle = {
    "Please choose the correct answer to fill in the blank to complete the given sentence: ",
    "\n\n",
    "Option",
    " ",
    " ",
    "option"};
const std::string kBoolqPrefix =
    "Please answer the following question with true or false, question: ";
const std::string kBoolqEnd = "\n\nAnswer format: true/false";

size_t count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

bool starts_with(const std::string& s, const std::string& p) {
  return s.compare(0, p.size(), p) == 0;
}

struct Parsed {
  std::string question;
  std::vector<std::string> options;
  int gold = 0;
};

// Splits an instruction into question and options; `where` names the item in errors.
Parsed parse_options(const std::string& text, const std::string& answer, const OptionStyle& st,
                     const std::string& where) {
  check(starts_with(text, st.prefix), "eval", "{}: the instruction does not start with \"{}\"",
        where, st.prefix);
  const std::string fmt_marker = st.end + "Answer format: ";
  const size_t fmt_pos = text.rfind(fmt_marker);
  check(fmt_pos != std::string::npos && fmt_pos >= st.prefix.size(), "eval",
        "{}: no \"Answer format: \" line", where);
  // "answer1/answer2/.../answerN" gives N.
  const std::string format = text.substr(fmt_pos + fmt_marker.size());
  int n = 0;
  for (size_t p = 0; p <= format.size();) {
    size_t slash = format.find('/', p);
    if (slash == std::string::npos) slash = format.size();
    check(format.substr(p, slash - p) == st.word + std::to_string(n + 1), "eval",
          "{}: cannot read the answer format \"{}\"", where, format);
    ++n;
    p = slash + 1;
  }
  check(n >= 2, "eval", "{}: fewer than 2 options in \"{}\"", where, format);
  const std::string body = text.substr(st.prefix.size(), fmt_pos - st.prefix.size());

  Parsed r;
  const std::string first = st.start + st.label + "1: ";
  check(count(body, first) == 1, "eval", "{}: \"{}1: \" must appear exactly once", where, st.label);
  const size_t q_end = body.find(first);
  r.question = body.substr(0, q_end);
  std::string rest = body.substr(q_end + first.size());
  for (int k = 2; k <= n; ++k) {
    const std::string marker = st.sep + st.label + std::to_string(k) + ": ";
    check(count(rest, marker) == 1, "eval", "{}: \"{}{}: \" must appear exactly once", where,
          st.label, k);
    const size_t p = rest.find(marker);
    r.options.push_back(rest.substr(0, p));
    rest = rest.substr(p + marker.size());
  }
  r.options.push_back(rest);
  check(r.question.find_first_not_of(" \n") != std::string::npos, "eval", "{}: empty question",
        where);
  for (size_t i = 0; i < r.options.size(); ++i) {
    const std::string& o = r.options[i];
    check(o.find_first_not_of(" \n") != std::string::npos, "eval", "{}: option {} is empty", where,
          i + 1);
    // An option that itself names an option would make the split ambiguous.
    for (int k = 1; k <= n; ++k)
      check(o.find(st.label + std::to_string(k) + ":") == std::string::npos, "eval",
            "{}: option {} contains \"{}{}:\"; cannot split the options unambiguously", where,
            i + 1, st.label, k);
  }
  r.gold = -1;
  for (int k = 1; k <= n; ++k)
    if (answer == st.word + std::to_string(k)) r.gold = k - 1;
  check(r.gold >= 0, "eval", "{}: answer \"{}\" is not one of {}", where, answer, format);
  return r;
}

TaskItem with_context(const std::string& context, const Parsed& p) {
  TaskItem item;
  for (const std::string& c : p.options) item.requests.push_back({context, " " + c});
  item.choices = p.options;
  item.gold = p.gold;
  return item;
}

std::string python_strip(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// lm-eval winogrande: contexts sentence[:blank] + option, shared continuation
// " " + sentence[blank+1:].strip(); acc compares the continuation's log-likelihoods.
TaskItem winogrande_item(const Parsed& p, const std::string& where) {
  check(p.options.size() == 2, "eval", "{}: winogrande needs 2 options, found {}", where,
        p.options.size());
  const std::string& sentence = p.question;
  const size_t blank = sentence.find('_');
  check(blank != std::string::npos, "eval", "{}: the sentence has no blank \"_\"", where);
  const std::string target = python_strip(sentence.substr(blank + 1));
  check(!target.empty(), "eval", "{}: nothing follows the blank", where);
  TaskItem item;
  for (const std::string& o : p.options) {
    item.choices.push_back(sentence.substr(0, blank) + o);
    item.requests.push_back({item.choices.back(), " " + target});
  }
  item.gold = p.gold;
  return item;
}

TaskItem boolq_item(const std::string& text, const std::string& answer, const std::string& where) {
  check(starts_with(text, kBoolqPrefix), "eval", "{}: the instruction does not start with \"{}\"",
        where, kBoolqPrefix);
  check(text.size() > kBoolqPrefix.size() + kBoolqEnd.size() &&
            text.compare(text.size() - kBoolqEnd.size(), kBoolqEnd.size(), kBoolqEnd) == 0,
        "eval", "{}: the instruction does not end with \"\\n\\nAnswer format: true/false\"", where);
  std::string q =
      text.substr(kBoolqPrefix.size(), text.size() - kBoolqPrefix.size() - kBoolqEnd.size());
  // The files append "?" to BoolQ's question; lm-eval's template adds it back.
  check(!q.empty() && q.back() == '?', "eval", "{}: the question does not end with \"?\"", where);
  q.pop_back();
  check(q.find_first_not_of(" \n") != std::string::npos, "eval", "{}: empty question", where);
  check(answer == "true" || answer == "false", "eval", "{}: answer \"{}\" is not true/false", where,
        answer);
  TaskItem item;
  // lm-eval: "{passage}\nQuestion: {question}?\nAnswer:" with choices no/yes; no passage here.
  const std::string context = "Question: " + q + "?\nAnswer:";
  item.choices = {"no", "yes"};
  for (const std::string& c : item.choices) item.requests.push_back({context, " " + c});
  item.gold = answer == "true";
  return item;
}

}  // namespace

std::vector<TaskItem> parse_llm_adapters(const std::string& text, const std::string& task,
                                         const std::string& path) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    fail("eval", "{}: not valid JSON ({})", path, e.what());
  }
  check(doc.is_array(), "eval", "{}: expected a JSON array of items", path);
  std::vector<TaskItem> items;
  for (size_t i = 0; i < doc.size(); ++i) {
    const json& j = doc[i];
    const std::string where = fmt::format("{} item {}", path, i);
    check(j.is_object(), "eval", "{}: not an object", where);
    for (const char* key : {"instruction", "answer"})
      check(j.contains(key) && j[key].is_string(), "eval", "{}: missing string field \"{}\"", where,
            key);
    check(!j.contains("input") || (j["input"].is_string() && j["input"].get<std::string>().empty()),
          "eval", "{}: a non-empty \"input\" field is not supported", where);
    const std::string instr = j["instruction"].get<std::string>();
    const std::string answer = j["answer"].get<std::string>();
    if (task == "arc_easy" || task == "arc_challenge" || task == "piqa_llm_adapters") {
      const Parsed p = parse_options(
          instr, answer, task == "piqa_llm_adapters" ? kSolutionStyle : kAnswerStyle, where);
      items.push_back(with_context("Question: " + p.question + "\nAnswer:", p));
    } else if (task == "openbookqa") {
      const Parsed p = parse_options(instr, answer, kAnswerStyle, where);
      items.push_back(with_context(p.question, p));
    } else if (task == "social_iqa") {
      const Parsed p = parse_options(instr, answer, kAnswerStyle, where);
      items.push_back(with_context("Q: " + p.question + "\nA:", p));
    } else if (task == "winogrande") {
      items.push_back(winogrande_item(parse_options(instr, answer, kOptionStyle, where), where));
    } else if (task == "boolq") {
      items.push_back(boolq_item(instr, answer, where));
    } else {
      fail("eval", "no llm_adapters parser for task \"{}\"", task);
    }
  }
  check(!items.empty(), "eval", "{}: no items", path);
  return items;
}

}  // namespace quad::eval
