// Zero-shot evaluation: task parsers (hand-made and the real files), lm-eval's request encoding,
// and the scores of small hand-made tasks on stories260K against log-likelihoods computed here
// independently (one forward pass over the whole sequence, log-softmax summed in this file).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "quad/backend/backend.h"
#include "quad/core/error.h"
#include "quad/eval/loglikelihood.h"
#include "quad/eval/tasks.h"
#include "quad/eval/zeroshot.h"
#include "quad/io/tokenizer.h"
#include "quad/model/model.h"
#include "test_support.h"

namespace quad {
namespace {

namespace fs = std::filesystem;
using eval::Task;
using eval::TaskItem;

// Expects `f` to throw quad::Error whose message contains every needle.
template <typename F>
void expect_error(F f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_EQ(what.rfind("[eval]", 0), 0u) << what;
    for (const auto& n : needles)
      EXPECT_NE(what.find(n), std::string::npos) << "wanted '" << n << "' in: " << what;
  }
}

std::string adapters_item(const std::string& instruction, const std::string& answer) {
  return nlohmann::json({{"instruction", instruction},
                         {"input", ""},
                         {"output", "the correct answer is " + answer},
                         {"answer", answer}})
      .dump();
}

// --- independent reference: whole sequence in one forward pass, log-softmax here ----------

struct RefScore {
  double loglik = 0;
  bool greedy = true;
};

RefScore reference_score(const Model& m, Backend& b, const std::vector<int32_t>& ctx,
                         const std::vector<int32_t>& cont) {
  std::vector<int32_t> all = ctx;
  all.insert(all.end(), cont.begin(), cont.end());
  const int n = int(all.size()), vocab = m.config.vocab_size;
  KVCache cache(m.config, n);
  ForwardScratch s;
  std::vector<float> logits(size_t(n) * vocab);
  forward(m, b, all.data(), n, 0, cache, s, logits.data(), n);
  RefScore r;
  for (size_t j = 0; j < cont.size(); ++j) {
    const float* row = logits.data() + (ctx.size() - 1 + j) * vocab;
    double mx = row[0];
    int best = 0;
    for (int v = 1; v < vocab; ++v)
      if (row[v] > mx) mx = row[v], best = v;
    double z = 0;
    for (int v = 0; v < vocab; ++v) z += std::exp(row[v] - mx);
    r.loglik += row[cont[j]] - mx - std::log(z);
    r.greedy = r.greedy && best == cont[j];
  }
  return r;
}

// Reference for (context, continuation) with whole-string tokenization: the continuation is
// what encode(context + continuation) adds after encode(context) (contexts here have no
// trailing spaces).
RefScore reference(const Model& m, Backend& b, const Tokenizer& tok, const std::string& context,
                   const std::string& continuation) {
  const std::vector<int32_t> ctx = tok.encode(context, true);
  const std::vector<int32_t> whole = tok.encode(context + continuation, true);
  EXPECT_TRUE(std::equal(ctx.begin(), ctx.end(), whole.begin()));
  return reference_score(m, b, ctx, std::vector<int32_t>(whole.begin() + ctx.size(), whole.end()));
}

struct Stories {
  Model model;
  Tokenizer tokenizer;
  std::unique_ptr<Backend> backend;
};

Stories load_stories(const fs::path& dir) {
  return {Model::load(dir.string()), Tokenizer::load(dir.string()), make_cpu_backend()};
}

eval::EvalOptions quiet() {
  eval::EvalOptions o;
  o.progress = false;
  return o;
}

Task user_task(const std::string& jsonl) {
  Task t;
  t.name = "hand";
  t.has_acc_norm = true;
  t.items = eval::parse_user_jsonl(jsonl, "hand.jsonl");
  return t;
}

// --- metrics -------------------------------------------------------------------------------

TEST(EvalMetrics, StderrIsSampleStdOverSqrtN) {
  // lm-eval's mean_stderr: sqrt(sum (x - mean)^2 / (n - 1)) / sqrt(n) = sqrt(p(1-p)/(n-1)).
  EXPECT_NEAR(eval::mean_stderr({1, 0, 1, 1}), std::sqrt(0.75 * 0.25 / 3), 1e-15);
  EXPECT_NEAR(eval::mean_stderr({1, 0, 1, 1}), 0.25, 1e-15);
  std::vector<double> v(100, 0.0);
  for (int i = 0; i < 30; ++i) v[i] = 1;
  EXPECT_NEAR(eval::mean_stderr(v), std::sqrt(0.3 * 0.7 / 99), 1e-15);
  EXPECT_EQ(eval::mean_stderr({1}), 0.0);
}

TEST(EvalMetrics, ArgmaxTiesAndLengths) {
  EXPECT_EQ(eval::argmax_choice({-2, -1, -1}), 1);  // first maximum, as numpy
  const std::vector<double> len = {1, 10};
  EXPECT_EQ(eval::argmax_choice({-2, -5}), 0);
  EXPECT_EQ(eval::argmax_choice({-2, -5}, &len), 1);
  EXPECT_EQ(eval::utf8_length("caf\xc3\xa9"), 4u);  // code points, like Python's len
}

TEST(EvalMetrics, AggregateAccAccNormPerplexity) {
  Task t = user_task(
      R"({"context": "c", "choices": ["a", "bbbbbbbbbb"], "gold": 1}
{"context": "c", "choices": ["a", "bb"], "gold": 0})");
  std::vector<eval::ItemScores> s(2);
  s[0].scores = {{-2, false, 1}, {-5, false, 3}};  // acc wrong, acc_norm right
  s[1].scores = {{-1, false, 1}, {-4, false, 1}};  // both right
  eval::TaskResult r = eval::aggregate(t, s);
  EXPECT_DOUBLE_EQ(r.acc.value, 0.5);
  EXPECT_DOUBLE_EQ(r.acc.se, std::sqrt(0.25 / 1));
  ASSERT_TRUE(r.has_acc_norm);
  EXPECT_DOUBLE_EQ(r.acc_norm.value, 1.0);
  EXPECT_DOUBLE_EQ(r.paper_metric(), 1.0);

  Task lam;
  lam.kind = eval::TaskKind::kLastWord;
  lam.items = eval::parse_lambada("{\"text\": \"a b\"}\n{\"text\": \"c d\"}\n", "l.jsonl");
  s[0].scores = {{-1, true, 1}};
  s[1].scores = {{-3, false, 2}};
  r = eval::aggregate(lam, s);
  EXPECT_DOUBLE_EQ(r.acc.value, 0.5);
  EXPECT_FALSE(r.has_acc_norm);
  EXPECT_NEAR(r.ppl.value, std::exp(2.0), 1e-12);  // exp(-mean per-item log-likelihood)
  EXPECT_DOUBLE_EQ(r.paper_metric(), 0.5);
  EXPECT_NEAR(eval::paper_average({r, eval::aggregate(t, {s[0], s[1]})}), 0.5, 1e-12);
}

// --- parsers -------------------------------------------------------------------------------

TEST(EvalParsers, LlmAdaptersAnswerStyle) {
  const std::string instr =
      "Please choose the correct answer to the question: Which is wet?\n\nAnswer1: water "
      "Answer2: dry sand Answer3: fire\n\nAnswer format: answer1/answer2/answer3";
  auto items =
      eval::parse_llm_adapters("[" + adapters_item(instr, "answer1") + "]", "arc_easy", "arc.json");
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].gold, 0);
  EXPECT_EQ(items[0].choices, (std::vector<std::string>{"water", "dry sand", "fire"}));
  EXPECT_EQ(items[0].requests[1].context, "Question: Which is wet?\nAnswer:");
  EXPECT_EQ(items[0].requests[1].continuation, " dry sand");
  items = eval::parse_llm_adapters("[" + adapters_item(instr, "answer3") + "]", "openbookqa", "o");
  EXPECT_EQ(items[0].requests[0].context, "Which is wet?");
  EXPECT_EQ(items[0].gold, 2);
  items = eval::parse_llm_adapters("[" + adapters_item(instr, "answer2") + "]", "social_iqa", "s");
  EXPECT_EQ(items[0].requests[0].context, "Q: Which is wet?\nA:");
}

