// Bad input through the CLI: each case gives exactly one clear "quad: [module] ..." line on
// stderr and a non-zero exit, never a crash.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_support.h"

namespace quad {
namespace {

namespace fs = std::filesystem;

// A copy of a model folder made of symlinks, so single files can be replaced cheaply.
fs::path linked_copy(const fs::path& src, const std::string& tag) {
  fs::path dst = test::temp_dir(tag);
  for (const auto& e : fs::directory_iterator(src))
    fs::create_symlink(fs::absolute(e.path()), dst / e.path().filename());
  return dst;
}

void expect_one_line_error(const test::CommandResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  std::string err = r.err;
  while (!err.empty() && (err.front() == '\n')) err.erase(0, 1);
  ASSERT_FALSE(err.empty());
  // The error is the last line and starts with "quad: [".
  std::string last = err.substr(0, err.size() - 1);
  last = last.substr(last.rfind('\n') == std::string::npos ? 0 : last.rfind('\n') + 1);
  EXPECT_EQ(last.rfind("quad: [", 0), 0u) << r.err;
  EXPECT_NE(last.find(needle), std::string::npos) << "wanted '" << needle << "' in: " << last;
}

std::string ppl_cmd(const fs::path& model, const fs::path& text) {
  return "ppl -m '" + model.string() + "' --text '" + text.string() + "' --chunks 1";
}

TEST(CliErrors, TruncatedShard) {
  QUAD_REQUIRE_ASSET(src, "models/tiny-llama3-30m");
  QUAD_REQUIRE_ASSET(text, "data/wikitext2/wiki.test.raw");
  fs::path dir = linked_copy(src, "trunc");
  const std::string shard = "model-00003-of-00005.safetensors";
  fs::remove(dir / shard);
  fs::copy_file(src / shard, dir / shard);
  fs::resize_file(dir / shard, fs::file_size(src / shard) - 1000);
  expect_one_line_error(test::run_quad(ppl_cmd(dir, text)), shard);
}

TEST(CliErrors, MissingShardNamedByIndex) {
  QUAD_REQUIRE_ASSET(src, "models/tiny-llama3-30m");
  QUAD_REQUIRE_ASSET(text, "data/wikitext2/wiki.test.raw");
  fs::path dir = linked_copy(src, "missing");
  fs::remove(dir / "model-00002-of-00005.safetensors");
  expect_one_line_error(test::run_quad(ppl_cmd(dir, text)), "model-00002-of-00005.safetensors");
}

TEST(CliErrors, OverlappingOffsets) {
  QUAD_REQUIRE_ASSET(src, "models/stories260K");
  QUAD_REQUIRE_ASSET(text, "data/wikitext2/wiki.test.raw");
  fs::path dir = linked_copy(src, "overlap");
  fs::remove(dir / "model.safetensors");
  // Two F32 tensors of 4 elements sharing bytes 8..16.
  nlohmann::json header = {{"a", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 16}}}},
                           {"b", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {8, 24}}}}};
  std::string h = header.dump();
  uint64_t len = h.size();
  std::ofstream f(dir / "model.safetensors", std::ios::binary);
  f.write(reinterpret_cast<const char*>(&len), 8);
  f << h << std::string(24, '\1');
  f.close();
  expect_one_line_error(test::run_quad(ppl_cmd(dir, text)), "overlap");
}

TEST(CliErrors, UnsupportedArchitecture) {
  QUAD_REQUIRE_ASSET(src, "models/stories260K");
  QUAD_REQUIRE_ASSET(text, "data/wikitext2/wiki.test.raw");
  fs::path dir = linked_copy(src, "arch");
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(src / "config.json"));
  cfg["architectures"] = {"GPT2LMHeadModel"};
  cfg["model_type"] = "gpt2";
  fs::remove(dir / "config.json");
  std::ofstream(dir / "config.json") << cfg.dump();
  expect_one_line_error(test::run_quad(ppl_cmd(dir, text)), "GPT2LMHeadModel");
}

