// Tokenizer: loading a Hugging Face folder, encode and decode.
#include "quad/io/tokenizer.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "quad/io/tokenizer_impl.h"
#include "quad/io/tokenizer_json.h"
#include "quad/io/tokenizer_utf8.h"

namespace quad {

namespace tokenizer_detail {

namespace {

namespace fs = std::filesystem;

// nlohmann's what() starts with "[json.exception.parse_error.101] "; keep only the message.
std::string strip_json_prefix(const std::string& what) {
  const size_t pos = what.find("] ");
  return what.rfind("[json.exception.", 0) == 0 && pos != std::string::npos ? what.substr(pos + 2)
                                                                            : what;
}

json read_json_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(kModule, "{}: file not found", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(kModule, "{}: cannot open: {}", path, std::strerror(errno));
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return json::parse(buffer.str());
  } catch (const json::parse_error& e) {
    fail(kModule, "{}: not valid JSON: {}", path, strip_json_prefix(e.what()));
  }
}

void read_added_tokens(Pipeline& impl, const json& list) {
  if (list.is_null()) return;
  if (!list.is_array()) fail(kModule, "{}: \"added_tokens\" must be a list", impl.json_path);
  for (const json& entry : list) {
    AddedToken t;
    const json& id = require(entry, "id", impl.json_path, "added token");
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (int64_t(1) << 30))
      fail(kModule, "{}: added token has a bad id {}", impl.json_path, brief(id));
    t.id = id.get<int32_t>();
    t.content = require_string(entry, "content", impl.json_path, "added token");
    t.special = entry.value("special", false);
    t.normalized = entry.value("normalized", !t.special);
    t.lstrip = entry.value("lstrip", false);
    t.rstrip = entry.value("rstrip", false);
    t.single_word = entry.value("single_word", false);
    impl.added_by_id[t.id] = impl.added.size();
    impl.added.push_back(std::move(t));
  }
}

void build_added_matchers(Pipeline& impl) {
  for (const AddedToken& t : impl.added) {
    if (!t.normalized) {
      impl.raw_matcher.add(t.content, t);
    } else {
      std::string pattern = t.content;
      impl.normalizer.normalize(pattern);
      impl.normalized_matcher.add(std::move(pattern), t);
    }
  }
}

// transformers >= 5 (which produced the reference ids) does not take the normalizer,
// pre-tokenizer and decoder of a Llama tokenizer from tokenizer.json: its LlamaTokenizer class
// installs Metaspace("▁", prepend_scheme "always" with legacy, else "first", no split), the
// matching decoder, and BPE with byte fallback; only vocab, merges and added tokens come from
// the file. The visible difference from the file's Prepend normalizer: no "▁" is prepended to
// text that already starts with a space.
void apply_transformers_llama_pipeline(Pipeline& impl, const json& config,
                                       const std::string& config_path) {
  const bool add_prefix_space = config_bool(config, "add_prefix_space", true, config_path);
  const bool legacy = config_bool(config, "legacy", false, config_path);
  const PrependScheme scheme = !add_prefix_space ? PrependScheme::kNever
                               : legacy          ? PrependScheme::kAlways
                                                 : PrependScheme::kFirst;
  impl.normalizer = Normalizer();
  impl.pre_tokenizer = PreTokenizer::metaspace("\u2581", scheme, /*split=*/false);
  impl.decoder = TokenDecoder::sentencepiece(add_prefix_space);
  impl.model->set_byte_fallback(true);
  impl.model->set_fuse_unk(true);
}

}  // namespace

