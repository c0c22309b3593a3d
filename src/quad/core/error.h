// Errors: one exception type carrying a module tag, rendered as "[module] message".
// Every user-facing failure (bad file, bad flag) is thrown as quad::Error; the CLI prints
// "quad: [module] message" and exits non-zero.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace quad {

class Error : public std::runtime_error {
 public:
  Error(std::string module, const std::string& message)
      : std::runtime_error("[" + module + "] " + message), module_(std::move(module)) {}
  const std::string& module() const { return module_; }

 private:
  std::string module_;
};

template <typename... Args>
[[noreturn]] void fail(const std::string& module, fmt::format_string<Args...> format,
                       Args&&... args) {
  throw Error(module, fmt::format(format, std::forward<Args>(args)...));
}

// Checks an invariant of untrusted input; never compiled out (unlike assert).
template <typename... Args>
void check(bool condition, const std::string& module, fmt::format_string<Args...> format,
           Args&&... args) {
  if (!condition) throw Error(module, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace quad