TEST(EvalParsers, BoolqAndPiqaAdapters) {
  auto items = eval::parse_llm_adapters(
      "[" +
          adapters_item("Please answer the following question with true or false, question: "
                        "is the sky blue?\n\nAnswer format: true/false",
                        "true") +
          "]",
      "boolq", "b");
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].requests[0].context, "Question: is the sky blue?\nAnswer:");
  EXPECT_EQ(items[0].requests[0].continuation, " no");
  EXPECT_EQ(items[0].requests[1].continuation, " yes");
  EXPECT_EQ(items[0].gold, 1);
  items = eval::parse_llm_adapters(
      "[" +
          adapters_item("Please choose the correct solution to the question: dresser\n\n"
                        "Solution1: pin \n\nSolution2: glue\n\nAnswer format: solution1/solution2",
                        "solution2") +
          "]",
      "piqa_llm_adapters", "p");
  EXPECT_EQ(items[0].choices, (std::vector<std::string>{"pin ", "glue"}));
  EXPECT_EQ(items[0].requests[0].context, "Question: dresser\nAnswer:");
  EXPECT_EQ(items[0].gold, 1);
}

TEST(EvalParsers, WinograndePartialContexts) {
  auto items = eval::parse_llm_adapters(
      "[" +
          adapters_item("Please choose the correct answer to fill in the blank to complete the "
                        "given sentence: Sarah was better than Maria so _ got the easy cases.\n\n"
                        "Option1: Sarah Option2: Maria Answer format: option1/option2",
                        "option2") +
          "]",
      "winogrande", "w");
  ASSERT_EQ(items.size(), 1u);
  const TaskItem& it = items[0];
  EXPECT_EQ(it.gold, 1);
  ASSERT_EQ(it.requests.size(), 2u);
  EXPECT_EQ(it.requests[0].context, "Sarah was better than Maria so Sarah");
  EXPECT_EQ(it.requests[1].context, "Sarah was better than Maria so Maria");
  EXPECT_EQ(it.requests[0].continuation, " got the easy cases.");
  EXPECT_EQ(it.requests[1].continuation, " got the easy cases.");
}

