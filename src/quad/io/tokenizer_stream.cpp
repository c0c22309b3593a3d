// StreamDecoder: incremental detokenization for generation.
//
// Each push decodes all ids so far (decoders such as Strip and ByteFallback are not
// per-token, so this is the simple way to match decode() exactly) and returns the part of the
// text that can no longer change. Two things can still change at the end of the text:
//  - a U+FFFD run: bytes of a character whose remaining bytes have not arrived yet;
//  - when decode applies transformers' clean-up of spaces (for BPE only with its escape-hatch
//    flag), text after the last space that could still become one of the clean-up patterns
//    (" n" may become " n't", whose space is then dropped).
#include "quad/io/tokenizer.h"
#include "quad/io/tokenizer_impl.h"
#include "quad/io/tokenizer_utf8.h"

namespace quad {

namespace {

// Length of the prefix of `raw` (decoder output) whose clean-up cannot be changed by text
// appended later. Clean-up rules all start with a space and contain no other space except
// " ' ", so only text from the last space on is undecided, and only while it is still a
// proper prefix of a pattern; a " '" just before that space could still be part of " ' ".
size_t settled_for_clean_up(std::string_view raw) {
  const size_t last_space = raw.rfind(' ');
  if (last_space == std::string_view::npos) return raw.size();
  const std::string_view tail = raw.substr(last_space);
  bool undecided = false;
  for (std::string_view pattern : tokenizer_detail::clean_up_patterns())
    undecided =
        undecided || (pattern.size() > tail.size() && pattern.substr(0, tail.size()) == tail);
  if (!undecided) return raw.size();
  size_t cut = last_space;
  while (cut >= 2 && raw[cut - 1] == '\'' && raw[cut - 2] == ' ') cut -= 2;
  return cut;
}

}  // namespace

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

std::string StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  const Tokenizer::Impl& impl = *tokenizer_.impl_;
  std::string text = impl.decode_raw(ids_, /*skip_special=*/true);

  const std::string_view fffd = tokenizer_detail::kReplacementChar;
  size_t stable = text.size();
  while (stable >= fffd.size() &&
         std::string_view(text).substr(stable - fffd.size(), fffd.size()) == fffd)
    stable -= fffd.size();
  text.resize(stable);
  if (impl.clean_up_spaces) {
    text.resize(settled_for_clean_up(text));
    text = tokenizer_detail::clean_up_tokenization(text);
  }

  if (text.size() <= emitted_) return {};
  std::string piece = text.substr(emitted_);
  emitted_ = text.size();
  return piece;
}

std::string StreamDecoder::flush() {
  const std::string text = tokenizer_.decode(ids_, /*skip_special=*/true);
  std::string piece = text.size() > emitted_ ? text.substr(emitted_) : std::string();
  emitted_ = std::max(emitted_, text.size());
  return piece;
}

}  // namespace quad
