// Added tokens ("added_tokens" of tokenizer.json): found in the text before the BPE model sees
// it, leftmost match first and the longest one at that position, honouring the lstrip, rstrip
// and single_word flags like Hugging Face's AddedVocabulary.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace quad::tokenizer_detail {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool normalized = false;  // matched in the normalized text rather than the raw text
  bool lstrip = false, rstrip = false, single_word = false;
};

// A part of a text: an added token (id >= 0) or plain text (id == -1), as byte range.
struct TextPiece {
  int32_t id;
  size_t begin, end;
};

class AddedTokenMatcher {
 public:
  // `pattern` is what to look for: the token's content, or its normalized form.
  void add(std::string pattern, const AddedToken& token);
  bool empty() const { return entries_.empty(); }

  // Appends the pieces of `text`, in order; the plain-text pieces are never empty.
  void split(std::string_view text, std::vector<TextPiece>& out) const;

 private:
  struct Entry {
    std::string pattern;
    AddedToken token;
  };
  // Longest match starting at `pos`, or nullptr.
  const Entry* match_at(std::string_view text, size_t pos) const;

  std::vector<Entry> entries_;
  std::array<std::vector<size_t>, 256> by_first_byte_;  // entry indices, longest pattern first
};

}  // namespace quad::tokenizer_detail