TEST(EvalParsers, PiqaHellaswagLambadaUser) {
  auto piqa = eval::parse_piqa(R"({"goal": "g1", "sol1": "a", "sol2": "b"}
{"goal": "g2", "sol1": "c", "sol2": "d"}
)",
                               "1\n0\n", "valid.jsonl");
  ASSERT_EQ(piqa.size(), 2u);
  EXPECT_EQ(piqa[0].gold, 1);
  EXPECT_EQ(piqa[1].requests[1].context, "Question: g2\nAnswer:");
  EXPECT_EQ(piqa[1].requests[1].continuation, " d");

  auto hs = eval::parse_hellaswag_llamacpp(
      "Label: ctx  here [title] x\n2\ne1\n[step] e2\ne3 \ne4\n", "h.txt");
  ASSERT_EQ(hs.size(), 1u);
  EXPECT_EQ(hs[0].requests[0].context, "Label: ctx here. x");
  EXPECT_EQ(hs[0].choices[1], " e2");  // as Python: strip, then the bracket goes
  EXPECT_EQ(hs[0].requests[2].continuation, " e3");
  EXPECT_EQ(hs[0].gold, 2);
  auto hj = eval::parse_hellaswag_jsonl(
      R"({"activity_label": "Roof", "ctx_a": "A man sits.", "ctx_b": "he IS", "endings": ["a", "b", "c", "d"], "label": "3"})",
      "h.jsonl");
  EXPECT_EQ(hj[0].requests[0].context, "Roof: A man sits. He is");
  EXPECT_EQ(hj[0].gold, 3);
  EXPECT_EQ(eval::hellaswag_preprocess(" [header] How to x [title] Step one.  "),
            " How to x. Step one.");

  auto lam = eval::parse_lambada("{\"text\": \"He said  hello\\n\\nto Bob\"}\n", "l.jsonl");
  EXPECT_EQ(lam[0].requests[0].context, "He said  hello\n\nto");
  EXPECT_EQ(lam[0].requests[0].continuation, " Bob");

  auto user =
      eval::parse_user_jsonl(R"({"context": "2+2=", "choices": ["4", "5"], "gold": 0})", "u.jsonl");
  EXPECT_EQ(user[0].requests[0].continuation, " 4");
}

