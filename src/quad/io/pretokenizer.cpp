#include "quad/io/pretokenizer.h"

#include <algorithm>

#include "quad/io/byte_level.h"
#include "quad/io/pretokenizer_regex.h"
#include "quad/io/tokenizer_json.h"

namespace quad::tokenizer_detail {

namespace {

// GPT-2's split pattern, used by ByteLevel when use_regex is true.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Span {
  size_t begin, end;
  bool flag;  // before folding: "is a match"; after: "is removed"
};

// Every byte of `text` as consecutive spans, the regex matches flagged (Hugging Face's
// Pattern::find_matches).
std::vector<Span> match_spans(const Regex& regex, const std::string& text, bool invert) {
  std::vector<std::pair<size_t, size_t>> matches;
  regex.find_all(text, matches);
  std::vector<Span> spans;
  spans.reserve(2 * matches.size() + 1);
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (b > prev) spans.push_back({prev, b, invert});
    spans.push_back({b, e, !invert});
    prev = e;
  }
  if (prev < text.size()) spans.push_back({prev, text.size(), invert});
  return spans;
}

}  // namespace

PreTokenizer PreTokenizer::from_json(const json& section, const std::string& file) {
  PreTokenizer p;
  if (!section.is_null()) p.add(section, file);
  return p;
}

PreTokenizer PreTokenizer::metaspace(const std::string& replacement, PrependScheme scheme,
                                     bool split) {
  PreTokenizer p;
  Step s;
  s.kind = Kind::kMetaspace;
  s.replacement = replacement;
  s.scheme = scheme;
  s.split = split;
  p.steps_.push_back(std::move(s));
  return p;
}

bool PreTokenizer::has_byte_level() const {
  for (const Step& s : steps_)
    if (s.kind == Kind::kByteLevel) return true;
  return false;
}

bool PreTokenizer::has_metaspace() const {
  for (const Step& s : steps_)
    if (s.kind == Kind::kMetaspace) return true;
  return false;
}

void PreTokenizer::add(const json& j, const std::string& file) {
  const std::string type = component_type(j, file, "pre_tokenizer");
  if (type == "Sequence") {
    const json& list = require(j, "pretokenizers", file, "Sequence pre_tokenizer");
    if (!list.is_array())
      fail(kModule, "{}: Sequence pre_tokenizer: \"pretokenizers\" must be a list", file);
    for (const json& item : list) add(item, file);
  } else if (type == "Split") {
    Step s;
    s.kind = Kind::kSplit;
    const json& pattern = require(j, "pattern", file, "Split pre_tokenizer");
    std::string text;
    if (string_pattern(pattern, text)) {
      s.regex = std::make_shared<Regex>(text, /*literal=*/true, file);
    } else if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
      s.regex = std::make_shared<Regex>(pattern["Regex"].get<std::string>(), false, file);
    } else {
      fail(kModule, "{}: Split pre_tokenizer: bad pattern {}", file, brief(pattern));
    }
    const std::string behavior = require_string(j, "behavior", file, "Split pre_tokenizer");
    if (behavior == "Isolated")
      s.behavior = Behavior::kIsolated;
    else if (behavior == "Removed")
      s.behavior = Behavior::kRemoved;
    else if (behavior == "MergedWithPrevious")
      s.behavior = Behavior::kMergedWithPrevious;
    else if (behavior == "MergedWithNext")
      s.behavior = Behavior::kMergedWithNext;
    else if (behavior == "Contiguous")
      s.behavior = Behavior::kContiguous;
    else
      fail(kModule, "{}: Split pre_tokenizer: unknown behavior \"{}\"", file, behavior);
    s.invert = j.value("invert", false);
    steps_.push_back(std::move(s));
  } else if (type == "ByteLevel") {
    Step s;
    s.kind = Kind::kByteLevel;
    s.add_prefix_space = j.value("add_prefix_space", true);
    if (j.value("use_regex", true)) s.regex = std::make_shared<Regex>(kGpt2Pattern, false, file);
    steps_.push_back(std::move(s));
  } else if (type == "Metaspace") {
    Step s;
    s.kind = Kind::kMetaspace;
    s.replacement = j.value("replacement", std::string("\u2581"));
    const std::string scheme = j.value("prepend_scheme", std::string());
    if (scheme == "always")
      s.scheme = PrependScheme::kAlways;
    else if (scheme == "first")
      s.scheme = PrependScheme::kFirst;
    else if (scheme == "never")
      s.scheme = PrependScheme::kNever;
    else
      s.scheme = j.value("add_prefix_space", true) ? PrependScheme::kAlways : PrependScheme::kNever;
    s.split = j.value("split", true);
    steps_.push_back(std::move(s));
  } else {
    fail(kModule, "{}: unsupported pre_tokenizer type \"{}\"", file, type);
  }
}

