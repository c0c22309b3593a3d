// Small helpers for reading tokenizer.json sections with errors that name the file.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "quad/core/error.h"

namespace quad::tokenizer_detail {

using nlohmann::json;
inline constexpr const char* kModule = "tokenizer";

// A JSON value for an error message, cut short.
inline std::string brief(const json& value) {
  std::string s = value.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// The "type" string of a component object (normalizer, pre_tokenizer, decoder, ...).
inline std::string component_type(const json& j, const std::string& file, std::string_view what) {
  if (!j.is_object()) fail(kModule, "{}: {} must be an object, got {}", file, what, brief(j));
  auto it = j.find("type");
  if (it == j.end() || !it->is_string())
    fail(kModule, "{}: {} has no \"type\" string: {}", file, what, brief(j));
  return it->get<std::string>();
}

inline const json& require(const json& j, const char* key, const std::string& file,
                           std::string_view what) {
  auto it = j.find(key);
  if (it == j.end()) fail(kModule, "{}: {} has no \"{}\" field", file, what, key);
  return *it;
}

inline std::string require_string(const json& j, const char* key, const std::string& file,
                                  std::string_view what) {
  const json& v = require(j, key, file, what);
  if (!v.is_string())
    fail(kModule, "{}: {}: \"{}\" must be a string, got {}", file, what, key, brief(v));
  return v.get<std::string>();
}

// A {"String": "..."} pattern (as in Replace and Split); Regex patterns are reported as
// unsupported by the callers that do not handle them.
inline bool string_pattern(const json& pattern, std::string& out) {
  if (!pattern.is_object()) return false;
  auto it = pattern.find("String");
  if (it == pattern.end() || !it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

}  // namespace quad::tokenizer_detail
