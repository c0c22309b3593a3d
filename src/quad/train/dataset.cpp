#include "quad/train/dataset.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "quad/core/error.h"
#include "quad/io/text_file.h"

namespace quad::train {

namespace {

using nlohmann::json;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The string field `key` of record `what`, or a clear error.
std::string field(const json& rec, const char* key, const std::string& what, bool required = true) {
  auto it = rec.find(key);
  if (it == rec.end() || it->is_null()) {
    check(!required, "data", "{}: missing field \"{}\"", what, key);
    return "";
  }
  check(it->is_string(), "data", "{}: field \"{}\" is not a string", what, key);
  return it->get<std::string>();
}

// Each non-blank line of a jsonl file as (line number, parsed object).
std::vector<std::pair<int, json>> read_jsonl(const std::string& path) {
  std::istringstream in(read_text_file(path, "data"));
  std::vector<std::pair<int, json>> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json rec = json::parse(line, nullptr, false);
    check(!rec.is_discarded(), "data", "{}:{}: not valid JSON", path, n);
    check(rec.is_object(), "data", "{}:{}: expected a JSON object", path, n);
    out.emplace_back(n, std::move(rec));
  }
  check(!out.empty(), "data", "{}: no records", path);
  return out;
}

// tokens = prompt + response (+ EOS), truncated to seqlen; targets everywhere, or only on the
// response when mask_prompt.
Example make_example(const Tokenizer& tok, const std::string& prompt, const std::string& full,
                     int seqlen, bool mask_prompt, bool* truncated) {
  Example e;
  e.tokens = tok.encode(full);
  *truncated = int(e.tokens.size()) >= seqlen;
  if (*truncated)
    e.tokens.resize(seqlen);
  else if (tok.eos_id() >= 0)
    e.tokens.push_back(tok.eos_id());
  e.target.assign(e.tokens.size(), 1);
  if (mask_prompt) {
    const size_t p = std::min(tok.encode(prompt).size(), e.tokens.size());
    std::fill(e.target.begin(), e.target.begin() + p, 0);
  }
  return e;
}

Dataset load_alpaca(const std::string& path, const Tokenizer& tok, const DataOptions& opt) {
  json all = json::parse(read_text_file(path, "data"), nullptr, false);
  check(!all.is_discarded(), "data", "{}: not valid JSON", path);
  check(all.is_array() && !all.empty(), "data",
        "{}: expected a non-empty JSON array of {{instruction, input, output}} records", path);
  Dataset d;
  for (size_t i = 0; i < all.size(); ++i) {
    const std::string what = fmt::format("{} record {}", path, i);
    check(all[i].is_object(), "data", "{}: expected an object", what);
    const std::string prompt =
        alpaca_prompt(field(all[i], "instruction", what), field(all[i], "input", what, false));
    const std::string output = field(all[i], "output", what);
    bool truncated = false;
    d.examples.push_back(
        make_example(tok, prompt, prompt + output, opt.seqlen, opt.mask_prompt, &truncated));
  }
  return d;
}

using JsonlRecords = std::vector<std::pair<int, json>>;

Dataset load_gsm8k(const std::string& path, const JsonlRecords& records, const Tokenizer& tok,
                   const DataOptions& opt) {
  Dataset d;
  for (const auto& [line, rec] : records) {
    const std::string what = fmt::format("{}:{}", path, line);
    const std::string x = "Q: " + field(rec, "question", what) + "\nA: ";
    std::string y = field(rec, "answer", what);
    if (auto cut = y.rfind("\n####"); cut != std::string::npos) y.resize(cut);
    bool truncated = false;
    Example e = make_example(tok, x, x + " " + y, opt.seqlen, true, &truncated);
    if (truncated) {
      ++d.dropped;
      continue;
    }
    d.examples.push_back(std::move(e));
  }
  return d;
}

// records: the parsed lines of a .jsonl file, or empty for a plain text file.
Dataset load_text(const std::string& path, const JsonlRecords& records, const Tokenizer& tok,
                  const DataOptions& opt) {
  std::vector<std::string> docs;
  if (ends_with(path, ".jsonl")) {
    for (const auto& [line, rec] : records)
      docs.push_back(field(rec, "text", fmt::format("{}:{}", path, line)));
  } else {
    docs.push_back(read_text_file(path, "data"));
  }
  std::vector<int32_t> stream;
  for (const std::string& doc : docs) {
    const auto ids = tok.encode(doc);
    stream.insert(stream.end(), ids.begin(), ids.end());
    if (tok.eos_id() >= 0 && docs.size() > 1) stream.push_back(tok.eos_id());
  }
  check(stream.size() >= 2, "data", "{}: fewer than 2 tokens of text", path);
  Dataset d;
  const size_t L = size_t(opt.seqlen);
  for (size_t a = 0; a < stream.size(); a += L) {
    const size_t len = std::min(L, stream.size() - a);
    if (len < L && !d.examples.empty()) break;  // drop the short tail
    Example e;
    e.tokens.assign(stream.begin() + a, stream.begin() + a + len);
    e.target.assign(len, 1);
    d.examples.push_back(std::move(e));
  }
  return d;
}

}  // namespace

