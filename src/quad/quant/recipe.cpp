#include "quad/quant/recipe.h"

#include <nlohmann/json.hpp>

#include "quad/core/error.h"

namespace quad {

namespace {
// The float's shortest decimal form as a double (0.9f is written 0.9, not 0.8999999761...).
double shortest(float v) {
  return std::stod(fmt::format("{}", v));
}
bool valid_bits(int b) {
  return b == 4 || b == 8 || b == 16;
}
}  // namespace

void Recipe::validate() const {
  check(method == "quad" || method == "quarot" || method == "rtn", "recipe",
        "--method must be quad, quarot or rtn (got '{}')", method);
  check(method == "quad" || rank == 0, "recipe", "--method {} uses no outlier dimensions (rank 0)",
        method);
  check(rank >= 0, "recipe", "--rank must be >= 0 (got {})", rank);
  check(valid_bits(w_bits), "recipe", "--w-bits must be 4, 8 or 16 (got {})", w_bits);
  check(valid_bits(a_bits), "recipe", "--a-bits must be 4, 8 or 16 (got {})", a_bits);
  check(valid_bits(od_bits), "recipe", "--od-bits must be 4, 8 or 16 (got {})", od_bits);
  check(kv_bits == 4 || kv_bits == 16, "recipe", "--kv-bits must be 4 or 16 (got {})", kv_bits);
  check(percdamp > 0 && percdamp < 10, "recipe", "--percdamp must be in (0, 10) (got {})",
        percdamp);
  check(nsamples > 0 && p_nsamples > 0, "recipe", "--nsamples must be positive");
  check(seqlen >= 2 && p_seqlen >= 2, "recipe", "--seqlen must be at least 2");
  check(a_clip > 0 && a_clip <= 1 && kv_clip > 0 && kv_clip <= 1, "recipe",
        "clip ratios must be in (0, 1]");
}

nlohmann::json Recipe::to_json() const {
  nlohmann::json j = {{"quant_method", "quad"},
          {"method", method},
          {"rank", rank},
          {"w_bits", w_bits},
          {"a_bits", a_bits},
          {"od_bits", od_bits},
          {"kv_bits", kv_bits},
          {"weight_algorithm", gptq ? "gptq" : "rtn"},
          {"w_clip", w_clip},
          {"percdamp", percdamp},
          {"nsamples", nsamples},
          {"seqlen", seqlen},
          {"p_nsamples", p_nsamples},
          {"p_seqlen", p_seqlen},
          {"a_clip_ratio", shortest(a_clip)},
          {"kv_clip_ratio", shortest(kv_clip)},
          {"center_embeddings", center_embeddings},
          {"calibration_file", calib_path},
          {"calibration_sha256", calib_sha256},
          {"seed", seed},
          {"tool_version", tool_version}};
  if (!finetune_json.empty()) j["finetune"] = nlohmann::json::parse(finetune_json);
  return j;
}

Recipe Recipe::from_json(const nlohmann::json& j, const std::string& src) {
  try {
    Recipe r;
    r.method = j.at("method").get<std::string>();
    r.rank = j.at("rank").get<int>();
    r.w_bits = j.at("w_bits").get<int>();
    r.a_bits = j.at("a_bits").get<int>();
    r.od_bits = j.at("od_bits").get<int>();
    r.kv_bits = j.at("kv_bits").get<int>();
    r.gptq = j.at("weight_algorithm").get<std::string>() == "gptq";
    r.w_clip = j.value("w_clip", true);
    r.percdamp = j.value("percdamp", 0.01);
    r.nsamples = j.value("nsamples", 128);
    r.seqlen = j.value("seqlen", 2048);
    r.p_nsamples = j.value("p_nsamples", 32);
    r.p_seqlen = j.value("p_seqlen", 512);
    r.a_clip = j.at("a_clip_ratio").get<float>();
    r.kv_clip = j.value("kv_clip_ratio", 0.95f);
    r.center_embeddings = j.value("center_embeddings", true);
    r.calib_path = j.value("calibration_file", std::string());
    r.calib_sha256 = j.value("calibration_sha256", std::string());
    r.seed = j.value("seed", uint64_t(0));
    r.tool_version = j.value("tool_version", std::string());
    if (j.contains("finetune")) {
      check(j["finetune"].is_array(), "recipe", "{}: quantization_config.finetune must be a list",
            src);
      r.finetune_json = j["finetune"].dump();
    }
    r.validate();
    return r;
  } catch (const nlohmann::json::exception& e) {
    fail("recipe", "{}: bad quantization_config: {}", src, e.what());
  }
}

}  // namespace quad
