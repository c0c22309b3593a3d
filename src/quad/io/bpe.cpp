#include "quad/io/bpe.h"

#include <fmt/format.h>

#include <algorithm>
#include <queue>

#include "quad/io/tokenizer_json.h"
#include "quad/io/tokenizer_utf8.h"

namespace quad::tokenizer_detail {

namespace {

// Pre-tokens longer than this are not cached (Hugging Face uses the same bound); a whole
// SentencePiece-style text is one pre-token and would only fill the cache.
constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCacheEntries = 1 << 18;

// A merge's two halves, from "a b" or ["a", "b"].
bool merge_parts(const json& merge, std::string& a, std::string& b) {
  if (merge.is_string()) {
    const auto& s = merge.get_ref<const std::string&>();
    const size_t space = s.find(' ');
    if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) return false;
    a = s.substr(0, space);
    b = s.substr(space + 1);
    return true;
  }
  if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
    a = merge[0].get<std::string>();
    b = merge[1].get<std::string>();
    return true;
  }
  return false;
}

}  // namespace

std::unique_ptr<BpeModel> BpeModel::from_json(const json& model, const std::string& file) {
  auto bpe = std::make_unique<BpeModel>();
  const json& vocab = require(model, "vocab", file, "\"model\" section");
  if (!vocab.is_object())
    fail(kModule, "{}: \"model\".\"vocab\" must be an object of token -> id", file);
  int32_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() >= (int64_t(1) << 30))
      fail(kModule, "{}: vocab entry \"{}\" has a bad id {}", file, it.key(), brief(it.value()));
    const auto id = int32_t(it.value().get<int64_t>());
    bpe->vocab_.emplace(it.key(), id);
    max_id = std::max(max_id, id);
  }
  bpe->id_to_token_.resize(size_t(max_id + 1));
  bpe->has_id_.resize(size_t(max_id + 1));
  for (const auto& [token, id] : bpe->vocab_) {
    bpe->id_to_token_[size_t(id)] = token;
    bpe->has_id_[size_t(id)] = true;
  }

  const json& merges = require(model, "merges", file, "\"model\" section");
  if (!merges.is_array()) fail(kModule, "{}: \"model\".\"merges\" must be a list", file);
  std::string a, b;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    if (!merge_parts(merges[rank], a, b))
      fail(kModule, "{}: merge #{} is neither \"a b\" nor [a, b]: {}", file, rank,
           brief(merges[rank]));
    const int32_t ia = bpe->token_to_id(a), ib = bpe->token_to_id(b);
    const int32_t merged = bpe->token_to_id(a + b);
    if (ia < 0 || ib < 0 || merged < 0)
      fail(kModule, "{}: merge #{} ({} {}) uses a token that is not in the vocab", file, rank, a,
           b);
    // A repeated pair keeps its last rank, like Hugging Face's HashMap construction.
    bpe->merges_[pair_key(ia, ib)] = Merge{int32_t(rank), merged};
  }

  for (int c = 0; c < 128; ++c)
    bpe->ascii_ids_[size_t(c)] = bpe->token_to_id(std::string(1, char(c)));
  for (int v = 0; v < 256; ++v)
    bpe->byte_ids_[size_t(v)] = bpe->token_to_id(fmt::format("<0x{:02X}>", v));

  const json unk = model.value("unk_token", json());
  if (unk.is_string()) bpe->unk_id_ = bpe->token_to_id(unk.get<std::string>());
  bpe->byte_fallback_ = model.value("byte_fallback", false);
  bpe->fuse_unk_ = model.value("fuse_unk", false);
  bpe->ignore_merges_ = model.value("ignore_merges", false);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json v = model.value(key, json());
    if (v.is_string() && !v.get<std::string>().empty())
      fail(kModule, "{}: BPE \"{}\" is not supported", file, key);
  }
  const json dropout = model.value("dropout", json());
  if (dropout.is_number() && dropout.get<double>() > 0.0)
    fail(kModule, "{}: BPE dropout is not supported", file);
  return bpe;
}

int32_t BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || size_t(id) >= id_to_token_.size() || !has_id_[size_t(id)]) return nullptr;
  return &id_to_token_[size_t(id)];
}

void BpeModel::encode(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (word.size() > kMaxCachedWordBytes) {
    encode_uncached(word, out);
    return;
  }
  {
    std::lock_guard lock(cache_mutex_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out.size();
  encode_uncached(word, out);
  std::lock_guard lock(cache_mutex_);
  if (cache_.size() < kMaxCacheEntries)
    cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + long(first), out.end()));
}

void BpeModel::encode_uncached(std::string_view word, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    // A pre-token that is itself a token is emitted whole, whatever the merges would give.
    if (const int32_t id = token_to_id(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }

  // One symbol per character (or per byte with byte fallback), linked as a list.
  struct Symbol {
    int32_t id, prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int32_t id) {
    const auto n = int32_t(symbols.size());
    symbols.push_back({id, n - 1, -1, true});
    if (n > 0) symbols[size_t(n - 1)].next = n;
  };
  bool pending_unk = false;
  for (size_t i = 0; i < word.size();) {
    const auto lead = static_cast<unsigned char>(word[i]);
    const size_t n = std::min(utf8_length(lead), word.size() - i);
    const std::string_view ch = word.substr(i, n);
    i += n;
    const int32_t id = lead < 0x80 ? ascii_ids_[lead] : token_to_id(ch);
    if (id >= 0) {
      if (pending_unk) add(unk_id_);
      pending_unk = false;
      add(id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : ch) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        // Hugging Face does not flush a pending unknown token here; keep that order.
        for (char c : ch) add(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (pending_unk && !fuse_unk_) add(unk_id_);
      pending_unk = true;
    }
  }
  if (pending_unk) add(unk_id_);
  if (symbols.empty()) return;

  struct Candidate {
    int32_t rank, pos, new_id;
  };
  // Lowest rank first; on equal ranks the leftmost position.
  auto lower_priority = [](const Candidate& x, const Candidate& y) {
    return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(lower_priority)> queue(
      lower_priority);
  auto consider = [&](int32_t pos) {
    const Symbol& left = symbols[size_t(pos)];
    if (left.next < 0) return;
    auto it = merges_.find(pair_key(left.id, symbols[size_t(left.next)].id));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.new_id});
  };
  for (int32_t pos = 0; pos + 1 < int32_t(symbols.size()); ++pos) consider(pos);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[size_t(top.pos)];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[size_t(left.next)];
    // Skip stale entries: the pair at this position has changed since it was queued.
    auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[size_t(left.next)].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
  for (int32_t pos = 0; pos >= 0; pos = symbols[size_t(pos)].next)
    out.push_back(symbols[size_t(pos)].id);
}

}  // namespace quad::tokenizer_detail
