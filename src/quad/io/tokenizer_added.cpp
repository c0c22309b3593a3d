#include "quad/io/tokenizer_added.h"

#include <algorithm>

#include "quad/io/tokenizer_utf8.h"

namespace quad::tokenizer_detail {

namespace {

// Start of the last code point before `end`.
size_t previous_char(std::string_view text, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
  return i;
}

bool is_word_char(char32_t c) {
  // ASCII letters, digits and '_'; any non-ASCII character is counted as a word character,
  // which is what matters for the single_word flag in practice.
  return c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= 0x80 && !is_unicode_whitespace(c));
}

}  // namespace

void AddedTokenMatcher::add(std::string pattern, const AddedToken& token) {
  if (pattern.empty()) return;
  entries_.push_back({std::move(pattern), token});
  const size_t index = entries_.size() - 1;
  auto& bucket = by_first_byte_[static_cast<unsigned char>(entries_[index].pattern[0])];
  bucket.push_back(index);
  std::stable_sort(bucket.begin(), bucket.end(), [&](size_t a, size_t b) {
    return entries_[a].pattern.size() > entries_[b].pattern.size();
  });
}

const AddedTokenMatcher::Entry* AddedTokenMatcher::match_at(std::string_view text,
                                                            size_t pos) const {
  for (size_t index : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
    const Entry& e = entries_[index];
    if (text.compare(pos, e.pattern.size(), e.pattern) == 0) return &e;
  }
  return nullptr;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<TextPiece>& out) const {
  size_t done = 0;  // end of the last emitted piece
  size_t pos = 0;
  while (pos < text.size()) {
    if (by_first_byte_[static_cast<unsigned char>(text[pos])].empty()) {
      ++pos;
      continue;
    }
    const Entry* e = match_at(text, pos);
    if (!e) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + e->pattern.size();
    if (e->token.single_word) {
      size_t i = previous_char(text, start);
      const bool word_before = start > 0 && is_word_char(next_codepoint(text, i));
      i = stop;
      const bool word_after = stop < text.size() && is_word_char(next_codepoint(text, i));
      if (word_before || word_after) {
        pos = stop;
        continue;
      }
    }
    if (e->token.lstrip) {
      while (start > done) {
        size_t i = previous_char(text, start);
        const size_t at = i;
        if (!is_unicode_whitespace(next_codepoint(text, i))) break;
        start = at;
      }
    }
    if (e->token.rstrip) {
      while (stop < text.size()) {
        size_t i = stop;
        if (!is_unicode_whitespace(next_codepoint(text, i))) break;
        stop = i;
      }
    }
    if (start > done) out.push_back({-1, done, start});
    out.push_back({e->token.id, start, stop});
    done = pos = stop;
  }
  if (done < text.size()) out.push_back({-1, done, text.size()});
}

}  // namespace quad::tokenizer_detail
