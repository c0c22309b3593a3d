// Shared helpers for tests: where the shared assets are, temp dirs, running the CLI.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace quad {
struct Model;
class Backend;
}  // namespace quad

namespace quad::test {

// Logits of every position of ids (n, vocab), one forward pass on `backend` (null: the cpu
// backend), its KV cache in the backend's memory.
std::vector<float> all_logits(const Model& model, const std::vector<int32_t>& ids,
                              Backend* backend = nullptr);

// $QUAD_ASSETS, else <source>/../shared/assets.
std::filesystem::path assets_dir();
// assets_dir()/rel, or "" if it does not exist.
std::filesystem::path asset(const std::string& rel);
// A fresh empty directory under the system temp dir, removed at process exit.
std::filesystem::path temp_dir(const std::string& tag);

// Whole file as bytes ("" if unreadable).
std::string read_file(const std::filesystem::path& path);
// n samples of N(0, sigma²) from a fixed seed.
std::vector<float> random_normal(size_t n, uint32_t seed, float sigma = 1.0f);
// A test-name-safe version of a parameter ("tiny-llama3-30m" -> "tiny_llama3_30m").
std::string param_name(std::string value);

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs the built `quad` binary with the given argument string (shell syntax).
CommandResult run_quad(const std::string& args);
// Any program: `binary args` through the shell, stdout and stderr captured.
CommandResult run_program(const std::string& binary, const std::string& args);

}  // namespace quad::test

// Skips the current test with a clear message when an asset is missing.
#define QUAD_REQUIRE_ASSET(var, rel)                                                     \
  const std::filesystem::path var = ::quad::test::asset(rel);                            \
  if (var.empty())                                                                       \
  GTEST_SKIP() << "asset " << (rel) << " not found under " << ::quad::test::assets_dir() \
               << " (set QUAD_ASSETS)"
