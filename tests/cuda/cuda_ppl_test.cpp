// End to end on the GPU, on the shared models FP and quantized (QUAD W4A4/A8 with fast
// calibration settings, quantized on the CPU):
//  - a prefill and decode steps through CheckingBackend (cuda vs cpu on the same inputs, op by
//    op): the integer ops bit for bit, the fp ops within their op-harness tolerances;
//  - `quad ppl` with --device cuda against --device cpu: FP within 0.2% (the bound);
//    quantized also with --dtype bf16 (the block ops);
//  - FP greedy generations agree for 16 tokens;
//  - teacher-forced next-token predictions (the same 512 tokens through both backends, argmax
//    and KL divergence at every position): FP to fp32 rounding; quantized within 2× the mean
//    KL divergence between the cpu and ref backends.
// The quantized models are chaotic under rounding: one activation code that lands on the other
// side of a rounding boundary changes the rest of that token's path. Perplexity, measured on the
// H100 host (2026-11) on one stories260K W4A4 folder: cpu vs cuda 0.4%, and the cpu backend there
// vs the cpu backend on a CI machine (other OpenBLAS, AVX2 instead of AVX-512) 0.8%, while every
// op agreed (the CheckingBackend check). Even two CPU implementations disagree: on a fast
// tiny-llama3-30m W4A4/A8 folder, `quad generate --backend cpu` and `--backend ref` differ from
// the first greedy token on. Teacher-forced (2026-11-24), cuda differed from cpu at 47 of 512
// positions on a tiny-llama3-30m W4A4/A8 folder (mean KL 0.014) and at 97 on a stories260K one
// (0.058), against 16 and 27 (0.004, 0.008) for ref, while the GPU held the outlier activations
// in fp16; carried as an fp16 pair (2026-11-25) 22 and 31 (0.0054, 0.0086). So quantized
// perplexity is only held within 2% here, generations are reported, not compared, and the
// op-level check and the teacher-forced KL bound are what guard them.
// Each model is skipped when absent from $QUAD_ASSETS (scripts/gpu.sh carries one or more of
// them to the GPU machine).
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "checking_backend.h"
#include "cuda_test_util.h"
#include "quad/eval/perplexity.h"
#include "quad/io/tokenizer.h"
#include "quad/model/model.h"
#include "test_support.h"