TEST(EvalParsers, MalformedFilesAreRefused) {
  const std::string ok =
      "Please choose the correct answer to the question: Q?\n\nAnswer1: a Answer2: b\n\n"
      "Answer format: answer1/answer2";
  auto two = [&](const std::string& instr, const std::string& ans, const std::string& task) {
    return [=] {
      eval::parse_llm_adapters(
          "[" + adapters_item(ok, "answer1") + "," + adapters_item(instr, ans) + "]", task,
          "bad.json");
    };
  };
  auto one = [&](const std::string& instr, const std::string& ans, const std::string& task) {
    return
        [=] { eval::parse_llm_adapters("[" + adapters_item(instr, ans) + "]", task, "bad.json"); };
  };
  // Missing option 2, an answer out of range, an option naming another, a wrong prefix.
  expect_error(two("Please choose the correct answer to the question: Q?\n\nAnswer1: a b\n\n"
                   "Answer format: answer1/answer2",
                   "answer1", "arc_easy"),
               {"bad.json item 1", "Answer2"});
  expect_error(two(ok, "answer3", "arc_easy"), {"bad.json item 1", "answer3"});
  expect_error(two("Please choose the correct answer to the question: Q?\n\nAnswer1: a Answer2: "
                   "b Answer2: c\n\nAnswer format: answer1/answer2",
                   "answer1", "arc_easy"),
               {"bad.json item 1", "exactly once"});
  expect_error(two("Pick one: Q?\n\nAnswer1: a Answer2: b\n\nAnswer format: answer1/answer2",
                   "answer1", "arc_easy"),
               {"bad.json item 1", "does not start with"});
  expect_error(two("Please choose the correct answer to the question: Q?\n\nAnswer1: a Answer2: "
                   "b\n\nAnswer format: answer1/answer2/answer 3",
                   "answer1", "arc_easy"),
               {"bad.json item 1", "answer format"});
  expect_error(one("Please choose the correct answer to fill in the blank to complete the given "
                   "sentence: no blank here.\n\nOption1: a Option2: b Answer format: "
                   "option1/option2",
                   "option1", "winogrande"),
               {"bad.json item 0", "blank"});
  expect_error(one("Please answer the following question with true or false, question: is it"
                   "\n\nAnswer format: true/false",
                   "true", "boolq"),
               {"bad.json item 0", "?"});
  expect_error(one("Please answer the following question with true or false, question: is it?"
                   "\n\nAnswer format: true/false",
                   "yes", "boolq"),
               {"bad.json item 0", "true/false"});
  expect_error([] { eval::parse_llm_adapters("{\"a\": 1}", "arc_easy", "obj.json"); },
               {"obj.json", "array"});
  expect_error([] { eval::parse_llm_adapters("[1, 2", "arc_easy", "cut.json"); },
               {"cut.json", "not valid JSON"});
  expect_error([] { eval::parse_hellaswag_llamacpp("ctx\n1\na\nb\nc\n", "h.txt"); },
               {"h.txt", "multiple of 6"});
  expect_error([] { eval::parse_hellaswag_llamacpp("ctx\n7\na\nb\nc\nd\n", "h.txt"); },
               {"h.txt task 1", "label"});
  expect_error(
      [] {
        eval::parse_piqa("{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}", "", "valid.jsonl");
      },
      {"valid.jsonl", "1 items but 0 labels"});
  expect_error([] { eval::parse_piqa("{\"goal\": \"g\", \"sol1\": \"a\"}", "0", "valid.jsonl"); },
               {"valid.jsonl line 1", "sol2"});
  expect_error([] { eval::parse_lambada("{\"text\": \"a b\"}\n{\"text\": \"a b", "lam.jsonl"); },
               {"lam.jsonl line 2", "not valid JSON"});
  expect_error(
      [] {
        eval::parse_user_jsonl(R"({"context": "c", "choices": ["a", "b"], "gold": 2})", "u.jsonl");
      },
      {"u.jsonl line 1", "out of range"});
  expect_error(
      [] { eval::parse_user_jsonl(R"({"context": "c", "choices": ["a"], "gold": 0})", "u.jsonl"); },
      {"u.jsonl line 1", "choices"});
  expect_error([] { eval::load_task("nosuchtask", "/nonexistent"); }, {"unknown task"});
  expect_error([] { eval::load_task("piqa", "/nonexistent"); }, {"/nonexistent/piqa"});
}

