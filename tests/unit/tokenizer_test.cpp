// Tokenizer tests: the Hugging Face reference ids and decodes of the shared models (probes,
// prompts, whole-file token counts), StreamDecoder, BPE details on small synthetic tokenizers,
// and errors on bad input.
#include "quad/io/tokenizer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "quad/core/error.h"
#include "test_support.h"

namespace quad {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;


json load_json(const fs::path& path) {
  return json::parse(test::read_file(path));
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// The model folders and their keys in hf_reference.json.
struct ModelCase {
  const char* dir;
  const char* reference_key;
};
const ModelCase kModels[] = {{"stories260K", "stories260K-hf"},
                             {"tiny-llama3-30m", "tiny-llama3-30m"},
                             {"tiny-qwen2-27m", "tiny-qwen2-27m"}};

void PrintTo(const ModelCase& c, std::ostream* os) {
  *os << c.dir;
}

std::string model_name(const ::testing::TestParamInfo<ModelCase>& info) {
  std::string name = info.param.dir;
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

// Fixture: the model's tokenizer and its section of hf_reference.json (skips when absent).
class TokenizerModel : public ::testing::TestWithParam<ModelCase> {
 protected:
  void SetUp() override {
    const std::string rel = std::string("models/") + GetParam().dir;
    QUAD_REQUIRE_ASSET(model_dir, rel);
    QUAD_REQUIRE_ASSET(reference_path, "goldens/hf_reference.json");
    dir_ = model_dir;
    reference_ = load_json(reference_path)["models"][GetParam().reference_key];
    tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(dir_.string()));
  }
  const Tokenizer& tok() const { return *tokenizer_; }

  fs::path dir_;
  json reference_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_P(TokenizerModel, ProbesEncodeToReferenceIds) {
  const json& probes = reference_["tokenizer_probes"];
  ASSERT_FALSE(probes.empty());
  for (const auto& [text, probe] : probes.items())
    EXPECT_EQ(tok().encode(text), probe["ids"].get<std::vector<int32_t>>()) << json(text).dump();
}

TEST_P(TokenizerModel, ProbesDecodeToReferenceText) {
  for (const auto& [text, probe] : reference_["tokenizer_probes"].items()) {
    const auto ids = probe["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok().decode(ids), probe["decoded"].get<std::string>()) << json(text).dump();
  }
}

// BOS/EOS and sizes agree with the model's own config files and with the reference ids.
TEST_P(TokenizerModel, SpecialTokensFollowConfig) {
  const json config = load_json(dir_ / "config.json");
  const json tokenizer_config = load_json(dir_ / "tokenizer_config.json");
  const json tokenizer_json = load_json(dir_ / "tokenizer.json");
  EXPECT_EQ(tok().vocab_size(), config["vocab_size"].get<int32_t>());

  auto id_of = [&](const std::string& content) -> int32_t {
    for (const json& t : tokenizer_json["added_tokens"])
      if (t["content"] == content) return t["id"].get<int32_t>();
    return tokenizer_json["model"]["vocab"].value(content, -1);
  };
  auto content_of = [&](const char* key) -> std::string {
    const json& v = tokenizer_config.value(key, json());
    return v.is_object()   ? v["content"].get<std::string>()
           : v.is_string() ? v.get<std::string>()
                           : "";
  };
  const std::string eos = content_of("eos_token"), bos = content_of("bos_token");
  EXPECT_EQ(tok().eos_id(), id_of(eos));
  EXPECT_EQ(tok().bos_id(), bos.empty() ? -1 : id_of(bos));
  if (tok().bos_id() >= 0) {
    EXPECT_TRUE(tok().is_special(tok().bos_id()));
  }
  EXPECT_TRUE(tok().is_special(tok().eos_id()));

  // The reference ids were made with default special tokens: they start with BOS iff the
  // model adds one.
  for (const auto& [text, probe] : reference_["tokenizer_probes"].items()) {
    const int32_t first = probe["ids"][0].get<int32_t>();
    EXPECT_EQ(tok().adds_bos(), tok().bos_id() >= 0 && first == tok().bos_id()) << text;
    EXPECT_EQ(tok().encode(text, /*add_special=*/false).front(),
              probe["ids"][tok().adds_bos() ? 1 : 0].get<int32_t>());
    EXPECT_FALSE(tok().is_special(probe["ids"].back().get<int32_t>()));
  }
  const bool byte_level =
      tokenizer_json["pre_tokenizer"].dump().find("ByteLevel") != std::string::npos;
  EXPECT_EQ(tok().kind(), byte_level ? "byte-level-bpe" : "sentencepiece-bpe");
}

// Every added token of tokenizer.json is split out of surrounding text as one id, and decode
// drops it with skip_special when it is special.
TEST_P(TokenizerModel, AddedTokensAreSplitOutOfText) {
  const json tokenizer_json = load_json(dir_ / "tokenizer.json");
  const std::string left = "Hi", right = "there";
  for (const json& t : tokenizer_json["added_tokens"]) {
    const std::string content = t["content"];
    const int32_t id = t["id"];
    const auto ids = tok().encode(left + content + right, false);
    // The text on each side is encoded on its own.
    std::vector<int32_t> expected = tok().encode(left, false);
    expected.push_back(id);
    const auto after = tok().encode(right, false);
    expected.insert(expected.end(), after.begin(), after.end());
    EXPECT_EQ(ids, expected) << content;
    EXPECT_NE(tok().decode(ids, /*skip_special=*/false).find(content), std::string::npos);
    if (t["special"].get<bool>()) {
      EXPECT_EQ(tok().decode(ids).find(content), std::string::npos) << content;
    }
  }
}

// Streams each text's ids through a StreamDecoder: no piece is ever taken back, and the pieces
// plus flush() add up to decode(ids). Returns whether some prefix of the ids ended inside a
// character (its decode ends in U+FFFD), i.e. whether the split-character case was exercised.
bool check_stream_decoding(const Tokenizer& tok, const std::vector<std::string>& texts) {
  bool saw_split_character = false;
  for (const std::string& text : texts) {
    const auto ids = tok.encode(text);
    const std::string full = tok.decode(ids);
    StreamDecoder stream(tok);
    std::string joined;
    for (size_t k = 0; k < ids.size(); ++k) {
      joined += stream.push(ids[k]);
      EXPECT_EQ(full.compare(0, joined.size(), joined), 0)
          << json(text).dump() << " after " << k + 1 << " ids: " << json(joined).dump();
      const std::string partial = tok.decode({ids.begin(), ids.begin() + long(k) + 1});
      if (partial.size() >= 3 && partial.compare(partial.size() - 3, 3, "\xEF\xBF\xBD") == 0)
        saw_split_character = true;
    }
    joined += stream.flush();
    EXPECT_EQ(joined, full) << json(text).dump();
  }
  return saw_split_character;
}

const char* const kSpacedPunctuation =
    "Hello , world . It 's odd , is n't it ? Yes ! I 'm sure they 're fine ' ok ' ";

TEST_P(TokenizerModel, StreamDecoderMatchesDecode) {
  std::vector<std::string> texts;
  for (const auto& [text, probe] : reference_["tokenizer_probes"].items()) texts.push_back(text);
  texts.push_back("Ünïcödé 日本語 🙂👍🏽 mixed with ascii, and “quotes”.");
  texts.push_back(kSpacedPunctuation);
  texts.push_back("ends with a split emoji 👍");
  EXPECT_TRUE(check_stream_decoding(tok(), texts)) << "no character was split across tokens";
}

// Whole files as the perplexity runs read them; the counts are hf_reference.json's.
TEST_P(TokenizerModel, WholeFileTokenCountsMatchReference) {
  const json& ppl = reference_["ppl"];
  for (const char* rel : {"data/wikitext2/wiki.test.raw", "data/tinystories/tinystories_val.txt"}) {
    QUAD_REQUIRE_ASSET(path, rel);
    const std::string name = path.filename().string();
    ASSERT_TRUE(ppl.contains(name)) << name;
    EXPECT_EQ(tok().encode(test::read_file(path)).size(), ppl[name]["tokens"].get<size_t>()) << name;
  }
}

TEST_P(TokenizerModel, InvalidUtf8IsReplacedNotRejected) {
  const auto ids = tok().encode("ok \xFF\xFE bytes");
  EXPECT_NE(tok().decode(ids).find("\xEF\xBF\xBD"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Models, TokenizerModel, ::testing::ValuesIn(kModels), model_name);

// <model>.prompts.json: the prompts' ids and the decoded greedy continuation.
TEST(Tokenizer, PromptsMatchGoldens) {
  for (const char* model : {"tiny-llama3-30m", "tiny-qwen2-27m"}) {
    QUAD_REQUIRE_ASSET(dir, std::string("models/") + model);
    QUAD_REQUIRE_ASSET(golden, std::string("goldens/") + model + ".prompts.json");
    const Tokenizer tok = Tokenizer::load(dir.string());
    const json prompts = load_json(golden);
    ASSERT_FALSE(prompts.empty());
    for (const auto& [prompt, entry] : prompts.items()) {
      const auto ids = entry["ids"].get<std::vector<int32_t>>();
      EXPECT_EQ(tok.encode(prompt), ids) << model << ": " << prompt;
      const auto greedy = entry["greedy_ids"].get<std::vector<int32_t>>();
      ASSERT_GE(greedy.size(), ids.size());
      const std::vector<int32_t> continuation(greedy.begin() + long(ids.size()), greedy.end());
      EXPECT_EQ(tok.decode(continuation), entry["greedy_text"].get<std::string>()) << model;
    }
  }
}

// assets/README.md states stories260K's encode("Once upon a time") with BOS.
TEST(Tokenizer, StoriesOnceUponATimeFromReadme) {
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  QUAD_REQUIRE_ASSET(readme, "README.md");
  const std::string text = test::read_file(readme);
  std::smatch m;
  const std::regex pattern(R"(encode\("Once upon a time"\)` with BOS is `\[([0-9, ]+)\]`)");
  ASSERT_TRUE(std::regex_search(text, m, pattern)) << "README.md no longer states the ids";
  const std::vector<int32_t> expected = json::parse("[" + m[1].str() + "]");
  const Tokenizer tok = Tokenizer::load(dir.string());
  EXPECT_EQ(tok.encode("Once upon a time"), expected);
  EXPECT_EQ(tok.decode(expected), "Once upon a time");
}

// tiny-llama3-30m's tokenizer_config.json sets clean_up_tokenization_spaces, but transformers
// >= 5.7 (the reference is 5.17) ignores it for BPE models: decode keeps " ," and " .".
TEST(Tokenizer, BpeDecodeKeepsSpacesBeforePunctuation) {
  for (const char* model : {"tiny-llama3-30m", "tiny-qwen2-27m"}) {
    QUAD_REQUIRE_ASSET(dir, std::string("models/") + model);
    const Tokenizer tok = Tokenizer::load(dir.string());
    EXPECT_EQ(tok.decode(tok.encode(kSpacedPunctuation)), kSpacedPunctuation) << model;
  }
}

// With transformers' escape hatch also set, clean_up_tokenization applies, in decode and in
// StreamDecoder (which then holds back text the clean-up could still change).
TEST(Tokenizer, CleanUpAppliesWithTransformersEscapeHatch) {
  QUAD_REQUIRE_ASSET(source, "models/tiny-llama3-30m");
  const fs::path dir = test::temp_dir("tok-cleanup");
  fs::copy_file(source / "tokenizer.json", dir / "tokenizer.json");
  json config = load_json(source / "tokenizer_config.json");
  config["clean_up_tokenization_spaces"] = true;
  config["clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output"] = true;
  write_file(dir / "tokenizer_config.json", config.dump());
  const Tokenizer tok = Tokenizer::load(dir.string());
  EXPECT_EQ(tok.decode(tok.encode(kSpacedPunctuation)),
            "Hello, world. It's odd, isn't it? Yes! I'm sure they're fine'ok'");
  check_stream_decoding(tok, {kSpacedPunctuation, "a ' . b", "x ' ", "don 't stop , n", "end ."});
}

// --- Small synthetic tokenizers: BPE details, independent of the shared assets. ---

// A BPE tokenizer.json over the letters a, b, c with the given model options and merges.
std::string synthetic_tokenizer(const std::string& model_extra, const std::string& merges,
                                const std::string& added = "[]") {
  return R"({"added_tokens": )" + added + R"(, "model": {"type": "BPE", "unk_token": "<unk>",
    "vocab": {"<unk>": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "bc": 5, "abc": 6, "<sep>": 7},
    "merges": )" +
         merges + model_extra + "}}";
}

Tokenizer load_synthetic(const std::string& tag, const std::string& tokenizer_json) {
  const fs::path dir = test::temp_dir(tag);
  write_file(dir / "tokenizer.json", tokenizer_json);
  return Tokenizer::load(dir.string());
}

TEST(TokenizerBpe, LowestRankMergesFirstInBothMergeFormats) {
  // (b, c) has rank 0 and wins over (a, b); then (a, bc) is no merge.
  for (const char* merges :
       {R"(["b c", "a b", "ab c"])", R"([["b", "c"], ["a", "b"], ["ab", "c"]])"}) {
    const Tokenizer tok = load_synthetic("bpe-rank", synthetic_tokenizer("", merges));
    EXPECT_EQ(tok.encode("abc"), (std::vector<int32_t>{1, 5})) << merges;
    EXPECT_EQ(tok.encode("abcab"), (std::vector<int32_t>{1, 5, 4})) << merges;
  }
  // With (a, b) first, "ab" then merges with "c".
  const Tokenizer tok = load_synthetic("bpe-rank2", synthetic_tokenizer("", R"(["a b", "ab c"])"));
  EXPECT_EQ(tok.encode("abc"), (std::vector<int32_t>{6}));
  EXPECT_EQ(tok.kind(), "sentencepiece-bpe");
  EXPECT_EQ(tok.bos_id(), -1);
  EXPECT_FALSE(tok.adds_bos());
}

TEST(TokenizerBpe, IgnoreMergesEmitsVocabularyWordsWhole) {
  const Tokenizer tok =
      load_synthetic("bpe-ignore", synthetic_tokenizer(R"(, "ignore_merges": true)", R"(["b c"])"));
  EXPECT_EQ(tok.encode("abc"), (std::vector<int32_t>{6}));
  EXPECT_EQ(tok.encode("abcc"), (std::vector<int32_t>{1, 5, 3}));
}

TEST(TokenizerBpe, UnknownCharactersFuseOnlyWhenAsked) {
  const Tokenizer fused =
      load_synthetic("bpe-fuse", synthetic_tokenizer(R"(, "fuse_unk": true)", "[]"));
  EXPECT_EQ(fused.encode("axyb"), (std::vector<int32_t>{1, 0, 2}));
  const Tokenizer separate = load_synthetic("bpe-nofuse", synthetic_tokenizer("", "[]"));
  EXPECT_EQ(separate.encode("axyb"), (std::vector<int32_t>{1, 0, 0, 2}));
}

TEST(TokenizerBpe, AddedTokenStripFlagsAbsorbWhitespace) {
  const std::string sep = R"([{"id": 7, "content": "<sep>", "special": true, "lstrip": LS,
      "rstrip": RS, "normalized": false, "single_word": false}])";
  auto with_flags = [&](const char* ls, const char* rs) {
    std::string s = sep;
    s.replace(s.find("LS"), 2, ls);
    s.replace(s.find("RS"), 2, rs);
    return load_synthetic("bpe-added", synthetic_tokenizer(R"(, "fuse_unk": true)", "[]", s));
  };
  // Spaces are unknown characters here, so they show up as <unk> unless absorbed.
  EXPECT_EQ(with_flags("false", "false").encode("a  <sep>  b"),
            (std::vector<int32_t>{1, 0, 7, 0, 2}));
  EXPECT_EQ(with_flags("true", "false").encode("a  <sep>  b"), (std::vector<int32_t>{1, 7, 0, 2}));
  EXPECT_EQ(with_flags("true", "true").encode("a  <sep>  b"), (std::vector<int32_t>{1, 7, 2}));
  EXPECT_EQ(with_flags("true", "true").decode({1, 7, 2}), "a b");  // no decoder: joined by spaces
}

// --- Errors: quad::Error that names the file. ---

std::string load_error(const fs::path& dir) {
  try {
    Tokenizer::load(dir.string());
  } catch (const Error& e) {
    EXPECT_EQ(e.module(), "tokenizer");
    return e.what();
  }
  ADD_FAILURE() << "no error for " << dir;
  return {};
}

TEST(TokenizerErrors, MissingTokenizerJson) {
  const fs::path dir = test::temp_dir("tok-missing");
  EXPECT_THROW(Tokenizer::load(dir.string()), Error);
  const std::string message = load_error(dir);
  EXPECT_NE(message.find((dir / "tokenizer.json").string()), std::string::npos) << message;
  EXPECT_NE(message.find("not found"), std::string::npos) << message;
}

TEST(TokenizerErrors, NotJson) {
  const fs::path dir = test::temp_dir("tok-notjson");
  write_file(dir / "tokenizer.json", "this is not json {");
  EXPECT_THROW(Tokenizer::load(dir.string()), Error);
  const std::string message = load_error(dir);
  EXPECT_NE(message.find((dir / "tokenizer.json").string()), std::string::npos) << message;
  EXPECT_NE(message.find("not valid JSON"), std::string::npos) << message;
}

TEST(TokenizerErrors, NoModelSection) {
  const fs::path dir = test::temp_dir("tok-nomodel");
  write_file(dir / "tokenizer.json", R"({"version": "1.0", "added_tokens": []})");
  EXPECT_THROW(Tokenizer::load(dir.string()), Error);
  const std::string message = load_error(dir);
  EXPECT_NE(message.find((dir / "tokenizer.json").string()), std::string::npos) << message;
  EXPECT_NE(message.find("no \"model\" section"), std::string::npos) << message;
}

TEST(TokenizerErrors, UnsupportedModelTypes) {
  for (const char* type : {"Unigram", "WordPiece"}) {
    const fs::path dir = test::temp_dir("tok-type");
    write_file(dir / "tokenizer.json",
               std::string(R"({"model": {"type": ")") + type + R"(", "vocab": {}}})");
    EXPECT_THROW(Tokenizer::load(dir.string()), Error);
    const std::string message = load_error(dir);
    EXPECT_NE(message.find((dir / "tokenizer.json").string()), std::string::npos) << message;
    EXPECT_NE(message.find(type), std::string::npos) << message;
  }
}

TEST(TokenizerErrors, BadPiecesNameTheFile) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {synthetic_tokenizer("", R"(["a x"])"), "merge"},
      {synthetic_tokenizer("", R"(["a b c"])"), "merge"},
      {R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"},
          "behavior": "Isolated"}, )" +
           synthetic_tokenizer("", "[]").substr(1),
       "split pattern"},
      {R"({"normalizer": {"type": "Precompiled"}, )" + synthetic_tokenizer("", "[]").substr(1),
       "Precompiled"},
      {R"({"model": {"type": "BPE", "vocab": [1, 2], "merges": []}})", "vocab"},
  };
  for (const auto& [text, expected] : cases) {
    const fs::path dir = test::temp_dir("tok-bad");
    write_file(dir / "tokenizer.json", text);
    const std::string message = load_error(dir);
    EXPECT_NE(message.find((dir / "tokenizer.json").string()), std::string::npos) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(TokenizerErrors, BadTokenizerConfigNamesThatFile) {
  const fs::path dir = test::temp_dir("tok-badconfig");
  write_file(dir / "tokenizer.json", synthetic_tokenizer("", "[]"));
  write_file(dir / "tokenizer_config.json", R"({"bos_token": "<nope>"})");
  const std::string message = load_error(dir);
  EXPECT_NE(message.find((dir / "tokenizer_config.json").string()), std::string::npos) << message;
}

}  // namespace
}  // namespace quad
