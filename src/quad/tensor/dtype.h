// Element types of tensors on disk and in memory, and fp16/bf16 <-> fp32 conversion.
// bf16 and fp16 are stored as uint16_t bit patterns (GCC 12 has no __bf16 arithmetic).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace quad {

enum class DType { F32, F16, BF16, I8, U8, I32, I64, F64 };

// Size of one element in bytes.
size_t dtype_size(DType t);
// safetensors spelling: "F32", "F16", "BF16", "I8", "U8", "I32", "I64", "F64".
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

float f16_to_f32(uint16_t h);
// Round to nearest even with correct subnormal and overflow (-> inf) handling.
uint16_t f32_to_f16(float f);

// Converts n elements of type `t` at `src` to fp32 (F32, F16, BF16, I8, U8, I32, I64, F64).
void convert_to_f32(DType t, const void* src, float* dst, size_t n);

}  // namespace quad
