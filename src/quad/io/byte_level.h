// GPT-2's reversible byte <-> unicode mapping used by byte-level BPE (ByteLevel pre-tokenizer
// and decoder): printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100.. in
// order, so that every byte string becomes a string of visible characters (space -> "Ġ").
#pragma once

#include <string>
#include <string_view>

namespace quad::tokenizer_detail {

// Appends the mapped characters (UTF-8) of every byte of `bytes`.
void byte_level_encode(std::string_view bytes, std::string& out);

// The byte a mapped character stands for, or -1 if `c` is not in the mapping.
int byte_level_decode_char(char32_t c);

}  // namespace quad::tokenizer_detail
