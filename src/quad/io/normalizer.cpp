#include "quad/io/normalizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>

#include "quad/io/tokenizer_json.h"
#include "quad/io/tokenizer_utf8.h"

namespace quad::tokenizer_detail {

namespace {

bool is_ascii(const std::string& s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

void unicode_normal_form(std::string& text, int options) {
  if (is_ascii(text)) return;  // every normal form leaves ASCII unchanged
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   utf8proc_ssize_t(text.size()), &out, utf8proc_option_t(options));
  if (n < 0) fail(kModule, "Unicode normalization failed: {}", utf8proc_errmsg(n));
  text.assign(reinterpret_cast<const char*>(out), size_t(n));
  std::free(out);
}

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  if (from.empty() || text.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(text, pos, hit - pos);
    out += to;
  }
  out.append(text, pos, std::string::npos);
  text.swap(out);
}

void lowercase(std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    append_utf8(out, char32_t(utf8proc_tolower(utf8proc_int32_t(next_codepoint(text, i)))));
  }
  text.swap(out);
}

void strip_whitespace(std::string& text, bool left, bool right) {
  size_t begin = 0, end = text.size();
  if (left) {
    for (size_t i = 0; i < text.size();) {
      if (!is_unicode_whitespace(next_codepoint(text, i))) break;
      begin = i;
    }
  }
  if (right) {
    size_t last_non_space_end = begin;
    for (size_t i = begin; i < text.size();) {
      if (!is_unicode_whitespace(next_codepoint(text, i))) last_non_space_end = i;
    }
    end = last_non_space_end;
  }
  text = text.substr(begin, end - begin);
}

}  // namespace

Normalizer Normalizer::from_json(const json& section, const std::string& file) {
  Normalizer n;
  if (!section.is_null()) n.add(section, file);
  return n;
}

void Normalizer::add(const json& j, const std::string& file) {
  const std::string type = component_type(j, file, "normalizer");
  if (type == "Sequence") {
    const json& list = require(j, "normalizers", file, "Sequence normalizer");
    if (!list.is_array())
      fail(kModule, "{}: Sequence normalizer: \"normalizers\" must be a list", file);
    for (const json& item : list) add(item, file);
  } else if (type == "NFC") {
    steps_.push_back({Kind::kNFC, {}, {}});
  } else if (type == "NFD") {
    steps_.push_back({Kind::kNFD, {}, {}});
  } else if (type == "NFKC") {
    steps_.push_back({Kind::kNFKC, {}, {}});
  } else if (type == "NFKD") {
    steps_.push_back({Kind::kNFKD, {}, {}});
  } else if (type == "Lowercase") {
    steps_.push_back({Kind::kLowercase, {}, {}});
  } else if (type == "Prepend") {
    steps_.push_back(
        {Kind::kPrepend, require_string(j, "prepend", file, "Prepend normalizer"), {}});
  } else if (type == "Replace") {
    std::string pattern;
    if (!string_pattern(require(j, "pattern", file, "Replace normalizer"), pattern))
      fail(kModule, "{}: Replace normalizer: only string patterns are supported, got {}", file,
           brief(j["pattern"]));
    steps_.push_back(
        {Kind::kReplace, pattern, require_string(j, "content", file, "Replace normalizer")});
  } else if (type == "Strip") {
    Step s{Kind::kStrip, {}, {}};
    s.left = j.value("strip_left", false);
    s.right = j.value("strip_right", false);
    steps_.push_back(s);
  } else {
    fail(kModule, "{}: unsupported normalizer type \"{}\"", file, type);
  }
}

void Normalizer::normalize(std::string& text) const {
  for (const Step& s : steps_) {
    switch (s.kind) {
      case Kind::kNFC: unicode_normal_form(text, UTF8PROC_STABLE | UTF8PROC_COMPOSE); break;
      case Kind::kNFD: unicode_normal_form(text, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE); break;
      case Kind::kNFKC:
        unicode_normal_form(text, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
        break;
      case Kind::kNFKD:
        unicode_normal_form(text, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
        break;
      case Kind::kLowercase: lowercase(text); break;
      case Kind::kPrepend:
        // Hugging Face's Prepend leaves an empty string empty.
        if (!text.empty()) text.insert(0, s.a);
        break;
      case Kind::kReplace: replace_all(text, s.a, s.b); break;
      case Kind::kStrip: strip_whitespace(text, s.left, s.right); break;
    }
  }
}

}  // namespace quad::tokenizer_detail
