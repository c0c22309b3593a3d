// quad quantize -m IN -o OUT [--method quad|quarot|rtn] [--rank 64] ... (QUAD-SPEC defaults)
#include <filesystem>

#include "quad/backend/backend.h"
#include "quad/cli/commands.h"
#include "quad/core/error.h"
#include "quad/core/progress.h"
#include "quad/io/tokenizer.h"
#include "quad/model/model.h"
#include "quad/model/quantized_folder.h"
#include "quad/quant/pipeline.h"
#include "quad/quant/quantize_folder.h"
#include "quad/quant/random_model.h"

namespace quad::cli {

namespace {
std::string random_shape_list() {
  std::string names;
  for (const auto& n : random_shape_names()) names += (names.empty() ? "" : ", ") + n;
  return names;
}

std::string default_calibration() {
  const char* env = std::getenv("QUAD_ASSETS");
  std::string assets = env && *env ? env : "../shared/assets";
  return assets + "/data/c4/c4_validation_2k.jsonl";
}
}  // namespace

Runner add_quantize(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "quantize a Hugging Face model folder (QUAD)");
  struct Opts {
    RunOptions run;
    std::string out;
    Recipe recipe;
    bool rtn = false, gptq = false, force = false;
    uint64_t max_shard_bytes = 0;
    std::string center = "on";
    std::string random;
  };
  auto o = std::make_shared<Opts>();
  Recipe& r = o->recipe;
  add_run_options(*cmd, o->run);
  cmd->add_option("-o,--output", o->out, "output folder (written atomically)")->required();
  cmd->add_option("--method", r.method, "quad | quarot (rotation, r = 0) | rtn (no rotation)")
      ->check(CLI::IsMember({"quad", "quarot", "rtn"}));
  cmd->add_option("--rank", r.rank, "outlier dimensions r (quad)")->check(CLI::Range(0, 1 << 16));
  cmd->add_option("--w-bits", r.w_bits, "weight bits (4, 8, 16 = off)")
      ->check(CLI::IsMember({4, 8, 16}));
  cmd->add_option("--a-bits", r.a_bits, "q/k/v/gate/up input bits (4, 8, 16 = off)")
      ->check(CLI::IsMember({4, 8, 16}));
  cmd->add_option("--od-bits", r.od_bits, "o_proj/down_proj input bits (4, 8, 16 = off)")
      ->check(CLI::IsMember({4, 8, 16}));
  cmd->add_option("--kv-bits", r.kv_bits, "KV cache bits (4 = simulated int4, 16 = off)")
      ->check(CLI::IsMember({4, 16}));
  cmd->add_flag("--gptq", o->gptq, "GPTQ weight quantization (default, except --method rtn)");
  cmd->add_flag("--rtn", o->rtn, "round-to-nearest weights");
  cmd->add_option("--percdamp", r.percdamp, "GPTQ damping (fraction of mean diag H)")
      ->check(CLI::Range(1e-6, 10.0));
  cmd->add_option("--nsamples", r.nsamples, "GPTQ calibration sequences")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--seqlen", r.seqlen, "GPTQ calibration length (clipped to the context)")
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--p-nsamples", r.p_nsamples, "sequences for the outlier subspace P")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--p-seqlen", r.p_seqlen, "length of the P sequences")
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--a-clip", r.a_clip, "activation clip ratio")->check(CLI::Range(0.01, 1.0));
  cmd->add_option("--calib", r.calib_path, "calibration text: jsonl {\"text\"}, JSON or plain text")
      ->default_str("$QUAD_ASSETS/data/c4/c4_validation_2k.jsonl");
  cmd->add_option("--seed", r.seed, "seed for calibration sampling and rotations");
  cmd->add_option("--center-embeddings", o->center, "QuaRot's embedding centering")
      ->check(CLI::IsMember({"on", "off"}));
  cmd->add_flag("--force", o->force, "replace an existing output folder");
  add_shard_size_option(*cmd, o->max_shard_bytes);
  cmd->add_option("--random", o->random,
                  "quantize a random-weight model of a named shape instead (speed runs; -m then "
                  "only gives the tokenizer): " +
                      random_shape_list());
  return [o] {
    Recipe& r = o->recipe;
    check(!(o->rtn && o->gptq), "quantize", "--rtn and --gptq are mutually exclusive");
    r.gptq = o->gptq || (!o->rtn && r.method != "rtn");
    if (r.method != "quad") r.rank = 0;
    r.center_embeddings = o->center == "on";
    if (r.calib_path.empty()) r.calib_path = default_calibration();
    r.tool_version = std::string("quad ") + QUAD_VERSION;
    r.validate();
    check(std::filesystem::absolute(o->out) != std::filesystem::absolute(o->run.model_dir),
          "quantize", "-o must differ from -m");
    if (std::filesystem::exists(o->out) && !o->force)
      fail("quantize", "{} already exists (choose another -o or pass --force)", o->out);
    set_num_threads(o->run.threads);
    Tokenizer tokenizer = Tokenizer::load(o->run.model_dir);
    auto backend = make_run_backend(o->run);
    Progress total("quantize", 1, "", true);
    std::vector<LayerError> errors;
    FolderQuantizeOptions fo;
    fo.overwrite = o->force;
    fo.max_shard_bytes = o->max_shard_bytes;
    if (o->random.empty())
      quantize_folder(o->run.model_dir, o->out, tokenizer, r, *backend, fo, &errors);
    else
      quantize_random(o->random, o->run.model_dir, o->out, tokenizer, r, *backend, fo, &errors);
    for (const auto& e : errors)  // GPTQ vs round-to-nearest on the calibration data
      std::fprintf(stderr, "gptq: %-36s output error %.4g (rtn %.4g, %.0f%%)\n", e.name.c_str(),
                   e.gptq, e.rtn, 100.0 * e.gptq / std::max(e.rtn, 1e-300));
    total.finish("wrote " + o->out);
    return 0;
  };
}

}  // namespace quad::cli
