// Internal to the safetensors module: parsing and validating the JSON header, and the shape
// arithmetic (overflow-checked) shared by the reader and the writer.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "quad/tensor/dtype.h"

namespace quad::safetensors_detail {

// One tensor as described by the header; [begin, end) is relative to the data region.
struct HeaderEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

struct Header {
  std::vector<HeaderEntry> tensors;  // sorted by begin offset
  std::map<std::string, std::string> metadata;
};

// Parses `json_text` (the header of `file`) and validates every entry against a data region of
// `data_size` bytes: known dtypes, shape x dtype size == end - begin, ranges inside the region,
// no overlaps and no unindexed bytes. Throws quad::Error naming the file (and tensor).
Header parse_header(const std::string& file, std::string_view json_text, uint64_t data_size);

// Number of bytes of a tensor of `shape` and `dtype`, or nullopt if a dimension is negative or
// the product overflows int64.
std::optional<uint64_t> checked_nbytes(const std::vector<int64_t>& shape, DType dtype);

// nlohmann's what() without its "[json.exception.parse_error.101] " prefix.
std::string strip_json_prefix(const std::string& what);

// "[8192, 512]"
std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace quad::safetensors_detail
