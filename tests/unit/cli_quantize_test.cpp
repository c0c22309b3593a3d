// `quad quantize` through the CLI: determinism, every command on the output, bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "test_support.h"

namespace quad {
namespace {

namespace fs = std::filesystem;

// Fast settings on stories260K (d = 64): rank 8, few calibration windows.
std::string quantize_cmd(const fs::path& model, const fs::path& out, const fs::path& calib,
                         const std::string& extra = "", int rank = 8) {
  return "quantize -m '" + model.string() + "' -o '" + out.string() + "' --calib '" +
         calib.string() + "' --rank " + std::to_string(rank) +
         " --nsamples 4 --seqlen 128 --p-nsamples 4 --p-seqlen 128 " + extra;
}

TEST(CliQuantize, DeterministicAndUsableByEveryCommand) {
  QUAD_REQUIRE_ASSET(model, "models/stories260K");
  QUAD_REQUIRE_ASSET(calib, "data/c4/c4_validation_2k.jsonl");
  QUAD_REQUIRE_ASSET(text, "data/tinystories/tinystories_val.txt");
  fs::path dir = test::temp_dir("cliq");
  for (const char* run : {"a", "b"}) {
    auto r = test::run_quad(quantize_cmd(model, dir / run, calib));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("gptq: 5/5"), std::string::npos) << "layer progress expected";
  }
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"})
    EXPECT_EQ(test::read_file(dir / "a" / f), test::read_file(dir / "b" / f)) << f;
  EXPECT_FALSE(fs::exists(dir / "a.tmp-quad"));
  auto cfg = nlohmann::json::parse(test::read_file(dir / "a" / "config.json"));
  const auto& qc = cfg["quantization_config"];
  EXPECT_EQ(qc["method"], "quad");
  EXPECT_EQ(qc["rank"], 8);
  EXPECT_EQ(qc["w_bits"], 4);
  EXPECT_EQ(qc["a_bits"], 4);
  EXPECT_EQ(qc["od_bits"], 8);
  EXPECT_EQ(qc["calibration_sha256"].get<std::string>().size(), 64u);

  auto inspect = test::run_quad("inspect -m '" + (dir / "a").string() + "'");
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("quantization: quad"), std::string::npos);
  auto gen =
      test::run_quad("generate -m '" + (dir / "a").string() + "' -p 'Once upon a time' -n 8");
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  EXPECT_EQ(gen.out.rfind("Once upon a time", 0), 0u);
  auto fp = test::run_quad("ppl -m '" + model.string() + "' --text '" + text.string() +
                           "' --chunks 8 --json");
  auto q = test::run_quad("ppl -m '" + (dir / "a").string() + "' --text '" + text.string() +
                          "' --chunks 8 --json");
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const double ppl_fp = nlohmann::json::parse(fp.out)["ppl"],
               ppl_q = nlohmann::json::parse(q.out)["ppl"];
  // W4A4 on a 260K-parameter model: worse than FP, but still a language model (FP is ~5).
  EXPECT_GT(ppl_q, ppl_fp);
  EXPECT_LT(ppl_q, 4 * ppl_fp);
  auto bench = test::run_quad("bench -m '" + (dir / "a").string() + "' -p 16 -n 4 -r 1");
  EXPECT_EQ(bench.exit_code, 0) << bench.err;
}

