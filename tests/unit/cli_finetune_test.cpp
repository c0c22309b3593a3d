// `quad finetune` through the CLI: a short run that lowers the validation loss and writes a
// folder every command accepts, checkpoint + resume giving the same bytes as one uninterrupted
// run, and bad input.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_support.h"

namespace quad {
namespace {

namespace fs = std::filesystem;

class CliFinetune : public ::testing::Test {
 protected:
  // One quantized stories260K (r = 8, RTN: seconds) and a small training text for the suite.
  static void SetUpTestSuite() {
    const auto model = test::asset("models/stories260K");
    const auto calib = test::asset("data/c4/c4_validation_2k.jsonl");
    const auto text = test::asset("data/tinystories/tinystories_val.txt");
    if (model.empty() || calib.empty() || text.empty()) return;
    dir_ = new fs::path(test::temp_dir("clift"));
    const auto r = test::run_quad("quantize -m '" + model.string() + "' -o '" +
                                  (*dir_ / "q").string() + "' --calib '" + calib.string() +
                                  "' --rank 8 --rtn --p-nsamples 4 --p-seqlen 64");
    if (r.exit_code != 0) {
      std::fprintf(stderr, "quantize failed: %s\n", r.err.c_str());
      return;
    }
    std::ofstream(*dir_ / "train.txt") << test::read_file(text).substr(0, 4000);
    std::ofstream(*dir_ / "small.txt") << test::read_file(text).substr(0, 1200);
    ready_ = true;
  }
  void SetUp() override {
    if (!ready_) GTEST_SKIP() << "stories260K / C4 / TinyStories assets not found";
  }
  static std::string base_args(const std::string& out, const std::string& extra = "") {
    return "finetune -m '" + (*dir_ / "q").string() + "' --data '" +
           (*dir_ / "train.txt").string() + "' -o '" + (*dir_ / out).string() +
           "' --seqlen 64 --batch 4 --micro-batch 2 --max-steps 6 --lr 1e-3 --warmup 1 -t 1 " +
           extra;
  }
  static inline fs::path* dir_ = nullptr;
  static inline bool ready_ = false;
};

// Loss per step from a finetune_log.jsonl.
std::vector<nlohmann::json> read_log(const fs::path& path) {
  std::ifstream log(path);
  std::vector<nlohmann::json> steps;
  for (std::string line; std::getline(log, line);) steps.push_back(nlohmann::json::parse(line));
  return steps;
}

// Several epochs in file order over a few chunks: the loss on the first batch, seen again at
// the start of the last epoch, must have gone down.
TEST_F(CliFinetune, LossGoesDownOnRepeatedData) {
  auto r = test::run_quad("finetune -m '" + (*dir_ / "q").string() + "' --data '" +
                          (*dir_ / "small.txt").string() + "' -o '" + (*dir_ / "small").string() +
                          "' --seqlen 64 --batch 4 --micro-batch 4 --epochs 6 --lr 3e-3 "
                          "--warmup 1 --no-shuffle -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto steps = read_log(*dir_ / "small" / "finetune_log.jsonl");
  ASSERT_GE(steps.size(), 6u);
  const size_t per_epoch = steps.size() / 6;
  const double first = steps[0]["loss"], again = steps[5 * per_epoch]["loss"];
  EXPECT_EQ(steps[5 * per_epoch]["epoch"], 6);
  EXPECT_LT(again, first * 0.98) << "first batch: " << first << " -> " << again;
}

TEST_F(CliFinetune, TrainsAndWritesAUsableFolder) {
  auto r = test::run_quad(base_args("ft", "--val 3"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("validation loss"), std::string::npos) << r.out;
  const fs::path out = *dir_ / "ft";
  EXPECT_FALSE(fs::exists(out.string() + ".ckpt")) << "checkpoint removed after success";
  // The training curve: one line per step.
  const auto steps = read_log(out / "finetune_log.jsonl");
  ASSERT_EQ(steps.size(), 6u);
  for (const auto& s : steps) EXPECT_TRUE(s.contains("loss") && s.contains("grad_norm"));
  // The recipe records the run; the folder works with the other commands.
  const auto cfg = nlohmann::json::parse(test::read_file(out / "config.json"));
  const auto& runs = cfg["quantization_config"]["finetune"];
  ASSERT_TRUE(runs.is_array());
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["steps"], 6);
  EXPECT_EQ(runs[0]["format"], "text");
  EXPECT_NE(test::read_file(out / "model.safetensors"),
            test::read_file(*dir_ / "q" / "model.safetensors"));
  auto ppl = test::run_quad("ppl -m '" + out.string() + "' --text '" +
                            (*dir_ / "train.txt").string() + "' --ctx 64 -t 1");
  EXPECT_EQ(ppl.exit_code, 0) << ppl.err;
  auto gen = test::run_quad("generate -m '" + out.string() + "' -p 'Once' -n 4 -t 1");
  EXPECT_EQ(gen.exit_code, 0) << gen.err;
  // Fine-tuning the fine-tuned folder appends a second record.
  auto again = test::run_quad("finetune -m '" + out.string() + "' --data '" +
                              (*dir_ / "train.txt").string() + "' -o '" + (*dir_ / "ft2").string() +
                              "' --seqlen 64 --max-steps 1 -t 1");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const auto cfg2 = nlohmann::json::parse(test::read_file(*dir_ / "ft2" / "config.json"));
  EXPECT_EQ(cfg2["quantization_config"]["finetune"].size(), 2u);
}

// Stopping after 3 of 6 steps leaves a checkpoint and no output; --resume finishes the run with
// exactly the weights of an uninterrupted run.
TEST_F(CliFinetune, ResumeGivesTheUninterruptedResult) {
  auto full = test::run_quad(base_args("full"));
  ASSERT_EQ(full.exit_code, 0) << full.err;
  auto part = test::run_quad(base_args("part", "--stop-after 3"));
  ASSERT_EQ(part.exit_code, 0) << part.err;
  EXPECT_FALSE(fs::exists(*dir_ / "part"));
  EXPECT_TRUE(fs::exists(*dir_ / "part.ckpt" / "checkpoint.safetensors"));
  auto fresh = test::run_quad(base_args("part"));  // a checkpoint exists: refuse to clobber it
  EXPECT_NE(fresh.exit_code, 0);
  EXPECT_NE(fresh.err.find("--resume"), std::string::npos) << fresh.err;
  auto other = test::run_quad(base_args("part", "--resume --seed 5"));  // different settings
  EXPECT_NE(other.exit_code, 0);
  EXPECT_NE(other.err.find("different settings"), std::string::npos) << other.err;
  auto resumed = test::run_quad(base_args("part", "--resume"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("(from 3)"), std::string::npos) << resumed.out;
  EXPECT_EQ(test::read_file(*dir_ / "part" / "model.safetensors"),
            test::read_file(*dir_ / "full" / "model.safetensors"));
}

TEST_F(CliFinetune, BadInputGetsOneClearError) {
  const std::string q = (*dir_ / "q").string(), data = (*dir_ / "train.txt").string();
  const auto fp_model = test::asset("models/stories260K").string();
  std::ofstream(*dir_ / "bad.jsonl") << "{\"question\": \"q\", \"answer\": \"a\"}\nnot json\n";
  struct Case {
    std::string args, expect;
  };
  const std::vector<Case> cases = {
      {"finetune -m '" + fp_model + "' --data '" + data + "' -o '" + (*dir_ / "x").string() + "'",
       "not a quantized folder"},
      {"finetune -m '" + q + "' --data '" + data + "' -o '" + q + "'", "differ"},
      {"finetune -m '" + q + "' --data '" + data + "' -o '" + (*dir_ / "x").string() + "' --lr 5",
       "--lr"},
      {"finetune -m '" + q + "' --data '" + data + "' -o '" + (*dir_ / "x").string() +
           "' --batch 2 --micro-batch 4",
       "--micro-batch"},
      {"finetune -m '" + q + "' --data '" + (*dir_ / "bad.jsonl").string() + "' -o '" +
           (*dir_ / "x").string() + "'",
       "bad.jsonl:2"},
      {"finetune -m '" + q + "' --data '" + (*dir_ / "nothing.txt").string() + "' -o '" +
           (*dir_ / "x").string() + "'",
       "nothing.txt"},
      {"finetune -m '" + q + "' --data '" + data + "' -o '" + (*dir_ / "x").string() +
           "' --val 100000",
       "--val"},
  };
  for (const Case& c : cases) {
    const auto r = test::run_quad(c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << "\n" << r.err;
    // One error line, the last one (informational log lines may precede it).
    const std::string last = r.err.substr(r.err.rfind('\n', r.err.size() - 2) + 1);
    EXPECT_EQ(last.rfind("quad: [", 0), 0u) << r.err;
    EXPECT_EQ(r.err.find("quad: ["), r.err.size() - last.size()) << "exactly one error line";
    EXPECT_FALSE(fs::exists(*dir_ / "x"));
  }
}

}  // namespace
}  // namespace quad