TEST(CliErrors, TokenizerWithoutModel) {
  QUAD_REQUIRE_ASSET(src, "models/stories260K");
  QUAD_REQUIRE_ASSET(text, "data/wikitext2/wiki.test.raw");
  fs::path dir = linked_copy(src, "tok");
  nlohmann::json tok = nlohmann::json::parse(std::ifstream(src / "tokenizer.json"));
  tok.erase("model");
  fs::remove(dir / "tokenizer.json");
  std::ofstream(dir / "tokenizer.json") << tok.dump();
  expect_one_line_error(test::run_quad(ppl_cmd(dir, text)), "tokenizer.json");
}

TEST(CliErrors, EmptyTextFile) {
  QUAD_REQUIRE_ASSET(model, "models/stories260K");
  fs::path empty = test::temp_dir("empty") / "empty.txt";
  std::ofstream(empty).close();
  expect_one_line_error(test::run_quad(ppl_cmd(model, empty)), "empty");
}

TEST(CliErrors, TextShorterThanOneChunk) {
  QUAD_REQUIRE_ASSET(model, "models/stories260K");
  fs::path small = test::temp_dir("small") / "small.txt";
  std::ofstream(small) << "Once upon a time.";
  expect_one_line_error(test::run_quad(ppl_cmd(model, small)), "fewer than one chunk");
}

TEST(CliErrors, NotAModelFolderAndAbsurdFlags) {
  QUAD_REQUIRE_ASSET(text, "data/wikitext2/wiki.test.raw");
  expect_one_line_error(test::run_quad(ppl_cmd("/nonexistent/dir", text)), "/nonexistent/dir");
  // CLI11 rejects out-of-range values before anything runs.
  auto r = test::run_quad("generate -m /nonexistent -p hi -n -5");
  EXPECT_NE(r.exit_code, 0);
  r = test::run_quad("generate -m /nonexistent -p hi --top-p 7");
  EXPECT_NE(r.exit_code, 0);
  // --dtype takes fp32 or bf16 only, on every command that has it; one line naming the flag.
  for (const char* cmd : {"ppl -m /nonexistent --text /dev/null", "generate -m /nonexistent -p hi",
                          "eval -m /nonexistent --tasks piqa", "bench --random tiny-llama3-30m"}) {
    r = test::run_quad(std::string(cmd) + " --dtype fp8");
    EXPECT_EQ(r.exit_code, 2) << cmd;
    EXPECT_EQ(r.err.rfind("quad: [cli] --dtype: fp8 not in", 0), 0u) << cmd << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

// `quad generate --json` at temperature 0 reproduces the transformers greedy continuation.
TEST(Cli, GenerateGreedyMatchesTransformers) {
  for (std::string name : {"tiny-llama3-30m", "tiny-qwen2-27m"}) {
    QUAD_REQUIRE_ASSET(model, "models/" + name);
    QUAD_REQUIRE_ASSET(golden_path, "goldens/" + name + ".prompts.json");
    auto golden = nlohmann::json::parse(std::ifstream(golden_path));
    const std::string prompt = golden.begin().key();
    const nlohmann::json g = golden.begin().value();
    auto want = g["greedy_ids"].get<std::vector<int32_t>>();
    auto prompt_ids = g["ids"].get<std::vector<int32_t>>();
    const int n = int(want.size() - prompt_ids.size());
    auto r = test::run_quad("generate -m '" + model.string() + "' -p '" + prompt + "' -n " +
                            std::to_string(n) + " --json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto got = nlohmann::json::parse(r.out);
    EXPECT_EQ(got["prompt_ids"].get<std::vector<int32_t>>(), prompt_ids);
    std::vector<int32_t> all = prompt_ids;
    for (int32_t id : got["ids"].get<std::vector<int32_t>>()) all.push_back(id);
    EXPECT_EQ(all, want) << name;
    EXPECT_EQ(got["text"].get<std::string>(), g["greedy_text"].get<std::string>());
  }
}

TEST(Cli, InspectDescribesModel) {
  QUAD_REQUIRE_ASSET(model, "models/tiny-qwen2-27m");
  auto r = test::run_quad("inspect -m '" + model.string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Qwen2ForCausalLM"), std::string::npos);
  EXPECT_NE(r.out.find("byte-level-bpe"), std::string::npos);
  EXPECT_NE(r.out.find("BF16"), std::string::npos);
}

}  // namespace
}  // namespace quad
