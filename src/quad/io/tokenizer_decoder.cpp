#include "quad/io/tokenizer_decoder.h"

#include <cctype>

#include "quad/io/byte_level.h"
#include "quad/io/tokenizer_json.h"
#include "quad/io/tokenizer_utf8.h"

namespace quad::tokenizer_detail {

namespace {

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string_view::npos;
       pos = hit + from.size()) {
    out.append(text.substr(pos, hit - pos));
    out.append(to);
  }
  out.append(text.substr(pos));
  return out;
}

std::vector<std::string> byte_level(const std::vector<std::string>& tokens) {
  std::string bytes;
  for (const std::string& token : tokens) {
    const size_t mark = bytes.size();
    bool mapped = true;
    for (size_t i = 0; i < token.size() && mapped;) {
      const int b = byte_level_decode_char(next_codepoint(token, i));
      if (b < 0)
        mapped = false;
      else
        bytes += char(b);
    }
    // A token with a character outside the byte mapping (e.g. an added token) is kept as is.
    if (!mapped) {
      bytes.resize(mark);
      bytes += token;
    }
  }
  return {utf8_lossy(bytes)};
}

// <0xXX> tokens become bytes; a run of them that is not valid UTF-8 gives one U+FFFD per byte.
std::vector<std::string> byte_fallback(std::vector<std::string> tokens) {
  std::vector<std::string> out;
  out.reserve(tokens.size());
  std::string run;
  auto flush = [&] {
    if (run.empty()) return;
    if (is_valid_utf8(run)) {
      out.push_back(run);
    } else {
      for (size_t k = 0; k < run.size(); ++k) out.emplace_back(kReplacementChar);
    }
    run.clear();
  };
  for (std::string& token : tokens) {
    if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>' &&
        std::isxdigit(static_cast<unsigned char>(token[3])) &&
        std::isxdigit(static_cast<unsigned char>(token[4]))) {
      run += char(std::stoi(token.substr(3, 2), nullptr, 16));
    } else {
      flush();
      out.push_back(std::move(token));
    }
  }
  flush();
  return out;
}

std::string strip_chars(const std::string& token, char32_t content, size_t start, size_t stop) {
  std::u32string chars;
  for (size_t i = 0; i < token.size();) chars += next_codepoint(token, i);
  size_t begin = 0, end = chars.size();
  while (begin < start && begin < chars.size() && chars[begin] == content) ++begin;
  for (size_t k = 0; k < stop && end > begin && chars[end - 1] == content; ++k) --end;
  std::string out;
  for (size_t k = begin; k < end; ++k) append_utf8(out, chars[k]);
  return out;
}

}  // namespace

TokenDecoder::Step TokenDecoder::make(Kind kind, std::string from, std::string to) {
  Step s;
  s.kind = kind;
  s.from = std::move(from);
  s.to = std::move(to);
  return s;
}

TokenDecoder TokenDecoder::from_json(const json& section, const std::string& file) {
  TokenDecoder d;
  if (!section.is_null()) {
    d.add(section, file);
    d.configured_ = true;
  }
  return d;
}

TokenDecoder TokenDecoder::sentencepiece(bool strip_leading_space) {
  TokenDecoder d;
  d.configured_ = true;
  d.steps_.push_back(make(Kind::kReplace, "\u2581", " "));
  d.steps_.push_back(make(Kind::kByteFallback));
  d.steps_.push_back(make(Kind::kFuse));
  if (strip_leading_space) {
    Step strip = make(Kind::kStrip);
    strip.start = 1;
    d.steps_.push_back(strip);
  }
  return d;
}

void TokenDecoder::add(const json& j, const std::string& file) {
  const std::string type = component_type(j, file, "decoder");
  if (type == "Sequence") {
    const json& list = require(j, "decoders", file, "Sequence decoder");
    if (!list.is_array()) fail(kModule, "{}: Sequence decoder: \"decoders\" must be a list", file);
    for (const json& item : list) add(item, file);
  } else if (type == "ByteLevel") {
    steps_.push_back(make(Kind::kByteLevel));
  } else if (type == "Replace") {
    std::string pattern;
    if (!string_pattern(require(j, "pattern", file, "Replace decoder"), pattern))
      fail(kModule, "{}: Replace decoder: only string patterns are supported, got {}", file,
           brief(j["pattern"]));
    steps_.push_back(
        make(Kind::kReplace, pattern, require_string(j, "content", file, "Replace decoder")));
  } else if (type == "ByteFallback") {
    steps_.push_back(make(Kind::kByteFallback));
  } else if (type == "Fuse") {
    steps_.push_back(make(Kind::kFuse));
  } else if (type == "Strip") {
    Step s = make(Kind::kStrip);
    const std::string content = require_string(j, "content", file, "Strip decoder");
    size_t i = 0;
    if (content.empty() || !is_valid_utf8(content) ||
        (next_codepoint(content, i), i) != content.size())
      fail(kModule, "{}: Strip decoder: \"content\" must be one character", file);
    i = 0;
    s.content = next_codepoint(content, i);
    s.start = j.value("start", size_t(0));
    s.stop = j.value("stop", size_t(0));
    steps_.push_back(s);
  } else if (type == "Metaspace") {
    Step s = make(Kind::kMetaspace);
    s.from = j.value("replacement", std::string("\u2581"));
    const std::string scheme = j.value("prepend_scheme", std::string());
    s.scheme = scheme == "never" || (scheme.empty() && !j.value("add_prefix_space", true))
                   ? PrependScheme::kNever
                   : PrependScheme::kAlways;
    steps_.push_back(s);
  } else {
    fail(kModule, "{}: unsupported decoder type \"{}\"", file, type);
  }
}

std::string TokenDecoder::decode(std::vector<std::string> tokens) const {
  if (!configured_) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::kByteLevel: tokens = byte_level(tokens); break;
      case Kind::kReplace:
        for (std::string& t : tokens) t = replace_all(t, step.from, step.to);
        break;
      case Kind::kByteFallback: tokens = byte_fallback(std::move(tokens)); break;
      case Kind::kFuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case Kind::kStrip:
        for (std::string& t : tokens) t = strip_chars(t, step.content, step.start, step.stop);
        break;
      case Kind::kMetaspace:
        // Hugging Face drops every replacement character of the first token (its prefix
        // space) and turns the others into spaces.
        for (size_t i = 0; i < tokens.size(); ++i) {
          const bool drop = i == 0 && step.scheme != PrependScheme::kNever;
          tokens[i] = replace_all(tokens[i], step.from, drop ? "" : " ");
        }
        break;
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

const std::vector<std::string_view>& clean_up_patterns() {
  static const std::vector<std::string_view> patterns = {" .",   " ?",  " !",  " ,",   " ' ",
                                                         " n't", " 'm", " 's", " 've", " 're"};
  return patterns;
}

std::string clean_up_tokenization(std::string_view text) {
  std::string out(text);
  for (std::string_view pattern : clean_up_patterns()) {
    if (out.find(pattern) == std::string::npos) continue;
    // Each rule drops the leading space (" ' " becomes "'", dropping both).
    std::string_view replacement = pattern == " ' " ? std::string_view("'") : pattern.substr(1);
    out = replace_all(out, pattern, replacement);
  }
  return out;
}

}  // namespace quad::tokenizer_detail
