#include "test_support.h"

#include <sys/wait.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/model/model.h"

namespace quad::test {

namespace fs = std::filesystem;

std::vector<float> all_logits(const Model& m, const std::vector<int32_t>& ids, Backend* backend) {
  std::unique_ptr<Backend> cpu;
  if (!backend) {
    cpu = make_cpu_backend();
    backend = cpu.get();
  }
  KVCache cache(m.config, int(ids.size()), backend->memory());
  ForwardScratch s;
  std::vector<float> out(ids.size() * m.config.vocab_size);
  forward(m, *backend, ids.data(), int(ids.size()), 0, cache, s, out.data(), int(ids.size()));
  return out;
}

fs::path assets_dir() {
  if (const char* env = std::getenv("QUAD_ASSETS"); env && *env) return fs::path(env);
  return fs::path(QUAD_SOURCE_DIR) / ".." / "shared" / "assets";
}

fs::path asset(const std::string& rel) {
  fs::path p = assets_dir() / rel;
  return fs::exists(p) ? p : fs::path();
}

namespace {
struct TempDirs {
  std::vector<fs::path> dirs;
  std::mutex mu;
  ~TempDirs() {
    std::error_code ec;
    for (auto& d : dirs) fs::remove_all(d, ec);
  }
};
TempDirs& temp_dirs() {
  static TempDirs t;
  return t;
}
}  // namespace

fs::path temp_dir(const std::string& tag) {
  std::random_device rd;
  fs::path p = fs::temp_directory_path() /
               ("quad-test-" + tag + "-" + std::to_string(rd()) + std::to_string(rd()));
  fs::create_directories(p);
  std::lock_guard lock(temp_dirs().mu);
  temp_dirs().dirs.push_back(p);
  return p;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<float> random_normal(size_t n, uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::string param_name(std::string value) {
  for (auto& ch : value)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return value;
}

CommandResult run_quad(const std::string& args) {
  return run_program(QUAD_BINARY, args);
}

CommandResult run_program(const std::string& binary, const std::string& args) {
  fs::path dir = temp_dir("cmd");
  std::string cmd = "'" + binary + "' " + args + " > '" + (dir / "out").string() + "' 2> '" +
                    (dir / "err").string() + "'";
  int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(dir / "out");
  r.err = read_file(dir / "err");
  return r;
}

}  // namespace quad::test
