// A compiled PCRE2 pattern (UTF + UCP, JIT when available) for the Split and ByteLevel
// pre-tokenizers. Hugging Face uses Oniguruma; for the split patterns of GPT-2, Llama 3 and
// Qwen2 both engines give the same leftmost-first matches.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace quad::tokenizer_detail {

class Regex {
 public:
  // `literal`: match `pattern` as a plain string. Throws quad::Error naming `file` if the
  // pattern does not compile.
  Regex(const std::string& pattern, bool literal, const std::string& file);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [begin, end) byte ranges of all non-overlapping matches in `text`, left to
  // right. `text` must be valid UTF-8. Safe to call from several threads.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code*
};

}  // namespace quad::tokenizer_detail