namespace quad {
namespace {

namespace fs = std::filesystem;

constexpr double kFpPplRelTol = 2e-3;
constexpr double kQuantPplRelTol = 2e-2;

nlohmann::json last_json(const test::CommandResult& r) {
  return nlohmann::json::parse(r.out.substr(r.out.rfind('{')));
}

nlohmann::json ppl(const fs::path& model, const fs::path& text, const std::string& device,
                   const std::string& flags = "") {
  auto r = test::run_quad("ppl -m '" + model.string() + "' --text '" + text.string() +
                          "' --ctx 256 --chunks 4 --json --device " + device + " " + flags);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return nullptr;
  auto j = last_json(r);
  EXPECT_EQ(j["backend"], device);
  return j;
}

// cuda_flags: e.g. "--dtype bf16" (reduced precision allowed: the block ops).
void expect_same_ppl(const fs::path& model, const fs::path& text, const std::string& what,
                     double rel_tol, const std::string& cuda_flags = "") {
  const auto cpu = ppl(model, text, "cpu"), gpu = ppl(model, text, "cuda", cuda_flags);
  if (cpu.is_null() || gpu.is_null()) return;
  EXPECT_EQ(cpu["scored"], gpu["scored"]);
  const double a = cpu["ppl"].get<double>(), b = gpu["ppl"].get<double>();
  EXPECT_TRUE(std::isfinite(b));
  EXPECT_NEAR(b, a, rel_tol * a) << what;
  std::cout << what << ": ppl cpu " << a << " cuda " << b << " (rel diff " << std::fabs(b - a) / a
            << "; " << cpu["seconds"] << " s vs " << gpu["seconds"] << " s)\n";
}

// Greedy continuations (16 tokens, or up to EOS) on cpu and cuda: whether they are identical;
// prints how many leading tokens agree.
bool same_generation(const fs::path& model, const std::string& what) {
  std::vector<int> ids[2];
  int i = 0;
  for (const char* device : {"cpu", "cuda"}) {
    auto r = test::run_quad("generate -m '" + model.string() +
                            "' -p 'Once upon a time' -n 16 --temp 0 --json --device " + device);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (r.exit_code != 0) return false;
    ids[i++] = last_json(r)["ids"].get<std::vector<int>>();
  }
  EXPECT_FALSE(ids[0].empty());
  size_t same = 0;
  while (same < ids[0].size() && same < ids[1].size() && ids[0][same] == ids[1][same]) ++same;
  std::cout << what << ": greedy generation, " << same << " of " << ids[0].size()
            << " leading tokens agree\n";
  return ids[0] == ids[1];
}

// Teacher-forced next-token predictions of two backends on the same text: chunks of 128
// tokens, every position's logits compared (argmax and KL divergence). Unlike free-running
// greedy generation, one early flip does not change every later input.
struct Agreement {
  int64_t positions = 0, differ = 0;
  double mean_kl = 0;
};

Agreement teacher_forced(const fs::path& dir, const fs::path& text, Backend& base, Backend& other) {
  const Model m = Model::load(dir.string());
  const Tokenizer tok = Tokenizer::load(dir.string());
  const std::string raw = test::read_file(text).substr(0, 20000);
  const std::vector<int32_t> all = tok.encode(raw);
  constexpr int kChunk = 128, kChunks = 4;
  Agreement a;
  for (int c = 0; c < kChunks && size_t(c + 1) * kChunk <= all.size(); ++c) {
    const std::vector<int32_t> ids(all.begin() + c * kChunk, all.begin() + (c + 1) * kChunk);
    const auto lb = test::all_logits(m, ids, &base), lo = test::all_logits(m, ids, &other);
    int64_t agree = 0;
    a.mean_kl += kl_divergence_sum(lb.data(), lo.data(), kChunk, m.config.vocab_size, &agree);
    a.positions += kChunk;
    a.differ += kChunk - agree;
  }
  if (a.positions) a.mean_kl /= double(a.positions);
  return a;
}

struct TeacherForced {
  Agreement cuda, ref;  // each against cpu
};

// cuda against cpu, beside ref against cpu (two CPU implementations) as the yardstick.
TeacherForced report_teacher_forced(const fs::path& dir, const fs::path& text,
                                    const std::string& what) {
  auto cpu = make_backend("cpu"), ref = make_backend("ref"), cuda = make_backend("cuda");
  const Agreement r = teacher_forced(dir, text, *cpu, *ref);
  const Agreement g = teacher_forced(dir, text, *cpu, *cuda);
  EXPECT_GT(g.positions, 0);
  EXPECT_TRUE(std::isfinite(g.mean_kl));
  std::cout << what << ": teacher-forced next-token argmax differs from cpu at " << g.differ
            << " of " << g.positions << " positions on cuda (mean KL " << g.mean_kl << "), at "
            << r.differ << " on ref (mean KL " << r.mean_kl << ")\n";
  return {g, r};
}

// Every op of a 64-token prefill and 4 decode steps, cuda against cpu on the same inputs.
void expect_ops_match(const fs::path& dir, const std::string& what) {
  const Model m = Model::load(dir.string());
  auto cuda = make_backend("cuda"), cpu = make_backend("cpu");
  test::CheckingBackend checking(*cuda, *cpu);
  const int n = 64, steps = 4, V = m.config.vocab_size;
  std::vector<int32_t> ids(n + steps);
  for (int i = 0; i < n + steps; ++i) ids[i] = (i * 977 + 13) % V;
  KVCache cache(m.config, n + steps);
  ForwardScratch s;
  std::vector<float> logits(size_t(n) * V);
  forward(m, checking, ids.data(), n, 0, cache, s, logits.data(), n);
  for (int i = n; i < n + steps; ++i)
    forward(m, checking, &ids[i], 1, i, cache, s, logits.data(), 1);
  // The op harness's tolerances (cuda_ops_test.cpp).
  const std::map<std::string, double> tol = {{"linear", 1e-10},
                                             {"rmsnorm", 1e-12},
                                             {"rope", 1e-13},
                                             {"attention", 1e-10},
                                             {"silu_mul", 1e-12}};
  for (const auto& [op, st] : checking.stats()) {
    SCOPED_TRACE(what + ": " + op);
    EXPECT_GT(st.calls, 0);
    if (auto it = tol.find(op); it != tol.end())
      EXPECT_LT(st.worst_nmse, it->second);
    else
      EXPECT_EQ(st.inexact, 0) << "of " << st.calls << " calls differ from the cpu backend";
    std::cout << what << ": " << op << " " << st.calls << " calls, " << st.inexact
              << " not bit-identical, worst nmse " << st.worst_nmse << "\n";
  }
}

class CudaPpl : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaPpl, MatchesCpuFpAndQuantized) {
  QUAD_REQUIRE_GPU();
  QUAD_REQUIRE_ASSET(model, "models/" + GetParam());
  QUAD_REQUIRE_ASSET(text, "data/wikitext2/wiki.test.raw");
  expect_ops_match(model, GetParam() + " FP");
  expect_same_ppl(model, text, GetParam() + " FP", kFpPplRelTol);
  EXPECT_TRUE(same_generation(model, GetParam() + " FP"));
  // FP: fp32 rounding only (KL orders of magnitude below any quantization effect: measured
  // ~3e-12 on the H100).
  const Agreement fp = report_teacher_forced(model, text, GetParam() + " FP").cuda;
  EXPECT_LE(fp.differ * 100, fp.positions);
  EXPECT_LT(fp.mean_kl, 1e-8);

