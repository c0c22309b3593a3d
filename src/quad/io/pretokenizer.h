// The tokenizer.json "pre_tokenizer" section: Split (regex or string), ByteLevel and Metaspace,
// possibly nested in Sequence. Turns one normalized text segment into the pre-tokens that BPE
// encodes one by one (byte-level ones already mapped to GPT-2's byte characters).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace quad::tokenizer_detail {

class Regex;

enum class PrependScheme { kAlways, kFirst, kNever };

class PreTokenizer {
 public:
  // A null section gives a pre-tokenizer that keeps the segment whole. Throws quad::Error
  // naming `file` on an unsupported type or option.
  static PreTokenizer from_json(const nlohmann::json& section, const std::string& file);
  // What transformers >= 5 installs for Llama tokenizers.
  static PreTokenizer metaspace(const std::string& replacement, PrependScheme scheme, bool split);

  bool has_byte_level() const;
  bool has_metaspace() const;

  // Appends the pre-tokens of `segment` to `out`. `at_text_start`: the segment starts at offset
  // 0 of the input text (for Metaspace's prepend_scheme "first").
  void split(const std::string& segment, bool at_text_start, std::vector<std::string>& out) const;

 private:
  enum class Kind { kSplit, kByteLevel, kMetaspace };
  enum class Behavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };
  struct Step {
    Kind kind = Kind::kSplit;
    std::shared_ptr<const Regex> regex;  // Split; ByteLevel with use_regex
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
    bool add_prefix_space = false;  // ByteLevel
    std::string replacement;        // Metaspace
    PrependScheme scheme = PrependScheme::kAlways;
    bool split = false;  // Metaspace
  };
  void add(const nlohmann::json& j, const std::string& file);
  void apply(const Step& step, std::string piece, bool at_text_start,
             std::vector<std::string>& out) const;
  std::vector<Step> steps_;
};

}  // namespace quad::tokenizer_detail
