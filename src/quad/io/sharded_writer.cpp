// ShardedSafetensorsWriter and the shard-size parser.
#include "quad/io/sharded_writer.h"

#include <fmt/format.h>

#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>

#include "quad/core/error.h"

namespace quad {

namespace fs = std::filesystem;

ShardedSafetensorsWriter::ShardedSafetensorsWriter(fs::path dir, uint64_t max_shard_bytes,
                                                   std::map<std::string, std::string> metadata)
    : dir_(std::move(dir)), max_shard_bytes_(max_shard_bytes), metadata_(std::move(metadata)) {
  check(max_shard_bytes_ > 0, "safetensors", "the shard size limit must be positive");
  start_shard();
}

// Each shard's tensors wait in a scratch file beside it, not in memory (an 8B model's 5 GB).
void ShardedSafetensorsWriter::start_shard() {
  for (const auto& [key, value] : metadata_) current_.set_metadata(key, value);
  current_.spill_to(part_path(shards_ + 1).string() + ".spill");
}

fs::path ShardedSafetensorsWriter::part_path(int shard) const {
  return dir_ / fmt::format("model-{:05d}.safetensors.part", shard);
}

void ShardedSafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                                   const void* data, size_t nbytes) {
  check(names_.insert(name).second, "safetensors", "tensor '{}' added twice", name);
  if (current_tensors_ > 0 && current_bytes_ + nbytes > max_shard_bytes_) {
    close_shard();
    start_shard();
  }
  current_.add(name, dtype, std::move(shape), data, nbytes);
  current_bytes_ += nbytes;
  total_bytes_ += nbytes;
  ++current_tensors_;
  shard_of_.emplace_back(name, shards_ + 1);
}

void ShardedSafetensorsWriter::close_shard() {
  ++shards_;
  current_.write(part_path(shards_).string());
  current_ = SafetensorsWriter();  // its scratch file goes with it
  current_bytes_ = 0;
  current_tensors_ = 0;
}

int ShardedSafetensorsWriter::finish() {
  if (current_tensors_ > 0 || shards_ == 0) close_shard();
  auto rename = [](const fs::path& from, const fs::path& to) {
    std::error_code ec;
    fs::rename(from, to, ec);
    if (ec)
      fail("safetensors", "cannot rename {} to {}: {}", from.string(), to.string(), ec.message());
  };
  if (shards_ == 1) {
    rename(part_path(1), dir_ / "model.safetensors");
    return 1;
  }
  auto final_name = [&](int shard) {
    return fmt::format("model-{:05d}-of-{:05d}.safetensors", shard, shards_);
  };
  for (int s = 1; s <= shards_; ++s) rename(part_path(s), dir_ / final_name(s));
  nlohmann::json weight_map = nlohmann::json::object();  // keys sorted, as transformers writes
  for (const auto& [name, shard] : shard_of_) weight_map[name] = final_name(shard);
  nlohmann::json index = {{"metadata", {{"total_size", total_bytes_}}},
                          {"weight_map", std::move(weight_map)}};
  const fs::path index_path = dir_ / "model.safetensors.index.json";
  std::ofstream out(index_path);
  out << index.dump(2) << "\n";
  out.close();
  if (!out) fail("safetensors", "{}: write failed", index_path.string());
  return shards_;
}

uint64_t parse_byte_size(const std::string& text) {
  size_t i = 0;
  uint64_t value = 0;
  bool overflow = false;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    const uint64_t digit = uint64_t(text[i] - '0');
    overflow = overflow || value > (UINT64_MAX - digit) / 10;
    value = value * 10 + digit;
    ++i;
  }
  std::string unit;
  for (size_t j = i; j < text.size(); ++j)
    unit += char(std::tolower(static_cast<unsigned char>(text[j])));
  static const std::map<std::string, uint64_t> kUnits = {{"", 1},
                                                         {"b", 1},
                                                         {"kb", 1000},
                                                         {"mb", 1000'000},
                                                         {"gb", 1000'000'000},
                                                         {"kib", 1ULL << 10},
                                                         {"mib", 1ULL << 20},
                                                         {"gib", 1ULL << 30}};
  const auto it = kUnits.find(unit);
  check(i > 0 && it != kUnits.end(), "size",
        "'{}' is not a size (a whole number with an optional unit: B, kB, MB, GB, KiB, MiB, "
        "GiB)",
        text);
  overflow = overflow || value > UINT64_MAX / it->second;
  check(!overflow, "size", "'{}' is too large", text);
  check(value > 0, "size", "'{}': the size must be positive", text);
  return value * it->second;
}

}  // namespace quad
