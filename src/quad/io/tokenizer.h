// Tokenizer from a Hugging Face folder (tokenizer.json + tokenizer_config.json).
//
// Supports the two BPE styles our models use:
//  - SentencePiece style (Llama-2, stories260K): normalizer Prepend("▁") + Replace(" ", "▁"),
//    BPE over characters with byte fallback (<0xXX> tokens), decoder that maps ▁ back to spaces
//    and strips the one leading space.
//  - byte-level style (Llama-3, Qwen2): optional NFC normalizer, Split pre-tokenizer with a
//    regex (PCRE2, UTF + UCP), ByteLevel byte->unicode mapping, BPE with merge ranks
//    (`ignore_merges`: a pre-token that is itself in the vocabulary is emitted whole).
// Merges may be written as "a b" strings or as [a, b] pairs. Added tokens (special or not) are
// matched in the raw text before normalization, longest first. BOS/EOS and whether BOS is
// prepended follow tokenizer.json's post_processor and tokenizer_config.json.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace quad {

class Tokenizer {
 public:
  // Throws quad::Error (module "tokenizer") naming the file on anything it cannot handle.
  static Tokenizer load(const std::string& model_dir);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Encodes UTF-8 text; with add_special, BOS (if the model uses one) is prepended as HF does.
  std::vector<int32_t> encode(std::string_view text, bool add_special = true) const;
  // Decodes ids to UTF-8 text like HF's decode(ids, skip_special_tokens=skip_special).
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const;

  int32_t vocab_size() const;  // including added tokens
  int32_t bos_id() const;      // -1 if none
  int32_t eos_id() const;      // -1 if none
  bool adds_bos() const;       // whether encode(add_special=true) prepends BOS
  bool is_special(int32_t id) const;
  std::string kind() const;  // "sentencepiece-bpe" or "byte-level-bpe"

 private:
  struct Impl;
  friend class StreamDecoder;  // needs the decoder output before clean-up of spaces
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Turns a stream of ids into text pieces as they come (for `quad generate`). Holds back bytes
// of an incomplete UTF-8 sequence, and applies the decoder's leading-space rule once.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer);
  // Returns the new, complete text produced by adding `id`, given all ids so far.
  std::string push(int32_t id);
  // Returns what push() still holds back (an incomplete character at the very end, or a space
  // that transformers' clean-up could still remove); call once when the stream ends, so that
  // everything returned adds up to decode(all ids).
  std::string flush();

 private:
  const Tokenizer& tokenizer_;
  std::vector<int32_t> ids_;
  size_t emitted_ = 0;  // bytes of decode(ids_) already returned
};

}  // namespace quad