void load_pipeline(Pipeline& p, const std::string& model_dir) {
  p.json_path = (fs::path(model_dir) / "tokenizer.json").string();
  const std::string config_path = (fs::path(model_dir) / "tokenizer_config.json").string();
  const std::string& path = p.json_path;

  const json root = read_json_file(path);
  std::error_code ec;
  const json config = fs::exists(config_path, ec) ? read_json_file(config_path) : json();
  if (!root.is_object()) fail(kModule, "{}: expected a JSON object at the top level", path);
  if (!config.is_null() && !config.is_object())
    fail(kModule, "{}: expected a JSON object at the top level", config_path);

  try {
    auto model = root.find("model");
    if (model == root.end() || !model->is_object()) fail(kModule, "{}: no \"model\" section", path);
    std::string type = model->value("type", std::string());
    if (type.empty() && model->contains("merges")) type = "BPE";
    if (type != "BPE")
      fail(kModule, "{}: unsupported model type \"{}\" (only BPE is supported)", path, type);

    p.model = BpeModel::from_json(*model, path);
    p.normalizer = Normalizer::from_json(root.value("normalizer", json()), path);
    p.pre_tokenizer = PreTokenizer::from_json(root.value("pre_tokenizer", json()), path);
    p.decoder = TokenDecoder::from_json(root.value("decoder", json()), path);
    const std::string cls = config.is_object() && config.contains("tokenizer_class") &&
                                    config["tokenizer_class"].is_string()
                                ? config["tokenizer_class"].get<std::string>()
                                : std::string();
    if (cls == "LlamaTokenizer" || cls == "LlamaTokenizerFast")
      apply_transformers_llama_pipeline(p, config, config_path);

    read_added_tokens(p, root.value("added_tokens", json()));
    build_added_matchers(p);
    configure_special_tokens(p, root, config, config_path);

    p.vocab_size = p.model->size();
    for (const AddedToken& t : p.added) p.vocab_size = std::max(p.vocab_size, t.id + 1);
  } catch (const json::exception& e) {
    fail(kModule, "{}: malformed tokenizer: {}", path, strip_json_prefix(e.what()));
  }
}

int32_t Pipeline::token_id(const std::string& content) const {
  for (const AddedToken& t : added)
    if (t.content == content) return t.id;
  return model->token_to_id(content);
}

void Pipeline::encode_segment(const std::string& segment, bool at_text_start,
                              std::vector<int32_t>& ids) const {
  std::vector<std::string> words;
  pre_tokenizer.split(segment, at_text_start, words);
  for (const std::string& word : words) model->encode(word, ids);
}

std::vector<int32_t> Pipeline::encode(std::string_view text, bool add_special) const {
  // Python strings are always valid Unicode; invalid bytes become U+FFFD as if decoded with
  // errors="replace".
  std::string repaired;
  if (!is_valid_utf8(text)) {
    repaired = utf8_lossy(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + prefix.size() + suffix.size() + 1);
  if (add_special) ids.insert(ids.end(), prefix.begin(), prefix.end());

  std::vector<TextPiece> pieces, inner;
  raw_matcher.split(text, pieces);
  for (const TextPiece& piece : pieces) {
    if (piece.id >= 0) {
      ids.push_back(piece.id);
      continue;
    }
    std::string segment(text.substr(piece.begin, piece.end - piece.begin));
    normalizer.normalize(segment);
    const bool at_start = piece.begin == 0;
    if (normalized_matcher.empty()) {
      encode_segment(segment, at_start, ids);
      continue;
    }
    inner.clear();
    normalized_matcher.split(segment, inner);
    for (const TextPiece& sub : inner) {
      if (sub.id >= 0)
        ids.push_back(sub.id);
      else
        encode_segment(segment.substr(sub.begin, sub.end - sub.begin), at_start && sub.begin == 0,
                       ids);
    }
  }

  if (add_special) ids.insert(ids.end(), suffix.begin(), suffix.end());
  return ids;
}

std::string Pipeline::decode_raw(const std::vector<int32_t>& ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (auto it = added_by_id.find(id); it != added_by_id.end()) {
      const AddedToken& t = added[it->second];
      if (!(skip_special && t.special)) tokens.push_back(t.content);
    } else if (const std::string* token = model->id_to_token(id)) {
      tokens.push_back(*token);
    }  // unknown ids are dropped, as Hugging Face does
  }
  return decoder.decode(std::move(tokens));
}

std::string Pipeline::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string text = decode_raw(ids, skip_special);
  return clean_up_spaces ? clean_up_tokenization(text) : text;
}

}  // namespace tokenizer_detail

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const std::string& model_dir) {
  auto impl = std::make_unique<Impl>();
  tokenizer_detail::load_pipeline(*impl, model_dir);
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  return impl_->encode(text, add_special);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  return impl_->decode(ids, skip_special);
}

int32_t Tokenizer::vocab_size() const {
  return impl_->vocab_size;
}
int32_t Tokenizer::bos_id() const {
  return impl_->bos;
}
int32_t Tokenizer::eos_id() const {
  return impl_->eos;
}

bool Tokenizer::adds_bos() const {
  return impl_->bos >= 0 && !impl_->prefix.empty() && impl_->prefix.front() == impl_->bos;
}

bool Tokenizer::is_special(int32_t id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

std::string Tokenizer::kind() const {
  return impl_->pre_tokenizer.has_byte_level() ? "byte-level-bpe" : "sentencepiece-bpe";
}

}  // namespace quad
