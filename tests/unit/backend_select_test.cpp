// Choosing a backend by name: unknown names and an unusable CUDA backend give one clear error.
#include <gtest/gtest.h>

#include <algorithm>

#include "quad/backend/backend.h"
#include "quad/core/error.h"

namespace quad {
namespace {

TEST(BackendSelect, UnknownNameListsTheAvailableOnes) {
  try {
    make_backend("tpu");
    FAIL() << "no error for an unknown backend";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("unknown backend 'tpu'"), std::string::npos) << what;
    EXPECT_NE(what.find("cpu"), std::string::npos) << what;
  }
  EXPECT_FALSE(backend_available("tpu"));
  EXPECT_TRUE(backend_available("cpu"));
  EXPECT_TRUE(backend_available("ref"));
}

TEST(BackendSelect, CudaListedOnlyWhenCompiledIn) {
  const auto names = backend_names();
  EXPECT_EQ(std::count(names.begin(), names.end(), "cuda"), cuda_compiled() ? 1 : 0);
  if (!cuda_compiled()) {
    EXPECT_EQ(cuda_device_count(), 0);
  }
}

TEST(BackendSelect, UnusableCudaIsAClearError) {
  if (backend_available("cuda")) GTEST_SKIP() << "a GPU is present";
  try {
    make_backend("cuda");
    FAIL() << "make_backend(\"cuda\") succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.module(), "cuda");
    const std::string what = e.what();
    EXPECT_TRUE(what.find("without CUDA") != std::string::npos ||
                what.find("GPU") != std::string::npos)
        << what;
  }
}

}  // namespace
}  // namespace quad
