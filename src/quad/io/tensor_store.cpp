// TensorStore: all tensors of a model folder (one file, or shards listed by an index).
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include <fmt/ranges.h>

#include "quad/core/error.h"
#include "quad/io/safetensors.h"
#include "quad/io/safetensors_header.h"

namespace quad {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
constexpr const char* kModule = "safetensors";

using FileList = std::vector<std::shared_ptr<SafetensorsFile>>;

// name -> view over all files; a name in two files is an error naming both.
std::map<std::string, const TensorView*> build_index(const FileList& files) {
  std::map<std::string, const TensorView*> index;
  for (const auto& file : files) {
    for (const auto& [name, view] : file->tensors()) {
      auto [it, inserted] = index.emplace(name, &view);
      if (!inserted)
        fail(kModule, "tensor '{}' is in both {} and {}", name, it->second->file, file->path());
    }
  }
  return index;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) fail(kModule, "{}: cannot open", path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(kModule, "{}: cannot read", path.string());
  return ss.str();
}

// weight_map of an index file: tensor name -> shard file name.
std::map<std::string, std::string> read_weight_map(const fs::path& index_path) {
  const std::string index = index_path.string();
  json root;
  try {
    root = json::parse(read_text(index_path));
  } catch (const json::exception& e) {
    fail(kModule, "{}: not valid JSON: {}", index, safetensors_detail::strip_json_prefix(e.what()));
  }
  if (!root.is_object() || !root.contains("weight_map") || !root["weight_map"].is_object())
    fail(kModule, "{}: expected a JSON object with a \"weight_map\" object", index);
  std::map<std::string, std::string> weight_map;
  for (const auto& [name, shard] : root["weight_map"].items()) {
    if (!shard.is_string() || shard.get_ref<const std::string&>().empty())
      fail(kModule, "{}: weight_map entry '{}' must be a non-empty file name, got {}", index, name,
           shard.dump());
    weight_map.emplace(name, shard.get<std::string>());
  }
  return weight_map;
}

}  // namespace

TensorStore TensorStore::open_dir(const std::string& dir) {
  const fs::path root(dir);
  if (!fs::is_directory(root)) fail(kModule, "{}: not a directory (expected a model folder)", dir);
  const fs::path index_path = root / "model.safetensors.index.json";
  const fs::path single_path = root / "model.safetensors";

  TensorStore store;
  store.dir_ = dir;
  if (!fs::exists(index_path)) {
    if (!fs::exists(single_path))
      fail(kModule, "no model.safetensors or model.safetensors.index.json in {}", dir);
    store.files_.push_back(SafetensorsFile::open(single_path.string()));
    store.index_ = build_index(store.files_);
    return store;
  }

  const std::map<std::string, std::string> weight_map = read_weight_map(index_path);
  std::map<std::string, std::string> first_tensor_of;  // shard -> one tensor it should hold
  for (const auto& [name, shard] : weight_map) first_tensor_of.emplace(shard, name);

  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
  for (const auto& [shard, tensor] : first_tensor_of) {
    const fs::path shard_path = root / shard;
    if (!fs::exists(shard_path))
      fail(kModule, "{}: shard {} (holding e.g. '{}') does not exist", index_path.string(),
           shard_path.string(), tensor);
    auto file = std::shared_ptr<SafetensorsFile>(SafetensorsFile::open(shard_path.string()));
    shards.emplace(shard, file);
    store.files_.push_back(std::move(file));
  }
  for (const auto& [name, shard] : weight_map) {
    const SafetensorsFile& file = *shards.at(shard);
    if (!file.has(name))
      fail(kModule, "{}: tensor '{}' is mapped to {}, but that shard has no such tensor",
           index_path.string(), name, file.path());
  }
  store.index_ = build_index(store.files_);
  return store;
}

TensorStore TensorStore::open_files(const std::vector<std::string>& paths) {
  TensorStore store;
  if (!paths.empty()) {
    const fs::path parent = fs::path(paths.front()).parent_path();
    store.dir_ = parent.empty() ? "." : parent.string();
  }
  for (const auto& path : paths) store.files_.push_back(SafetensorsFile::open(path));
  store.index_ = build_index(store.files_);
  return store;
}

bool TensorStore::has(const std::string& name) const {
  return index_.count(name) != 0;
}

const TensorView& TensorStore::get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end())
    fail(kModule, "{}: no tensor '{}' in its {} file(s) ({} tensors)", dir_, name, files_.size(),
         index_.size());
  return *it->second;
}

std::vector<float> TensorStore::get_f32(const std::string& name,
                                        const std::vector<int64_t>& shape) const {
  const TensorView& t = get(name);
  if (t.shape != shape)
    fail(kModule, "{}: tensor '{}' has shape [{}] but the model expects [{}]", t.file, name,
         fmt::join(t.shape, ", "), fmt::join(shape, ", "));
  return t.to_f32();
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, view] : index_) out.push_back(name);
  return out;
}

std::map<std::string, std::string> TensorStore::metadata() const {
  return files_.empty() ? std::map<std::string, std::string>{} : files_.front()->metadata();
}

}  // namespace quad
