// int4 packing: two's-complement nibbles, even column in the low nibble (QUAD-SPEC §4.3).
#include "quad/core/error.h"
#include "quad/quant/weight_quant.h"

namespace quad {
namespace {

void check_shape(int rows, int cols, const char* what) {
  check(rows >= 0 && cols >= 0, "int4", "{}: bad shape {}x{}", what, rows, cols);
  check(cols % 2 == 0, "int4", "{}: cols must be even to pack two codes per byte, got {}", what,
        cols);
}

// The low 4 bits of a code's two's-complement byte.
unsigned to_nibble(int8_t code) {
  return uint8_t(code) & 0xFu;
}

// Sign-extends the 4-bit two's-complement value in the low nibble of `nibble`.
int8_t from_nibble(unsigned nibble) {
  return int8_t(nibble & 0x8 ? int(nibble) - 16 : nibble);
}

}  // namespace

// Both directions run over OpenMP threads (an 8B model holds 3.5 GB of packed codes, packed or
// unpacked once when it is built, loaded or uploaded); bytes are independent.
std::vector<uint8_t> pack_int4(const int8_t* codes, int rows, int cols) {
  check_shape(rows, cols, "pack_int4");
  const long long n = (long long)rows * cols;
  bool in_range = true;
#pragma omp parallel for schedule(static) reduction(&& : in_range)
  for (long long k = 0; k < n; ++k) in_range = in_range && codes[k] >= -8 && codes[k] <= 7;
  if (!in_range) {
    for (long long k = 0; k < n; ++k)  // the first offending code, for the message
      if (codes[k] < -8 || codes[k] > 7)
        fail("int4", "pack_int4: code {} at ({}, {}) is outside -8..7", codes[k], k / cols,
             k % cols);
  }
  std::vector<uint8_t> packed(static_cast<size_t>(n / 2));
#pragma omp parallel for schedule(static)
  for (long long b = 0; b < n / 2; ++b)
    packed[size_t(b)] = uint8_t(to_nibble(codes[2 * b]) | (to_nibble(codes[2 * b + 1]) << 4));
  return packed;
}

std::vector<int8_t> unpack_int4(const uint8_t* packed, int rows, int cols) {
  check_shape(rows, cols, "unpack_int4");
  const long long n = (long long)rows * cols;
  std::vector<int8_t> codes(static_cast<size_t>(n));
#pragma omp parallel for schedule(static)
  for (long long b = 0; b < n / 2; ++b) {
    codes[size_t(2 * b)] = from_nibble(packed[b] & 0xFu);
    codes[size_t(2 * b + 1)] = from_nibble(packed[b] >> 4);
  }
  return codes;
}

}  // namespace quad