TEST(EvalParsers, LoadTaskPicksFilesAndUserJsonl) {
  const fs::path dir = test::temp_dir("eval_load");
  fs::create_directories(dir / "hellaswag");
  std::ofstream(dir / "hellaswag" / "hellaswag_val.jsonl")
      << R"({"activity_label": "A", "ctx_a": "x.", "ctx_b": "", "endings": ["a", "b"], "label": 1})"
      << "\n";
  Task h = eval::load_task("hellaswag", dir.string());
  EXPECT_EQ(h.source, (dir / "hellaswag" / "hellaswag_val.jsonl").string());
  ASSERT_EQ(h.items.size(), 1u);
  EXPECT_EQ(h.items[0].requests[0].context, "A: x.");  // empty ctx_b: the trailing space strips
  EXPECT_TRUE(h.has_acc_norm);
  std::ofstream(dir / "mine.jsonl") << R"({"context": "c", "choices": ["a", "b"], "gold": "1"})"
                                    << "\n";
  Task u = eval::load_task((dir / "mine.jsonl").string(), "/nonexistent");
  EXPECT_EQ(u.name, "mine");
  EXPECT_EQ(u.items[0].gold, 1);
}

// Every item of every real file parses; the counts are those of SOURCES.md.
TEST(EvalParsers, RealFilesParseWithStatedCounts) {
  QUAD_REQUIRE_ASSET(data, "data/zeroshot");
  const std::vector<std::pair<std::string, size_t>> counts = {
      {"piqa", 1838},       {"hellaswag", 10042},
      {"arc_easy", 2376},   {"arc_challenge", 1172},
      {"winogrande", 1267}, {"lambada_openai", 5153},
      {"openbookqa", 500},  {"boolq", 3270},
      {"social_iqa", 1954}, {"piqa_llm_adapters", 1838}};
  std::map<std::string, Task> tasks;
  for (const auto& [name, n] : counts) {
    SCOPED_TRACE(name);
    Task t = eval::load_task(name, data.string());
    EXPECT_EQ(t.items.size(), n);
    for (const TaskItem& it : t.items) {
      ASSERT_FALSE(it.requests.empty());
      ASSERT_EQ(it.requests.size(), it.choices.size());
      ASSERT_LT(size_t(it.gold), it.choices.size());
    }
    tasks[name] = std::move(t);
  }
  EXPECT_EQ(tasks["arc_challenge"].items[0].gold, 2);
  EXPECT_EQ(tasks["arc_challenge"].items[0].choices[2], "Planetary days will become shorter.");
  EXPECT_EQ(tasks["social_iqa"].items[0].choices.size(), 3u);
  EXPECT_EQ(tasks["hellaswag"].items[0].requests[0].context,
            "Roof shingle removal: A man is sitting on a roof. he");
  EXPECT_EQ(tasks["hellaswag"].items[0].gold, 3);
  // The llm_adapters copy of PIQA is the official dev set: same goals, solutions and labels.
  const auto& a = tasks["piqa"].items;
  const auto& b = tasks["piqa_llm_adapters"].items;
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i)
    same += a[i].gold == b[i].gold && a[i].choices == b[i].choices &&
            a[i].requests[0].context == b[i].requests[0].context;
  EXPECT_EQ(same, a.size());
}

