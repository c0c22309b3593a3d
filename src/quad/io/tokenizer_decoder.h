// The tokenizer.json "decoder" section: ByteLevel, Replace (string), ByteFallback, Fuse, Strip
// and Metaspace, possibly nested in Sequence; plus transformers' clean_up_tokenization.
// Mirrors Hugging Face's decode_chain: each step maps the list of token strings to a new list,
// and the final list is concatenated.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "quad/io/pretokenizer.h"

namespace quad::tokenizer_detail {

class TokenDecoder {
 public:
  // A null section joins tokens with spaces, as Hugging Face does without a decoder.
  static TokenDecoder from_json(const nlohmann::json& section, const std::string& file);
  // Replace("▁", " "), ByteFallback, Fuse and, with `strip_leading_space`, Strip(" ", 1, 0):
  // what transformers >= 5 installs for Llama tokenizers.
  static TokenDecoder sentencepiece(bool strip_leading_space);

  std::string decode(std::vector<std::string> tokens) const;

 private:
  enum class Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  struct Step {
    Kind kind = Kind::kFuse;
    std::string from, to;                           // Replace; Metaspace: from = replacement
    char32_t content = ' ';                         // Strip
    size_t start = 0, stop = 0;                     // Strip
    PrependScheme scheme = PrependScheme::kAlways;  // Metaspace
  };
  static Step make(Kind kind, std::string from = {}, std::string to = {});
  void add(const nlohmann::json& j, const std::string& file);
  std::vector<Step> steps_;
  bool configured_ = false;
};

// transformers' PreTrainedTokenizerBase.clean_up_tokenization: removes the space before
// . ? ! , and English contractions (" n't", " 'm", " 's", " 've", " 're"), and turns " ' " into
// "'", applied one rule after another over the whole string.
std::string clean_up_tokenization(std::string_view text);

// The patterns clean_up_tokenization rewrites, in its order.
const std::vector<std::string_view>& clean_up_patterns();

}  // namespace quad::tokenizer_detail
