// safetensors: validated mmap reader, sharded folders (model.safetensors.index.json), writer.
//
// Format: 8-byte little-endian header length N, then N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data region; offsets are relative to the data region.
// Every header is validated before any tensor is used: header length within the file, valid
// JSON object, known dtype names, shape product x dtype size == end - begin, ranges inside the
// data region, no two tensors overlapping. Errors are quad::Error with module "safetensors" and
// name the file (and the tensor where there is one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "quad/tensor/dtype.h"

namespace quad {

// A read-only view of one tensor inside an mmapped file. `data` stays valid as long as the
// SafetensorsFile (or TensorStore) that produced it is alive.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // path of the file holding it (for error messages)

  int64_t numel() const;
  // Converted copy as fp32 (any supported dtype).
  std::vector<float> to_f32() const;
};

class SafetensorsFile {
 public:
  // mmaps and validates `path`; throws quad::Error on any problem.
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws quad::Error naming the file if absent.
  const TensorView& get(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a model folder: either one `model.safetensors`, or the shards listed in
// `model.safetensors.index.json` (weight_map name -> file). A shard named by the index but
// missing, or a tensor the index promises but the shard lacks, is an error naming both.
class TensorStore {
 public:
  static TensorStore open_dir(const std::string& dir);
  // A store over explicitly given files (no index).
  static TensorStore open_files(const std::vector<std::string>& paths);

  bool has(const std::string& name) const;
  const TensorView& get(const std::string& name) const;  // error names the folder if absent
  // The tensor converted to fp32, after checking it has exactly `shape` (error names the file).
  std::vector<float> get_f32(const std::string& name, const std::vector<int64_t>& shape) const;
  std::vector<std::string> names() const;  // sorted
  const std::string& dir() const { return dir_; }
  // Metadata of the first file (our quantized folders store the recipe there too).
  std::map<std::string, std::string> metadata() const;

 private:
  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> index_;
};

class SpillFile;  // safetensors_writer.cpp

// Collects tensors and writes one safetensors file. Tensors are written in the order added
// (deterministic output); the header is padded with spaces to a multiple of 8 bytes.
// write() writes to "<path>.tmp" and renames, so a crash never leaves a half-written file.
// Tensors are held in memory, or with spill_to() in a scratch file, so that a large output
// costs disk rather than memory until write().
class SafetensorsWriter {
 public:
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
           size_t nbytes);
  void add_f32(const std::string& name, std::vector<int64_t> shape, const float* data);
  void set_metadata(const std::string& key, const std::string& value);
  // From now on, tensor bytes go to a scratch file at `path` (created, and unlinked at once:
  // nothing stays behind, whatever happens). Only before the first add().
  void spill_to(const std::string& path);
  void write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t size = 0;
    std::vector<uint8_t> bytes;  // empty when spilled
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
  std::shared_ptr<SpillFile> spill_;
};

}  // namespace quad
