// Without a GPU (CI), asking for the CUDA backend gives one clear "[cuda]" error, from the
// library and from the CLI (with a GPU those tests skip: the op harness covers that case); the
// default device follows the GPU.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "quad/core/error.h"
#include "test_support.h"

namespace quad {
namespace {

TEST(CudaAvailability, BackendIsListedWhenCompiledIn) {
  const auto names = backend_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "cuda"), names.end());
  EXPECT_TRUE(cuda_compiled());
  EXPECT_EQ(backend_available("cuda"), cuda_device_count() > 0);
}

// Without --device, commands run on the GPU where there is one (here: bench's JSON names the
// backend it used), else on the CPU; --device cpu still picks the CPU.
TEST(CudaAvailability, DefaultDeviceFollowsTheGpu) {
  // The backend named by every JSON line bench printed.
  auto backends = [](const std::string& out) {
    std::vector<std::string> names;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);)
      if (!line.empty()) names.push_back(nlohmann::json::parse(line).at("backend"));
    return names;
  };
  const std::string want = cuda_device_count() > 0 ? "cuda" : "cpu";
  auto r = test::run_quad("bench --random tiny-llama3-30m -p 4 -n 2 -r 1 -t 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(backends(r.out), std::vector<std::string>(2, want)) << r.out;
  r = test::run_quad("bench --random tiny-llama3-30m -p 4 -n 0 -r 1 -t 1 --json --device cpu");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(backends(r.out), std::vector<std::string>{"cpu"}) << r.out;
}

TEST(CudaAvailability, NoGpuGivesClearError) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a GPU is present";
  try {
    make_backend("cuda");
    FAIL() << "make_backend(\"cuda\") succeeded without a GPU";
  } catch (const Error& e) {
    EXPECT_EQ(e.module(), "cuda");
    EXPECT_NE(std::string(e.what()).find("GPU"), std::string::npos) << e.what();
  }
}

TEST(CudaAvailability, NoGpuCliError) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a GPU is present";
  QUAD_REQUIRE_ASSET(model, "models/stories260K");
  QUAD_REQUIRE_ASSET(text, "data/tinystories/tinystories_val.txt");
  for (const char* flag : {"--device cuda", "--backend cuda"}) {
    auto r = test::run_quad("ppl -m '" + model.string() + "' --text '" + text.string() +
                            "' --chunks 1 " + flag);
    EXPECT_EQ(r.exit_code, 1) << flag;
    EXPECT_NE(r.err.find("quad: [cuda]"), std::string::npos) << r.err;
  }
  // --device and --backend together are a usage error.
  auto r = test::run_quad("ppl -m '" + model.string() + "' --text '" + text.string() +
                          "' --device cpu --backend cpu");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("excludes"), std::string::npos) << r.err;
}

// QUAD_CUBLAS_WORKSPACE_MIB: a size in MiB (0 sets none); anything else is refused with one
// error naming the variable and the value, when the backend is made.
TEST(CudaAvailability, CublasWorkspaceVariableIsChecked) {
  QUAD_REQUIRE_GPU();
  for (const char* bad : {"abc", "5000", "-1", "12x"}) {
    SCOPED_TRACE(bad);
    setenv("QUAD_CUBLAS_WORKSPACE_MIB", bad, 1);
    try {
      make_backend("cuda");
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("QUAD_CUBLAS_WORKSPACE_MIB=") + bad),
                std::string::npos)
          << e.what();
    }
  }
  for (const char* good : {"0", "64"}) {
    setenv("QUAD_CUBLAS_WORKSPACE_MIB", good, 1);
    EXPECT_NO_THROW(make_backend("cuda")) << good;
  }
  unsetenv("QUAD_CUBLAS_WORKSPACE_MIB");
}

}  // namespace
}  // namespace quad
