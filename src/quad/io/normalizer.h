// The tokenizer.json "normalizer" section: Unicode normal forms (via utf8proc), Lowercase,
// Prepend, Replace (string patterns) and Strip, possibly nested in Sequence. Applied to the text
// between added tokens, before pre-tokenization.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace quad::tokenizer_detail {

class Normalizer {
 public:
  // A null section gives a normalizer that does nothing. Throws quad::Error naming `file` on an
  // unsupported type.
  static Normalizer from_json(const nlohmann::json& section, const std::string& file);

  bool empty() const { return steps_.empty(); }
  void normalize(std::string& text) const;

 private:
  enum class Kind { kNFC, kNFD, kNFKC, kNFKD, kLowercase, kPrepend, kReplace, kStrip };
  struct Step {
    Kind kind;
    std::string a, b;                  // Prepend: a; Replace: a -> b
    bool left = false, right = false;  // Strip
  };
  void add(const nlohmann::json& j, const std::string& file);
  std::vector<Step> steps_;
};

}  // namespace quad::tokenizer_detail