// --max-shard-size: the same tensors split over shards with an index; the folder loads and
// computes exactly as the one-file folder, and repeats byte for byte.
TEST(CliQuantize, ShardedOutputLoadsLikeOneFile) {
  QUAD_REQUIRE_ASSET(model, "models/stories260K");
  QUAD_REQUIRE_ASSET(calib, "data/c4/c4_validation_2k.jsonl");
  QUAD_REQUIRE_ASSET(text, "data/tinystories/tinystories_val.txt");
  fs::path dir = test::temp_dir("cliq_shards");
  for (const char* run : {"one", "sharded", "sharded_again"}) {
    const std::string extra = std::string(run) == "one" ? "" : "--max-shard-size 100kB";
    auto r = test::run_quad(quantize_cmd(model, dir / run, calib, extra));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  EXPECT_TRUE(fs::exists(dir / "one" / "model.safetensors"));
  const auto index =
      nlohmann::json::parse(test::read_file(dir / "sharded" / "model.safetensors.index.json"));
  std::set<std::string> shards;
  for (const auto& [name, file] : index["weight_map"].items()) shards.insert(file);
  EXPECT_GE(shards.size(), 3u);
  for (const std::string& f : shards) {
    EXPECT_LE(fs::file_size(dir / "sharded" / f), 100'000u + 20'000u) << f;  // + its header
    EXPECT_EQ(test::read_file(dir / "sharded" / f), test::read_file(dir / "sharded_again" / f));
  }
  std::string ppl[2];
  for (int i = 0; i < 2; ++i) {
    auto r = test::run_quad("ppl -m '" + (dir / (i ? "sharded" : "one")).string() + "' --text '" +
                            text.string() + "' --chunks 4 --json --device cpu");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ppl[i] = nlohmann::json::parse(r.out)["ppl"].dump();
  }
  EXPECT_EQ(ppl[0], ppl[1]);
}

void expect_error(const test::CommandResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("quad: ["), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

// Flag errors: one "quad: [cli] ..." line, exit status 2.
void expect_usage_error(const test::CommandResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err.rfind("quad: [cli]", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(CliQuantize, BadInput) {
  QUAD_REQUIRE_ASSET(model, "models/stories260K");
  QUAD_REQUIRE_ASSET(calib, "data/c4/c4_validation_2k.jsonl");
  fs::path dir = test::temp_dir("cliqbad");
  // rank must be smaller than the hidden size (64)
  expect_error(test::run_quad(quantize_cmd(model, dir / "r", calib, "", 64)),
               "does not fit hidden size 64");
  EXPECT_FALSE(fs::exists(dir / "r"));
  // empty calibration file
  std::ofstream(dir / "empty.jsonl").close();
  expect_error(test::run_quad(quantize_cmd(model, dir / "e", dir / "empty.jsonl")), "empty");
  // a jsonl line that is not an object with "text"
  std::ofstream(dir / "bad.jsonl") << "{\"text\": \"fine\"}\n{\"txt\": 3}\n";
  expect_error(test::run_quad(quantize_cmd(model, dir / "b", dir / "bad.jsonl")), "bad.jsonl:2");
  // existing output folder is never overwritten without --force
  fs::create_directories(dir / "exists");
  expect_error(test::run_quad(quantize_cmd(model, dir / "exists", calib)), "already exists");
  // absurd flags are refused by the parser
  expect_usage_error(test::run_quad(quantize_cmd(model, dir / "x", calib, "--w-bits 3")), "w-bits");
  expect_usage_error(test::run_quad(quantize_cmd(model, dir / "x", calib, "--method gptq")),
                     "method");
  expect_error(test::run_quad(quantize_cmd(model, dir / "x", calib, "--rtn --gptq")),
               "mutually exclusive");
  expect_usage_error(test::run_quad(quantize_cmd(model, dir / "x", calib, "--max-shard-size 5TB")),
                     "not a size");
  expect_usage_error(test::run_quad(quantize_cmd(model, dir / "x", calib, "--max-shard-size 0")),
                     "must be positive");
  EXPECT_FALSE(fs::exists(dir / "x"));
  expect_error(test::run_quad(quantize_cmd(model, dir / "x", calib, "--random gpt2")),
               "unknown random shape 'gpt2'");
  EXPECT_FALSE(fs::exists(dir / "x"));
}

// --random with a tokenizer larger than the shape's vocabulary: one error line, no output. The
// shared tokenizers all fit the smallest shape, so one grows tiny-llama3-30m's past 8192 tokens.
TEST(CliQuantize, RandomShapeRefusesATokenizerLargerThanItsVocabulary) {
  QUAD_REQUIRE_ASSET(model, "models/tiny-llama3-30m");
  QUAD_REQUIRE_ASSET(calib, "data/c4/c4_validation_2k.jsonl");
  fs::path dir = test::temp_dir("cliq-random-vocab");
  const fs::path tok = dir / "tokenizer";
  fs::create_directories(tok);
  for (const char* f : {"config.json", "tokenizer_config.json"}) fs::copy_file(model / f, tok / f);
  nlohmann::json t = nlohmann::json::parse(std::ifstream(model / "tokenizer.json"));
  auto& vocab = t["model"]["vocab"];
  const int first = 9000;  // above every id the file has (8192 with the added tokens)
  for (int i = 0; i < 200; ++i) vocab["zzextra" + std::to_string(i)] = first + i;
  std::ofstream(tok / "tokenizer.json") << t.dump();
  expect_error(
      test::run_quad(quantize_cmd(tok, dir / "x", calib, "--random tiny-llama3-30m --rtn")),
      "more than the 8192 of the random shape tiny-llama3-30m");
  EXPECT_FALSE(fs::exists(dir / "x"));
}

// --random: a random-weight model of a named shape, streamed layer by layer from its generator,
// quantized and written with the shape's config (marked random) and -m's tokenizer; the result
// is a folder every command loads, and the same run twice gives the same bytes.
TEST(CliQuantize, RandomShapeIsStreamedAndMarked) {
  QUAD_REQUIRE_ASSET(model, "models/stories260K");
  QUAD_REQUIRE_ASSET(calib, "data/c4/c4_validation_2k.jsonl");
  QUAD_REQUIRE_ASSET(text, "data/tinystories/tinystories_val.txt");
  fs::path dir = test::temp_dir("cliq-random");
  for (const char* run : {"a", "b"}) {
    auto r =
        test::run_quad(quantize_cmd(model, dir / run, calib, "--random tiny-llama3-30m --rtn"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("rtn: 7/7"), std::string::npos) << r.err;
  }
  EXPECT_EQ(test::read_file(dir / "a" / "model.safetensors"),
            test::read_file(dir / "b" / "model.safetensors"));
  auto cfg = nlohmann::json::parse(test::read_file(dir / "a" / "config.json"));
  EXPECT_EQ(cfg["quad_random_shape"], "tiny-llama3-30m");
  EXPECT_EQ(cfg["hidden_size"], 512);
  EXPECT_EQ(cfg["quantization_config"]["rank"], 8);
  EXPECT_EQ(test::read_file(dir / "a" / "tokenizer.json"),
            test::read_file(model / "tokenizer.json"));
  auto ppl = test::run_quad("ppl -m '" + (dir / "a").string() + "' --text '" + text.string() +
                            "' --chunks 1 --ctx 64 --json");
  ASSERT_EQ(ppl.exit_code, 0) << ppl.err;
}

}  // namespace
}  // namespace quad
