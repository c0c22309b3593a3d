#include "quad/io/text_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "quad/core/error.h"

namespace quad {

std::string read_text_file(const std::string& path, const std::string& module) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(module, "{}: is a directory, not a file", path);
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(module, "{}: cannot open: {}", path, std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  if (text.empty()) fail(module, "{}: the file is empty", path);
  return text;
}

}  // namespace quad