DataFormat parse_data_format(const std::string& name) {
  if (name == "auto") return DataFormat::Auto;
  if (name == "alpaca") return DataFormat::Alpaca;
  if (name == "gsm8k") return DataFormat::Gsm8k;
  if (name == "text") return DataFormat::Text;
  fail("data", "unknown data format '{}' (auto, alpaca, gsm8k, text)", name);
}

const char* data_format_name(DataFormat f) {
  switch (f) {
    case DataFormat::Alpaca: return "alpaca";
    case DataFormat::Gsm8k: return "gsm8k";
    case DataFormat::Text: return "text";
    default: return "auto";
  }
}

namespace {

// The format of a .jsonl file from its first record.
DataFormat jsonl_format(const std::string& path, const json& first) {
  if (first.contains("question") && first.contains("answer")) return DataFormat::Gsm8k;
  if (first.contains("text")) return DataFormat::Text;
  fail("data", "{}: jsonl records need \"question\" and \"answer\" (gsm8k) or \"text\"", path);
}

}  // namespace

DataFormat detect_data_format(const std::string& path) {
  if (ends_with(path, ".json")) return DataFormat::Alpaca;
  if (ends_with(path, ".jsonl")) return jsonl_format(path, read_jsonl(path).front().second);
  return DataFormat::Text;
}

std::string alpaca_prompt(const std::string& instruction, const std::string& input) {
  if (input.empty())
    return "Below is an instruction that describes a task. Write a response that appropriately "
           "completes the request.\n\n### Instruction:\n" +
           instruction + "\n\n### Response:\n";
  return "Below is an instruction that describes a task, paired with an input that provides "
         "further context. Write a response that appropriately completes the request.\n\n"
         "### Instruction:\n" +
         instruction + "\n\n### Input:\n" + input + "\n\n### Response:\n";
}

long Dataset::num_tokens() const {
  long n = 0;
  for (const Example& e : examples) n += long(e.tokens.size());
  return n;
}

Dataset load_dataset(const std::string& path, const Tokenizer& tokenizer, const DataOptions& opt) {
  check(opt.seqlen >= 2, "data", "--seqlen must be at least 2 (got {})", opt.seqlen);
  // A jsonl file is parsed once, for detecting its format and for loading it.
  const bool jsonl = ends_with(path, ".jsonl") || opt.format == DataFormat::Gsm8k;
  const JsonlRecords records = jsonl ? read_jsonl(path) : JsonlRecords{};
  DataFormat f = opt.format;
  if (f == DataFormat::Auto)
    f = !records.empty() ? jsonl_format(path, records.front().second) : detect_data_format(path);
  Dataset d;
  switch (f) {
    case DataFormat::Alpaca: d = load_alpaca(path, tokenizer, opt); break;
    case DataFormat::Gsm8k: d = load_gsm8k(path, records, tokenizer, opt); break;
    default: d = load_text(path, records, tokenizer, opt); break;
  }
  d.format = f;
  check(!d.examples.empty(), "data", "{}: no usable examples (all {} longer than --seqlen {})",
        path, d.dropped, opt.seqlen);
  return d;
}

}  // namespace quad::train