  const fs::path q = test::temp_dir("cudaq") / "w4a4";
  const int rank = GetParam() == "stories260K" ? 8 : 32;
  auto r = test::run_quad("quantize -m '" + model.string() + "' -o '" + q.string() + "' --calib '" +
                          text.string() + "' --rank " + std::to_string(rank) +
                          " --nsamples 4 --seqlen 128 --p-nsamples 4 --p-seqlen 128 --device cpu");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_ops_match(q, GetParam() + " QUAD W4A4/A8");
  expect_same_ppl(q, text, GetParam() + " QUAD W4A4/A8", kQuantPplRelTol);
  // --dtype bf16: the QUAD block ops (fused add + RMSNorm + quantization, joined q|k|v and
  // gate|up, gate and up in bf16, fp16 flash attention).
  expect_same_ppl(q, text, GetParam() + " QUAD W4A4/A8 --dtype bf16", kQuantPplRelTol,
                  "--dtype bf16");
  same_generation(q, GetParam() + " QUAD W4A4/A8");  // reported only (see the top)
  // Quantized: as close to cpu as the other CPU implementation is, within 2× its mean KL
  // (measured 2026-11-25 on the H100: 1.1× and 1.4×; 7.4× and 3.7× when the outlier activations
  // were carried in fp16 alone; tiny-qwen2-27m 3.3× while the fused kernels took its q/k/v
  // biases in bf16, since fp32). stories260K's rank 8 runs the op-by-op path
  // (outlier_linear_f16), the others' 32 the fused kernels.
  const TeacherForced quant = report_teacher_forced(q, text, GetParam() + " QUAD W4A4/A8");
  EXPECT_LE(quant.cuda.mean_kl, 2 * quant.ref.mean_kl + 1e-3);
}

INSTANTIATE_TEST_SUITE_P(SharedModels, CudaPpl,
                         ::testing::Values("stories260K", "tiny-llama3-30m", "tiny-qwen2-27m"),
                         [](const auto& info) { return test::param_name(info.param); });

}  // namespace
}  // namespace quad
