// The loaded tokenizer pipeline (added tokens -> normalizer -> pre-tokenizer -> BPE ->
// post-processor ids; decoder for the way back) behind Tokenizer::Impl. Internal to
// src/quad/io/tokenizer*.cpp.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "quad/io/bpe.h"
#include "quad/io/normalizer.h"
#include "quad/io/pretokenizer.h"
#include "quad/io/tokenizer.h"
#include "quad/io/tokenizer_added.h"
#include "quad/io/tokenizer_decoder.h"

namespace quad {

namespace tokenizer_detail {

struct Pipeline {
  std::string json_path;  // for messages

  std::unique_ptr<BpeModel> model;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  TokenDecoder decoder;

  std::vector<AddedToken> added;
  std::unordered_map<int32_t, size_t> added_by_id;  // id -> index in `added`
  AddedTokenMatcher raw_matcher;                    // tokens matched before normalizing
  AddedTokenMatcher normalized_matcher;             // tokens matched after it

  std::vector<int32_t> prefix, suffix;  // what the post-processor puts around the ids
  int32_t bos = -1, eos = -1;
  bool clean_up_spaces = false;  // apply transformers' clean_up_tokenization in decode
  int32_t vocab_size = 0;

  std::vector<int32_t> encode(std::string_view text, bool add_special) const;
  // The decoder's output, before transformers' clean-up of spaces.
  std::string decode_raw(const std::vector<int32_t>& ids, bool skip_special) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const;

  // Id of a token by content (added tokens first), or -1.
  int32_t token_id(const std::string& content) const;

 private:
  void encode_segment(const std::string& segment, bool at_text_start,
                      std::vector<int32_t>& ids) const;
};

// Loads `model_dir`/tokenizer.json and tokenizer_config.json into `p`.
void load_pipeline(Pipeline& p, const std::string& model_dir);

// Reads the post_processor section of tokenizer.json and tokenizer_config.json (`config`, null
// if absent) into impl.prefix/suffix/bos/eos/clean_up_spaces. Errors name the files.
void configure_special_tokens(Pipeline& impl, const nlohmann::json& tokenizer_json,
                              const nlohmann::json& config, const std::string& config_path);

// A boolean of tokenizer_config.json: `fallback` when absent or null.
bool config_bool(const nlohmann::json& config, const char* key, bool fallback,
                 const std::string& config_path);

}  // namespace tokenizer_detail

struct Tokenizer::Impl : tokenizer_detail::Pipeline {};

}  // namespace quad
