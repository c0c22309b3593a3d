#include "quad/tensor/dtype.h"

#include <gtest/gtest.h>

#include <cmath>

namespace quad {

// Every finite fp16 value survives f16 -> f32 -> f16 exactly.
TEST(DType, F16RoundTripAllFinite) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if (((h >> 10) & 0x1f) == 0x1f) continue;
    EXPECT_EQ(f32_to_f16(f16_to_f32(uint16_t(h))), h) << std::hex << h;
  }
}

TEST(DType, F16RoundsHalfToEvenAndOverflows) {
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f + 1.0f / 2048)), 1.0f);  // halfway -> even (1.0)
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f + 3.0f / 2048)), 1.0f + 2.0f / 1024);
  EXPECT_TRUE(std::isinf(f16_to_f32(f32_to_f16(70000.0f))));
  EXPECT_EQ(f16_to_f32(f32_to_f16(65504.0f)), 65504.0f);
  EXPECT_EQ(f16_to_f32(f32_to_f16(std::ldexp(1.0f, -24))), std::ldexp(1.0f, -24));
}

TEST(DType, BF16RoundTripAndRounding) {
  for (uint32_t h = 0; h < 0x10000; h += 7) {
    if (((h >> 7) & 0xff) == 0xff) continue;
    EXPECT_EQ(f32_to_bf16(bf16_to_f32(uint16_t(h))), h);
  }
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256)), 1.0f);  // tie -> even
}

TEST(DType, Names) {
  EXPECT_EQ(dtype_from_name("BF16"), DType::BF16);
  EXPECT_FALSE(dtype_from_name("F8_E4M3").has_value());
  EXPECT_EQ(dtype_size(DType::I32), 4u);
}

}  // namespace quad
