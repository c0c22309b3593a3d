// The BPE model of tokenizer.json: vocabulary, ranked merges, byte fallback (<0xXX> tokens),
// unknown-token fusing and `ignore_merges`. Encodes one pre-token at a time by always merging
// the lowest-ranked adjacent pair (leftmost on ties) with a priority queue over a linked list
// of symbols, exactly as Hugging Face's Word::merge_all; results for short pre-tokens are cached.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace quad::tokenizer_detail {

// Hash for unordered maps keyed by std::string that also accept std::string_view lookups.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // `model` is tokenizer.json's "model" section (type BPE). Throws quad::Error naming `file`.
  static std::unique_ptr<BpeModel> from_json(const nlohmann::json& model, const std::string& file);

  void set_byte_fallback(bool on) { byte_fallback_ = on; }
  void set_fuse_unk(bool on) { fuse_unk_ = on; }
  bool byte_fallback() const { return byte_fallback_; }

  // Appends the ids of one pre-token. Thread-safe.
  void encode(std::string_view word, std::vector<int32_t>& out) const;

  int32_t token_to_id(std::string_view token) const;             // -1 if absent
  const std::string* id_to_token(int32_t id) const;              // nullptr if absent
  int32_t size() const { return int32_t(id_to_token_.size()); }  // largest id + 1

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
  }
  void encode_uncached(std::string_view word, std::vector<int32_t>& out) const;

  StringMap<int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 128> ascii_ids_{};  // fast path for single ASCII characters
  std::array<int32_t, 256> byte_ids_{};   // <0xXX> tokens, -1 where absent
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;

  mutable std::mutex cache_mutex_;
  mutable StringMap<std::vector<int32_t>> cache_;
};

}  // namespace quad::tokenizer_detail
