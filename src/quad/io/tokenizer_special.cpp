// BOS/EOS and the ids put around an encoded text: tokenizer.json's post_processor
// (TemplateProcessing, Bert/RobertaProcessing, ByteLevel, Sequence) adjusted by
// tokenizer_config.json's add_bos_token / add_eos_token, as transformers does.
#include <algorithm>

#include "quad/io/tokenizer_impl.h"
#include "quad/io/tokenizer_json.h"

namespace quad::tokenizer_detail {

namespace {

// TemplateProcessing "single": special tokens before $A go to the prefix, after it to the suffix.
void read_template(Pipeline& impl, const json& processor) {
  const std::string& file = impl.json_path;
  const json& single = require(processor, "single", file, "TemplateProcessing post_processor");
  const json& specials = processor.value("special_tokens", json::object());
  if (!single.is_array()) fail(kModule, "{}: TemplateProcessing: \"single\" must be a list", file);
  bool seen_sequence = false;
  for (const json& piece : single) {
    if (piece.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    if (!piece.contains("SpecialToken"))
      fail(kModule, "{}: TemplateProcessing: unexpected piece {}", file, brief(piece));
    const std::string name =
        require_string(piece["SpecialToken"], "id", file, "TemplateProcessing special token");
    std::vector<int32_t> ids;
    if (specials.contains(name) && specials[name].contains("ids")) {
      ids = specials[name]["ids"].get<std::vector<int32_t>>();
    } else if (const int32_t id = impl.token_id(name); id >= 0) {
      ids = {id};
    } else {
      fail(kModule, "{}: TemplateProcessing uses unknown special token \"{}\"", file, name);
    }
    auto& target = seen_sequence ? impl.suffix : impl.prefix;
    target.insert(target.end(), ids.begin(), ids.end());
  }
}

// Bert/RobertaProcessing: "cls": [token, id] before, "sep": [token, id] after.
void read_cls_sep(Pipeline& impl, const json& processor) {
  const std::string& file = impl.json_path;
  for (const char* key : {"cls", "sep"}) {
    const json& pair = require(processor, key, file, "post_processor");
    if (!pair.is_array() || pair.size() != 2 || !pair[1].is_number_integer())
      fail(kModule, "{}: post_processor \"{}\" must be [token, id]", file, key);
    (key[0] == 'c' ? impl.prefix : impl.suffix).push_back(pair[1].get<int32_t>());
  }
}

void read_post_processor(Pipeline& impl, const json& processor) {
  if (processor.is_null()) return;
  const std::string type = component_type(processor, impl.json_path, "post_processor");
  if (type == "Sequence") {
    const json& list = require(processor, "processors", impl.json_path, "Sequence post_processor");
    if (!list.is_array())
      fail(kModule, "{}: Sequence post_processor: \"processors\" must be a list", impl.json_path);
    for (const json& item : list) read_post_processor(impl, item);
  } else if (type == "TemplateProcessing") {
    read_template(impl, processor);
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    read_cls_sep(impl, processor);
  } else if (type != "ByteLevel") {  // ByteLevel only adjusts offsets
    fail(kModule, "{}: unsupported post_processor type \"{}\"", impl.json_path, type);
  }
}

// The content of a bos_token/eos_token entry: a string, {"content": ...}, or null/absent ("").
std::string special_token_content(const json& config, const char* key,
                                  const std::string& config_path) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  fail(kModule, "{}: \"{}\" must be a string, null or {{\"content\": ...}}, got {}", config_path,
       key, brief(*it));
}

// The id of the bos/eos token named in the config; `fallback` when the config does not name one.
int32_t configured_id(const Pipeline& impl, const json& config, const char* key, int32_t fallback,
                      const std::string& config_path) {
  if (!config.is_object() || !config.contains(key)) return fallback;
  const std::string content = special_token_content(config, key, config_path);
  if (content.empty()) return -1;
  const int32_t id = impl.token_id(content);
  if (id < 0)
    fail(kModule, "{}: {} \"{}\" is not in the vocabulary of {}", config_path, key, content,
         impl.json_path);
  return id;
}

}  // namespace

bool config_bool(const json& config, const char* key, bool fallback,
                 const std::string& config_path) {
  if (!config.is_object()) return fallback;
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_boolean())
    fail(kModule, "{}: \"{}\" must be true or false, got {}", config_path, key, brief(*it));
  return it->get<bool>();
}

void configure_special_tokens(Pipeline& impl, const json& tokenizer_json, const json& config,
                              const std::string& config_path) {
  read_post_processor(impl, tokenizer_json.value("post_processor", json()));

  impl.bos = configured_id(impl, config, "bos_token",
                           impl.prefix.empty() ? -1 : impl.prefix.front(), config_path);
  impl.eos = configured_id(impl, config, "eos_token", impl.suffix.empty() ? -1 : impl.suffix.back(),
                           config_path);

  // transformers rebuilds the template from add_bos_token / add_eos_token when they are given.
  auto apply_flag = [&](const char* key, int32_t id, std::vector<int32_t>& ids, bool front) {
    if (!config.is_object() || !config.contains(key) || config[key].is_null()) return;
    const bool want = config_bool(config, key, false, config_path);
    const bool has = !ids.empty() && (front ? ids.front() : ids.back()) == id;
    if (want && id < 0)
      fail(kModule, "{}: \"{}\" is true but no such token is defined", config_path, key);
    if (want && !has) ids.insert(front ? ids.begin() : ids.end(), id);
    if (!want && has) ids.erase(front ? ids.begin() : ids.end() - 1);
  };
  apply_flag("add_bos_token", impl.bos, impl.prefix, true);
  apply_flag("add_eos_token", impl.eos, impl.suffix, false);

  // transformers >= 5.7 (the reference ids and texts come from 5.17) ignores
  // clean_up_tokenization_spaces for BPE models, which all of ours are, unless this escape hatch
  // is set too (huggingface/transformers#44915); tiny-llama3-30m sets only the first flag.
  impl.clean_up_spaces =
      config_bool(config, "clean_up_tokenization_spaces", false, config_path) &&
      config_bool(config, "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output",
                  false, config_path);
}

}  // namespace quad::tokenizer_detail