// --- encoding and scoring on stories260K -----------------------------------------------------

TEST(EvalScoring, EncodePairMovesTrailingSpacesAndHandlesEmptyContext) {
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  Tokenizer tok = Tokenizer::load(dir.string());
  ASSERT_TRUE(tok.adds_bos());
  auto r = eval::encode_request(tok, {"Once upon a time ", "there"}, eval::BosMode::kAuto);
  EXPECT_EQ(r.context, tok.encode("Once upon a time", true));
  const auto whole = tok.encode("Once upon a time there", true);
  EXPECT_EQ(r.continuation, std::vector<int32_t>(whole.begin() + r.context.size(), whole.end()));
  r = eval::encode_request(tok, {"Once", " upon"}, eval::BosMode::kOff);
  EXPECT_EQ(r.context, tok.encode("Once", false));
  r = eval::encode_request(tok, {"", "Once"}, eval::BosMode::kAuto);
  EXPECT_EQ(r.context, std::vector<int32_t>{tok.bos_id()});
  EXPECT_EQ(r.continuation, tok.encode("Once", false));
}

TEST(EvalScoring, LoglikelihoodsMatchFullSequenceReference) {
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  Stories s = load_stories(dir);
  eval::Scorer scorer(s.model, *s.backend);
  const std::string ctx = "Once upon a time, there was a little";
  const std::vector<std::string> conts = {" girl", " girl named Lily.", " dog", " xylophone"};
  std::vector<eval::TokenizedRequest> reqs;
  for (const auto& c : conts)
    reqs.push_back(eval::encode_request(s.tokenizer, {ctx, c}, eval::BosMode::kAuto));
  const auto scores = scorer.score(reqs);
  for (size_t i = 0; i < conts.size(); ++i) {
    SCOPED_TRACE(conts[i]);
    RefScore ref = reference(s.model, *s.backend, s.tokenizer, ctx, conts[i]);
    EXPECT_NEAR(scores[i].loglik, ref.loglik, 1e-4);
    EXPECT_EQ(scores[i].greedy, ref.greedy);
  }
  // Reused prefix: only the first request pays for the shared context.
  const int ctx_tokens = int(reqs[0].context.size());
  int expected = ctx_tokens - 1;
  for (const auto& r : reqs) expected += int(r.continuation.size());
  EXPECT_EQ(scorer.tokens_run(), expected);
}

