// Calibration data (QUAD-SPEC §6): documents from a jsonl file ({"text": ...} per line, e.g.
// C4), a JSON array of strings or {"text"} objects, or a plain text file (one document); token
// windows drawn with a seeded generator: pick a random document until one has at least `seqlen`
// tokens, then a random window of it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quad/io/tokenizer.h"

namespace quad {

// Throws quad::Error naming the file (and line) on unreadable, empty or malformed input.
std::vector<std::string> load_calibration_documents(const std::string& path);

// nsamples windows of seqlen tokens (with the tokenizer's default special tokens). If no single
// document is long enough, the documents are joined with "\n\n" into one stream and windows are
// drawn from it (logged); throws quad::Error if even that is shorter than seqlen.
std::vector<std::vector<int32_t>> sample_calibration_windows(const Tokenizer& tokenizer,
                                                             const std::vector<std::string>& docs,
                                                             int nsamples, int seqlen,
                                                             uint64_t seed);

// Lower-case hex SHA-256 of a file's bytes (recorded in the recipe).
std::string sha256_file(const std::string& path);

}  // namespace quad
