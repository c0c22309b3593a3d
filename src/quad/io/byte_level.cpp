#include "quad/io/byte_level.h"

#include <array>
#include <cstdint>

#include "quad/io/tokenizer_utf8.h"

namespace quad::tokenizer_detail {

namespace {

struct ByteLevelTables {
  std::array<std::string, 256> byte_to_utf8;
  std::array<char32_t, 256> byte_to_char{};
  std::array<int16_t, 512> char_to_byte{};  // mapped characters are all below U+0200

  ByteLevelTables() {
    char_to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      byte_to_char[b] = printable ? char32_t(b) : next++;
      append_utf8(byte_to_utf8[b], byte_to_char[b]);
      char_to_byte[byte_to_char[b]] = int16_t(b);
    }
  }
};

const ByteLevelTables& tables() {
  static const ByteLevelTables t;
  return t;
}

}  // namespace

void byte_level_encode(std::string_view bytes, std::string& out) {
  const auto& t = tables();
  for (char c : bytes) out += t.byte_to_utf8[static_cast<unsigned char>(c)];
}

int byte_level_decode_char(char32_t c) {
  return c < 512 ? tables().char_to_byte[c] : -1;
}

}  // namespace quad::tokenizer_detail