// The requests after their shared prefix go through batched passes (forward_branches), split
// when they pass the token budget; one request per pass gives the same scores.
TEST(EvalScoring, BatchedPassesMatchOneRequestPerPass) {
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  Stories s = load_stories(dir);
  const std::string ctx = "Once upon a time, there was a little";
  std::vector<eval::TokenizedRequest> reqs;
  for (const char* c : {" girl", " girl named Lily who liked to play.", " dog", " big red ball"})
    reqs.push_back(eval::encode_request(s.tokenizer, {ctx, c}, eval::BosMode::kAuto));
  eval::Scorer one_by_one(s.model, *s.backend, 1);
  const auto expected = one_by_one.score(reqs);
  for (int budget : {6, eval::Scorer::kDefaultBatchTokens}) {
    SCOPED_TRACE(budget);
    eval::Scorer batched(s.model, *s.backend, budget);
    const auto scores = batched.score(reqs);
    ASSERT_EQ(scores.size(), expected.size());
    for (size_t i = 0; i < scores.size(); ++i) {
      EXPECT_NEAR(scores[i].loglik, expected[i].loglik, 1e-5 * std::fabs(expected[i].loglik));
      EXPECT_EQ(scores[i].greedy, expected[i].greedy);
      EXPECT_EQ(scores[i].tokens, expected[i].tokens);
    }
    EXPECT_EQ(batched.tokens_run(), one_by_one.tokens_run());
  }
}

TEST(EvalScoring, AccAndAccNormDisagreeOnHandMadeTask) {
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  Stories s = load_stories(dir);
  const std::string ctx = "Once upon a time, there was a little girl named Lily. She";
  const std::vector<std::string> choices = {"was", "loved to play outside in the park with her"};
  // gold = the long choice: raw log-likelihood prefers the short one, per-character the long.
  Task t = user_task(nlohmann::json({{"context", ctx}, {"choices", choices}, {"gold", 1}}).dump());
  std::vector<double> ll;
  for (const auto& c : choices)
    ll.push_back(reference(s.model, *s.backend, s.tokenizer, ctx, " " + c).loglik);
  ASSERT_GT(ll[0], ll[1]) << "the test case needs the short choice to win on acc";
  ASSERT_LT(ll[0] / 3, ll[1] / double(choices[1].size())) << "and the long one on acc_norm";
  eval::TaskResult r = eval::evaluate_task(t, s.model, *s.backend, s.tokenizer, quiet());
  EXPECT_EQ(r.items, 1);
  EXPECT_EQ(r.acc.value, 0.0);
  EXPECT_EQ(r.acc_norm.value, 1.0);
}

TEST(EvalScoring, WinograndeScoresSharedContinuationUnderEachContext) {
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  Stories s = load_stories(dir);
  Task t;
  t.name = "winogrande";
  t.items = eval::parse_llm_adapters(
      "[" +
          adapters_item("Please choose the correct answer to fill in the blank to complete the "
                        "given sentence: Lily gave the ball to Tom because _ wanted to play.\n\n"
                        "Option1: Lily Option2: Tom Answer format: option1/option2",
                        "option2") +
          "]",
      "winogrande", "w.json");
  std::vector<double> ll;
  for (const std::string who : {"Lily", "Tom"})
    ll.push_back(reference(s.model, *s.backend, s.tokenizer,
                           "Lily gave the ball to Tom because " + who, " wanted to play.")
                     .loglik);
  eval::Scorer scorer(s.model, *s.backend);
  std::vector<eval::TokenizedRequest> reqs;
  for (const auto& r : t.items[0].requests)
    reqs.push_back(eval::encode_request(s.tokenizer, r, eval::BosMode::kAuto));
  EXPECT_EQ(reqs[0].continuation, reqs[1].continuation);
  const auto scores = scorer.score(reqs);
  EXPECT_NEAR(scores[0].loglik, ll[0], 1e-4);
  EXPECT_NEAR(scores[1].loglik, ll[1], 1e-4);
  eval::TaskResult r = eval::evaluate_task(t, s.model, *s.backend, s.tokenizer, quiet());
  EXPECT_EQ(r.acc.value, ll[1] > ll[0] ? 1.0 : 0.0);
  EXPECT_FALSE(r.has_acc_norm);
}

