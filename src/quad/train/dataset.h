// Fine-tuning data (QUAD-SPEC §7.4) turned into tokenized examples:
//  - alpaca: a JSON array of {instruction, input, output}; the Alpaca-LoRA template; EOS
//    appended unless truncated at seqlen; the loss covers the whole sequence unless
//    mask_prompt;
//  - gsm8k: jsonl of {question, answer}; the spec's math template x = "Q: {question}\nA: ",
//    y = the answer cut before its final "\n####" line (the counterpart of MetaMathQA's
//    "\nThe answer is:"), sequence x + " " + y + EOS; the prompt is always masked; sequences of
//    seqlen tokens or more are dropped (the spec filters rather than truncates);
//  - text: plain text, or jsonl of {"text"} documents: tokenized (each document with the
//    tokenizer's BOS, EOS after it), concatenated and cut into chunks of seqlen tokens, every
//    token a target.
#pragma once

#include <string>
#include <vector>

#include "quad/io/tokenizer.h"
#include "quad/train/batch.h"

namespace quad::train {

enum class DataFormat { Auto, Alpaca, Gsm8k, Text };

// "auto", "alpaca", "gsm8k", "text"; throws quad::Error for anything else.
DataFormat parse_data_format(const std::string& name);
const char* data_format_name(DataFormat f);
// Auto: *.json → alpaca; *.jsonl → gsm8k if the first record has "question" and "answer",
// text if it has "text"; anything else → text.
DataFormat detect_data_format(const std::string& path);

struct DataOptions {
  DataFormat format = DataFormat::Auto;
  int seqlen = 1024;
  bool mask_prompt = false;  // alpaca only (gsm8k always masks)
};

struct Dataset {
  DataFormat format = DataFormat::Text;
  std::vector<Example> examples;
  int dropped = 0;  // records skipped (gsm8k: too long)
  long num_tokens() const;
};

// Throws quad::Error naming the file and record (JSON index or jsonl line) on bad input.
Dataset load_dataset(const std::string& path, const Tokenizer& tokenizer, const DataOptions& opt);

// The Alpaca-LoRA prompt (everything before the response) for one record.
std::string alpaca_prompt(const std::string& instruction, const std::string& input);

}  // namespace quad::train
