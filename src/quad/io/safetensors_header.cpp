#include "quad/io/safetensors_header.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <tuple>

#include "quad/core/error.h"

namespace quad::safetensors_detail {

namespace {

using nlohmann::json;
constexpr const char* kModule = "safetensors";

// A JSON value for an error message, cut short so one bad header cannot flood the terminal.
std::string brief(const json& value) {
  std::string s = value.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

std::string supported_dtypes() {
  std::vector<std::string_view> names;
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::I8, DType::U8, DType::I32, DType::I64,
                  DType::F64})
    names.push_back(dtype_name(t));
  return fmt::format("{}", fmt::join(names, ", "));
}

const json& field(const std::string& file, const std::string& name, const json& entry,
                  const char* key) {
  auto it = entry.find(key);
  if (it == entry.end())
    fail(kModule, "{}: tensor '{}' has no \"{}\" field in the header", file, name, key);
  return *it;
}

DType parse_dtype(const std::string& file, const std::string& name, const json& value) {
  if (!value.is_string())
    fail(kModule, "{}: tensor '{}': \"dtype\" must be a string, got {}", file, name, brief(value));
  const auto& text = value.get_ref<const std::string&>();
  std::optional<DType> dtype = dtype_from_name(text);
  if (!dtype)
    fail(kModule, "{}: tensor '{}' has unsupported dtype '{}' (supported: {})", file, name, text,
         supported_dtypes());
  return *dtype;
}

std::vector<int64_t> parse_shape(const std::string& file, const std::string& name,
                                 const json& value) {
  if (!value.is_array())
    fail(kModule, "{}: tensor '{}': \"shape\" must be an array of integers, got {}", file, name,
         brief(value));
  std::vector<int64_t> shape;
  shape.reserve(value.size());
  for (const json& dim : value) {
    if (dim.is_number_unsigned()) {
      const uint64_t d = dim.get<uint64_t>();
      if (d > uint64_t(std::numeric_limits<int64_t>::max()))
        fail(kModule, "{}: tensor '{}' has dimension {} in shape {}, which is too large", file,
             name, d, brief(value));
      shape.push_back(int64_t(d));
    } else if (dim.is_number_integer()) {
      fail(kModule, "{}: tensor '{}' has negative dimension {} in shape {}", file, name,
           dim.get<int64_t>(), brief(value));
    } else {
      fail(kModule, "{}: tensor '{}': \"shape\" must be an array of integers, got {}", file, name,
           brief(value));
    }
  }
  return shape;
}

std::pair<uint64_t, uint64_t> parse_offsets(const std::string& file, const std::string& name,
                                            const json& value) {
  if (!value.is_array() || value.size() != 2 || !value[0].is_number_unsigned() ||
      !value[1].is_number_unsigned())
    fail(kModule,
         "{}: tensor '{}': \"data_offsets\" must be [begin, end] with non-negative integers, "
         "got {}",
         file, name, brief(value));
  return {value[0].get<uint64_t>(), value[1].get<uint64_t>()};
}

HeaderEntry parse_entry(const std::string& file, const std::string& name, const json& entry) {
  if (!entry.is_object())
    fail(kModule, "{}: tensor '{}': header entry must be an object, got {}", file, name,
         brief(entry));
  HeaderEntry e;
  e.name = name;
  e.dtype = parse_dtype(file, name, field(file, name, entry, "dtype"));
  e.shape = parse_shape(file, name, field(file, name, entry, "shape"));
  std::tie(e.begin, e.end) = parse_offsets(file, name, field(file, name, entry, "data_offsets"));
  if (e.begin > e.end)
    fail(kModule, "{}: tensor '{}' has data_offsets [{}, {}] with begin > end", file, name, e.begin,
         e.end);
  std::optional<uint64_t> nbytes = checked_nbytes(e.shape, e.dtype);
  if (!nbytes)
    fail(kModule, "{}: tensor '{}' has shape {} whose size overflows 64 bits", file, name,
         shape_str(e.shape));
  if (*nbytes != e.end - e.begin)
    fail(kModule, "{}: tensor '{}' is {} {} = {} bytes but its data_offsets [{}, {}] span {} bytes",
         file, name, dtype_name(e.dtype), shape_str(e.shape), *nbytes, e.begin, e.end,
         e.end - e.begin);
  return e;
}

std::map<std::string, std::string> parse_metadata(const std::string& file, const json& value) {
  std::map<std::string, std::string> metadata;
  if (value.is_null()) return metadata;
  if (!value.is_object())
    fail(kModule, "{}: \"__metadata__\" must be an object of strings, got {}", file, brief(value));
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string())
      fail(kModule, "{}: \"__metadata__\" key '{}' must have a string value, got {}", file, key,
           brief(v));
    metadata.emplace(key, v.get<std::string>());
  }
  return metadata;
}

// Sorted by begin: each tensor must start where the previous one ended (no overlap, no hole),
// stay inside the data region, and the last one must end at the end of the region.
void check_layout(const std::string& file, const std::vector<HeaderEntry>& sorted,
                  uint64_t data_size) {
  uint64_t covered = 0;
  const HeaderEntry* prev = nullptr;
  for (const HeaderEntry& e : sorted) {
    if (e.end > data_size)
      fail(kModule,
           "{}: tensor '{}' ends at byte {} but the data region has {} bytes (truncated "
           "download?)",
           file, e.name, e.end, data_size);
    if (e.begin < covered)
      fail(kModule, "{}: tensors '{}' [{}, {}) and '{}' [{}, {}) overlap", file, prev->name,
           prev->begin, prev->end, e.name, e.begin, e.end);
    if (e.begin > covered)
      fail(kModule, "{}: bytes [{}, {}) of the data region belong to no tensor (before '{}')", file,
           covered, e.begin, e.name);
    covered = e.end;
    prev = &e;
  }
  if (covered != data_size)
    fail(kModule,
         "{}: the data region has {} bytes but the tensors cover only the first {} (trailing "
         "garbage?)",
         file, data_size, covered);
}

}  // namespace

std::optional<uint64_t> checked_nbytes(const std::vector<int64_t>& shape, DType dtype) {
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(numel, d, &numel)) return std::nullopt;
  }
  int64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, int64_t(dtype_size(dtype)), &nbytes)) return std::nullopt;
  return uint64_t(nbytes);
}

std::string strip_json_prefix(const std::string& what) {
  const size_t pos = what.find("] ");
  return what.rfind("[json.exception.", 0) == 0 && pos != std::string::npos ? what.substr(pos + 2)
                                                                            : what;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

Header parse_header(const std::string& file, std::string_view json_text, uint64_t data_size) {
  json root;
  try {
    root = json::parse(json_text.begin(), json_text.end());
  } catch (const json::exception& e) {
    fail(kModule, "{}: header is not valid JSON: {}", file, strip_json_prefix(e.what()));
  }
  if (!root.is_object())
    fail(kModule, "{}: header must be a JSON object of tensors, got type '{}'", file,
         std::string(root.type_name()));

  Header header;
  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      header.metadata = parse_metadata(file, entry);
    } else {
      header.tensors.push_back(parse_entry(file, name, entry));
    }
  }
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const HeaderEntry& a, const HeaderEntry& b) {
              return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
            });
  check_layout(file, header.tensors, data_size);
  return header;
}

}  // namespace quad::safetensors_detail
