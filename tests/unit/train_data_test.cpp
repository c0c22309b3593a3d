// Fine-tuning data: the Alpaca and math templates, prompt masking, EOS, text chunking, format
// detection and clear errors naming the bad record.
#include <gtest/gtest.h>

#include <fstream>

#include "quad/core/error.h"
#include "quad/train/dataset.h"
#include "test_support.h"

namespace quad::train {
namespace {

namespace fs = std::filesystem;

fs::path write(const fs::path& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir / name) << text;
  return dir / name;
}

std::string error_of(const fs::path& path, const Tokenizer& tok, DataOptions opt = {}) {
  try {
    load_dataset(path.string(), tok, opt);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class TrainData : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto dir = test::asset("models/stories260K");
    if (dir.empty()) GTEST_SKIP() << "stories260K not found (set QUAD_ASSETS)";
    tok = std::make_unique<Tokenizer>(Tokenizer::load(dir.string()));
    tmp = test::temp_dir("train_data");
  }
  std::unique_ptr<Tokenizer> tok;
  fs::path tmp;
};

TEST_F(TrainData, AlpacaTemplateMaskAndEos) {
  const auto path = write(tmp, "a.json", R"([
    {"instruction": "Say hi.", "input": "", "output": "Hi there."},
    {"instruction": "Add.", "input": "2 and 3", "output": "5"}])");
  DataOptions opt;
  opt.seqlen = 512;
  const Dataset plain = load_dataset(path.string(), *tok, opt);
  ASSERT_EQ(plain.format, DataFormat::Alpaca);
  ASSERT_EQ(plain.examples.size(), 2u);
  const std::string full0 = alpaca_prompt("Say hi.", "") + "Hi there.";
  std::vector<int32_t> want = tok->encode(full0);
  want.push_back(tok->eos_id());
  EXPECT_EQ(plain.examples[0].tokens, want);
  EXPECT_EQ(plain.examples[0].num_targets(), int(want.size()) - 1);  // prompt not masked
  EXPECT_NE(alpaca_prompt("Add.", "2 and 3").find("### Input:\n2 and 3"), std::string::npos);
  EXPECT_EQ(alpaca_prompt("Say hi.", "").find("### Input"), std::string::npos);

  opt.mask_prompt = true;
  const Dataset masked = load_dataset(path.string(), *tok, opt);
  const size_t prompt = tok->encode(alpaca_prompt("Say hi.", "")).size();
  const Example& e = masked.examples[0];
  for (size_t i = 0; i < e.tokens.size(); ++i) EXPECT_EQ(e.target[i], i >= prompt) << i;

  opt.seqlen = 8;  // truncated: no EOS
  const Dataset cut = load_dataset(path.string(), *tok, opt);
  EXPECT_EQ(cut.examples[0].tokens.size(), 8u);
  EXPECT_NE(cut.examples[0].tokens.back(), tok->eos_id());
}

TEST_F(TrainData, Gsm8kMathTemplateMasksThePromptAndDropsLongOnes) {
  const auto path =
      write(tmp, "g.jsonl",
            "{\"question\": \"What is 2+3?\", \"answer\": \"2+3 = <<2+3=5>>5\\n#### 5\"}\n"
            "\n"
            "{\"question\": \"" +
                std::string(3000, 'x') + "\", \"answer\": \"1\\n#### 1\"}\n");
  DataOptions opt;
  opt.seqlen = 256;
  const Dataset d = load_dataset(path.string(), *tok, opt);
  EXPECT_EQ(d.format, DataFormat::Gsm8k);
  ASSERT_EQ(d.examples.size(), 1u);
  EXPECT_EQ(d.dropped, 1);
  const std::string x = "Q: What is 2+3?\nA: ";
  std::vector<int32_t> want = tok->encode(x + " " + "2+3 = <<2+3=5>>5");
  want.push_back(tok->eos_id());
  EXPECT_EQ(d.examples[0].tokens, want);
  const size_t prompt = tok->encode(x).size();
  EXPECT_EQ(d.examples[0].num_targets(), int(want.size() - prompt));
}

TEST_F(TrainData, TextIsChunkedIntoFullWindows) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += "Once upon a time there was a little cat. ";
  const auto path = write(tmp, "t.txt", text);
  DataOptions opt;
  opt.seqlen = 64;
  const Dataset d = load_dataset(path.string(), *tok, opt);
  EXPECT_EQ(d.format, DataFormat::Text);
  const size_t total = tok->encode(text).size();
  EXPECT_EQ(d.examples.size(), total / 64);
  for (const Example& e : d.examples) {
    EXPECT_EQ(e.tokens.size(), 64u);
    EXPECT_EQ(e.num_targets(), 63);
  }
  const auto jsonl =
      write(tmp, "t.jsonl", "{\"text\": \"" + text + "\"}\n{\"text\": \"" + text + "\"}\n");
  const Dataset j = load_dataset(jsonl.string(), *tok, opt);
  EXPECT_EQ(j.format, DataFormat::Text);
  EXPECT_EQ(j.examples.size(), (2 * (total + 1)) / 64);  // each document + EOS
}

TEST_F(TrainData, BadRecordsAreNamed) {
  auto has = [](const std::string& msg, const std::string& part) {
    return msg.find(part) != std::string::npos;
  };
  const auto a =
      write(tmp, "bad.json",
            R"([{"instruction": "x", "output": "y"}, {"instruction": 3, "output": "y"}])");
  EXPECT_TRUE(has(error_of(a, *tok), "record 1")) << error_of(a, *tok);
  const auto b =
      write(tmp, "bad.jsonl", "{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"q\"\n");
  EXPECT_TRUE(has(error_of(b, *tok), "bad.jsonl:2")) << error_of(b, *tok);
  const auto c =
      write(tmp, "miss.jsonl", "{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"q\"}\n");
  EXPECT_TRUE(has(error_of(c, *tok), "miss.jsonl:2: missing field \"answer\""))
      << error_of(c, *tok);
  const auto d = write(tmp, "other.jsonl", "{\"prompt\": \"q\"}\n");
  EXPECT_TRUE(has(error_of(d, *tok), "\"text\"")) << error_of(d, *tok);
  const auto e = write(tmp, "empty.txt", "");
  EXPECT_FALSE(error_of(e, *tok).empty());
  EXPECT_TRUE(has(error_of(tmp / "missing.json", *tok), "missing.json"));
  EXPECT_THROW(parse_data_format("csv"), Error);
}

}  // namespace
}  // namespace quad::train
