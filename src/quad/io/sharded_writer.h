// Writes a model's tensors into a folder the way Hugging Face's save_pretrained shards them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "quad/io/safetensors.h"

namespace quad {

// One model.safetensors when every tensor fits in max_shard_bytes, else
// model-00001-of-0000N.safetensors, ... and model.safetensors.index.json ({"metadata":
// {"total_size"}, "weight_map": {tensor: file}}), which TensorStore::open_dir reads back.
// Tensors keep the order they were added in; a shard is closed when the next tensor would take
// it past the limit (a tensor larger than the limit gets a shard of its own). A shard's tensors
// wait in an unlinked scratch file in `dir` until it is closed, so memory holds none of them.
// Output is deterministic.
class ShardedSafetensorsWriter {
 public:
  ShardedSafetensorsWriter(std::filesystem::path dir, uint64_t max_shard_bytes,
                           std::map<std::string, std::string> metadata);
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
           size_t nbytes);
  // Writes the last shard and, for more than one, renames the shards to their final names and
  // writes the index. Returns the number of shard files.
  int finish();

 private:
  void start_shard();  // the empty current_ takes the metadata and its scratch file
  void close_shard();  // writes current_'s part file and empties it
  std::filesystem::path part_path(int shard) const;

  std::filesystem::path dir_;
  uint64_t max_shard_bytes_;
  std::map<std::string, std::string> metadata_;
  SafetensorsWriter current_;
  uint64_t current_bytes_ = 0, total_bytes_ = 0;
  int current_tensors_ = 0, shards_ = 0;
  std::vector<std::pair<std::string, int>> shard_of_;  // tensor name, shard number (1-based)
  std::set<std::string> names_;
};

// 5 GB, save_pretrained's default max_shard_size.
inline constexpr uint64_t kDefaultMaxShardBytes = 5'000'000'000ULL;

// "5GB", "500MB", "2GiB", "100kB", "123" (bytes): decimal units as Hugging Face reads them,
// binary ones with "i". Throws quad::Error for anything else, zero or an overflow.
uint64_t parse_byte_size(const std::string& text);

}  // namespace quad
