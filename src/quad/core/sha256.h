// SHA-256 (FIPS 180-4), used to record the calibration file in a recipe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace quad {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  std::array<uint8_t, 32> digest();  // finalizes
  std::string hex();                 // finalizes

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(std::string_view data);

}  // namespace quad
