#include "quad/quant/calibration.h"

#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "quad/core/error.h"
#include "quad/core/random.h"
#include "quad/core/sha256.h"
#include "quad/io/text_file.h"

namespace quad {

namespace {

std::string text_of(const nlohmann::json& item, const std::string& where) {
  if (item.is_string()) return item.get<std::string>();
  if (item.is_object() && item.contains("text") && item["text"].is_string())
    return item["text"].get<std::string>();
  fail("calib", "{}: expected a string or an object with a \"text\" string", where);
}

}  // namespace

std::vector<std::string> load_calibration_documents(const std::string& path) {
  const std::string bytes = read_text_file(path, "calib");
  const size_t first = bytes.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) fail("calib", "{}: contains only whitespace", path);
  std::vector<std::string> docs;
  if (bytes[first] == '[') {  // one JSON array
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(bytes);
    } catch (const nlohmann::json::exception& e) {
      fail("calib", "{}: invalid JSON: {}", path, e.what());
    }
    for (size_t i = 0; i < j.size(); ++i)
      docs.push_back(text_of(j[i], fmt::format("{}: item {}", path, i)));
  } else if (bytes[first] == '{') {  // JSON lines
    size_t line_no = 0, pos = 0;
    while (pos < bytes.size()) {
      size_t end = bytes.find('\n', pos);
      if (end == std::string::npos) end = bytes.size();
      ++line_no;
      std::string_view line(bytes.data() + pos, end - pos);
      pos = end + 1;
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception&) {
        fail("calib", "{}:{}: not a JSON object", path, line_no);
      }
      docs.push_back(text_of(j, fmt::format("{}:{}", path, line_no)));
    }
  } else {  // plain text: one document
    docs.push_back(bytes);
  }
  std::erase_if(docs, [](const std::string& d) { return d.empty(); });
  check(!docs.empty(), "calib", "{}: no non-empty documents", path);
  return docs;
}

std::vector<std::vector<int32_t>> sample_calibration_windows(const Tokenizer& tokenizer,
                                                             const std::vector<std::string>& docs,
                                                             int nsamples, int seqlen,
                                                             uint64_t seed) {
  check(!docs.empty() && nsamples > 0 && seqlen > 1, "calib", "nothing to sample from");
  std::vector<std::vector<int32_t>> encoded(docs.size());
  auto tokens_of = [&](size_t i) -> const std::vector<int32_t>& {
    if (encoded[i].empty()) encoded[i] = tokenizer.encode(docs[i], true);
    return encoded[i];
  };
  bool any_long = false;
  for (size_t i = 0; i < docs.size() && !any_long; ++i)
    any_long = int(tokens_of(i).size()) > seqlen;
  std::vector<std::vector<int32_t>> samples;
  Rng rng(seed);
  if (any_long) {
    // The GPTQ loader's rule: documents longer than seqlen, random window.
    while (int(samples.size()) < nsamples) {
      const auto& ids = tokens_of(rng.below(docs.size()));
      if (int(ids.size()) <= seqlen) continue;
      const size_t start = rng.below(ids.size() - seqlen);
      samples.emplace_back(ids.begin() + start, ids.begin() + start + seqlen);
    }
    return samples;
  }
  std::string joined;
  for (const auto& d : docs) joined += (joined.empty() ? "" : "\n\n") + d;
  std::vector<int32_t> ids = tokenizer.encode(joined, true);
  check(int(ids.size()) >= seqlen, "calib",
        "calibration text has only {} tokens, fewer than one window of {}", ids.size(), seqlen);
  std::fprintf(stderr,
               "calib: no document has more than %d tokens; drawing windows from all %zu "
               "documents joined (%zu tokens)\n",
               seqlen, docs.size(), ids.size());
  while (int(samples.size()) < nsamples) {
    const size_t start = rng.below(ids.size() - seqlen + 1);
    samples.emplace_back(ids.begin() + start, ids.begin() + start + seqlen);
  }
  return samples;
}

std::string sha256_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  check(bool(f), "calib", "{}: cannot open", path);
  Sha256 h;
  char buf[1 << 16];
  while (f) {
    f.read(buf, sizeof buf);
    h.update(buf, size_t(f.gcount()));
  }
  return h.hex();
}

}  // namespace quad
