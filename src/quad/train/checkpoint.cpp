#include "quad/train/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "quad/core/error.h"
#include "quad/io/safetensors.h"

namespace quad::train {

namespace fs = std::filesystem;

namespace {
constexpr const char* kTensors = "checkpoint.safetensors";
constexpr const char* kState = "checkpoint.json";
}  // namespace

void save_checkpoint(const std::string& dir, const TrainableModel& model,
                     const CheckpointState& state) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  check(!ec, "checkpoint", "cannot create {}: {}", dir, ec.message());
  SafetensorsWriter w;
  for (const Param& p : model.params()) {
    w.add_f32(p.name, {int64_t(p.size)}, p.value);
    w.add_f32(p.name + ".adam_m", {int64_t(p.size)}, p.m.data());
    w.add_f32(p.name + ".adam_v", {int64_t(p.size)}, p.v.data());
  }
  w.write((fs::path(dir) / kTensors).string());
  const nlohmann::json j = {{"step", state.step}, {"fingerprint", state.fingerprint}};
  const fs::path tmp = fs::path(dir) / (std::string(kState) + ".tmp");
  {
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
    check(bool(f), "checkpoint", "cannot write {}", tmp.string());
  }
  fs::rename(tmp, fs::path(dir) / kState, ec);
  check(!ec, "checkpoint", "cannot write {}: {}", (fs::path(dir) / kState).string(), ec.message());
}

bool load_checkpoint(const std::string& dir, TrainableModel& model, CheckpointState& state) {
  const fs::path json_path = fs::path(dir) / kState;
  if (!fs::exists(json_path)) return false;
  std::ifstream f(json_path);
  const nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
  check(!j.is_discarded() && j.is_object() && j.contains("step") && j.contains("fingerprint"),
        "checkpoint", "{}: damaged checkpoint state", json_path.string());
  state.step = j["step"].get<long>();
  state.fingerprint = j["fingerprint"].get<std::string>();
  const TensorStore st = TensorStore::open_files({(fs::path(dir) / kTensors).string()});
  for (Param& p : model.params()) {
    const std::vector<int64_t> shape = {int64_t(p.size)};
    const auto value = st.get_f32(p.name, shape);
    std::copy(value.begin(), value.end(), p.value);
    p.m = st.get_f32(p.name + ".adam_m", shape);
    p.v = st.get_f32(p.name + ".adam_v", shape);
  }
  model.refresh();
  return true;
}

}  // namespace quad::train
