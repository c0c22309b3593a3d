// Reading user-supplied text files with clear errors.
#pragma once

#include <string>

namespace quad {

// Whole file as bytes; throws quad::Error (module `module`) if it is missing, unreadable or
// empty.
std::string read_text_file(const std::string& path, const std::string& module = "io");

}  // namespace quad