void PreTokenizer::split(const std::string& segment, bool at_text_start,
                         std::vector<std::string>& out) const {
  if (segment.empty()) return;
  if (steps_.empty()) {
    out.push_back(segment);
    return;
  }
  std::vector<std::string> current{segment}, next;
  for (const Step& step : steps_) {
    next.clear();
    for (size_t i = 0; i < current.size(); ++i)
      apply(step, std::move(current[i]), at_text_start && i == 0, next);
    current.swap(next);
  }
  for (std::string& piece : current)
    if (!piece.empty()) out.push_back(std::move(piece));
}

void PreTokenizer::apply(const Step& step, std::string piece, bool at_text_start,
                         std::vector<std::string>& out) const {
  switch (step.kind) {
    case Kind::kSplit: {
      std::vector<Span> spans = match_spans(*step.regex, piece, step.invert);
      // Fold the spans by behavior (as Hugging Face's NormalizedString::split does); afterwards
      // `flag` means "removed".
      std::vector<Span> folded;
      folded.reserve(spans.size());
      switch (step.behavior) {
        case Behavior::kIsolated:
          for (Span s : spans) folded.push_back({s.begin, s.end, false});
          break;
        case Behavior::kRemoved: folded = spans; break;
        case Behavior::kContiguous: {
          bool prev_match = false;
          for (Span s : spans) {
            if (s.flag == prev_match && !folded.empty())
              folded.back().end = s.end;
            else
              folded.push_back({s.begin, s.end, false});
            prev_match = s.flag;
          }
          break;
        }
        case Behavior::kMergedWithPrevious: {
          bool prev_match = false;
          for (Span s : spans) {
            if (s.flag && !prev_match && !folded.empty())
              folded.back().end = s.end;
            else
              folded.push_back({s.begin, s.end, false});
            prev_match = s.flag;
          }
          break;
        }
        case Behavior::kMergedWithNext: {
          bool prev_match = false;
          for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
            if (it->flag && !prev_match && !folded.empty())
              folded.back().begin = it->begin;
            else
              folded.push_back({it->begin, it->end, false});
            prev_match = it->flag;
          }
          std::reverse(folded.begin(), folded.end());
          break;
        }
      }
      for (const Span& s : folded)
        if (!s.flag && s.end > s.begin) out.push_back(piece.substr(s.begin, s.end - s.begin));
      return;
    }
    case Kind::kByteLevel: {
      if (step.add_prefix_space && piece.front() != ' ') piece = " " + piece;
      std::vector<std::pair<size_t, size_t>> parts;
      if (step.regex) {
        for (const Span& s : match_spans(*step.regex, piece, false))
          parts.emplace_back(s.begin, s.end);
      } else {
        parts.emplace_back(0, piece.size());
      }
      for (auto [b, e] : parts) {
        std::string mapped;
        mapped.reserve(2 * (e - b));
        byte_level_encode(std::string_view(piece).substr(b, e - b), mapped);
        out.push_back(std::move(mapped));
      }
      return;
    }
    case Kind::kMetaspace: {
      std::string text;
      text.reserve(piece.size() + 8);
      for (char c : piece) {
        if (c == ' ')
          text += step.replacement;
        else
          text += c;
      }
      const bool prepend = step.scheme == PrependScheme::kAlways ||
                           (step.scheme == PrependScheme::kFirst && at_text_start);
      if (prepend && text.rfind(step.replacement, 0) != 0) text.insert(0, step.replacement);
      if (!step.split || step.replacement.empty()) {
        out.push_back(std::move(text));
        return;
      }
      // Each replacement character starts a new pre-token (MergedWithNext).
      size_t start = 0;
      for (size_t hit = text.find(step.replacement, 1); hit != std::string::npos;
           hit = text.find(step.replacement, hit + step.replacement.size())) {
        out.push_back(text.substr(start, hit - start));
        start = hit;
      }
      out.push_back(text.substr(start));
      return;
    }
  }
}

}  // namespace quad::tokenizer_detail
