// UTF-8 helpers for the tokenizer: code point iteration, validation, and the lossy decoding
// Hugging Face tokenizers use (Rust's String::from_utf8_lossy).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace quad::tokenizer_detail {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Byte length of the UTF-8 sequence that starts with `lead` (1 for invalid leads).
inline size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

// Decodes the code point at s[i] and advances i past it. `s` must be valid UTF-8.
char32_t next_codepoint(std::string_view s, size_t& i);

void append_utf8(std::string& out, char32_t cp);

bool is_valid_utf8(std::string_view s);

// Replaces every maximal invalid subsequence by U+FFFD, exactly like Rust's
// String::from_utf8_lossy (the "substitution of maximal subparts" practice).
std::string utf8_lossy(std::string_view bytes);

// Unicode White_Space (Rust's char::is_whitespace).
bool is_unicode_whitespace(char32_t c);

}  // namespace quad::tokenizer_detail