TEST(EvalScoring, LambadaGreedyRuleAndPerplexity) {
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  Stories s = load_stories(dir);
  const std::string ctx = "Once upon a time, there was a little girl named Lily. She loved to";
  // The model's own greedy next token decides a word it predicts; a word it does not.
  const std::vector<int32_t> ids = s.tokenizer.encode(ctx, true);
  KVCache cache(s.model.config, int(ids.size()));
  ForwardScratch scratch;
  std::vector<float> logits(s.model.config.vocab_size);
  forward(s.model, *s.backend, ids.data(), int(ids.size()), 0, cache, scratch, logits.data(), 1);
  const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<int32_t> with = ids;
  with.push_back(next);
  const std::string word = s.tokenizer.decode(with).substr(ctx.size() + 1);
  ASSERT_FALSE(word.empty());
  ASSERT_EQ(word.find(' '), std::string::npos) << word;
  Task t;
  t.name = "lambada_openai";
  t.kind = eval::TaskKind::kLastWord;
  t.items = eval::parse_lambada(nlohmann::json({{"text", ctx + " " + word}}).dump() + "\n" +
                                    nlohmann::json({{"text", ctx + " xylophone"}}).dump(),
                                "lam.jsonl");
  const RefScore a = reference(s.model, *s.backend, s.tokenizer, ctx, " " + word);
  const RefScore b = reference(s.model, *s.backend, s.tokenizer, ctx, " xylophone");
  EXPECT_TRUE(a.greedy);
  EXPECT_FALSE(b.greedy);
  eval::TaskResult r = eval::evaluate_task(t, s.model, *s.backend, s.tokenizer, quiet());
  EXPECT_DOUBLE_EQ(r.acc.value, 0.5);
  EXPECT_NEAR(std::log(r.ppl.value), -(a.loglik + b.loglik) / 2, 1e-4);
}

// --- the CLI ---------------------------------------------------------------------------------

TEST(EvalCli, AllTasksLimit20AndUserFile) {
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  QUAD_REQUIRE_ASSET(data, "data/zeroshot");
  const std::string base = "eval -m '" + dir.string() + "' --data '" + data.string() + "' -t 1";
  auto r = test::run_quad(base + " --tasks all --limit 20");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const auto& name : eval::builtin_task_names())
    EXPECT_NE(r.out.find("| " + name + " | 20 |"), std::string::npos) << name << "\n" << r.out;
  EXPECT_NE(r.out.find("average (acc_norm where the task has it, else acc) = "), std::string::npos);
  EXPECT_NE(r.err.find("ETA"), std::string::npos) << r.err;

  const fs::path user = test::temp_dir("eval_cli") / "mine.jsonl";
  std::ofstream(user) << R"({"context": "Lily likes to", "choices": ["play", "zq"], "gold": 0})"
                      << "\n";
  auto j1 = test::run_quad(base + " --json --limit 5 --tasks winogrande,'" + user.string() + "'");
  ASSERT_EQ(j1.exit_code, 0) << j1.err;
  auto j2 = test::run_quad(base + " --json --limit 5 --tasks winogrande,'" + user.string() + "'");
  auto a = nlohmann::json::parse(j1.out), b = nlohmann::json::parse(j2.out);
  ASSERT_EQ(a["tasks"].size(), 2u);
  EXPECT_EQ(a["tasks"][1]["task"], "mine");
  EXPECT_EQ(a["tasks"][1]["items"], 1);
  for (auto* j : {&a, &b})
    for (auto& t : (*j)["tasks"]) t.erase("seconds");
  EXPECT_EQ(a["tasks"], b["tasks"]);  // reproducible run to run (timings aside)
}

TEST(EvalCli, BadTaskIsOneLineError) {
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  const fs::path bad = test::temp_dir("eval_bad") / "bad.jsonl";
  std::ofstream(bad) << R"({"context": "c", "choices": ["a", "b"], "gold": 5})"
                     << "\n";
  for (const std::string& tasks : {std::string("nosuch"), "'" + bad.string() + "'"}) {
    auto r = test::run_quad("eval -m '" + dir.string() + "' --tasks " + tasks);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("quad: [eval] "), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace quad
