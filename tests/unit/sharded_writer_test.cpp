// ShardedSafetensorsWriter: Hugging Face-style shards that TensorStore reads back, and the
// --max-shard-size parser.
#include "quad/io/sharded_writer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "quad/core/error.h"
#include "quad/io/safetensors.h"
#include "test_support.h"

namespace quad {
namespace {

namespace fs = std::filesystem;

std::vector<float> values(size_t n, float start) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + 0.5f * float(i);
  return v;
}

// Tensors of 400, 40, 2000 (over the limit) and 400 bytes with a 500-byte limit: shards
// {a, b}, {big}, {c}; every tensor reads back from the index with its bytes.
TEST(ShardedWriter, SplitsAtTheLimitAndReadsBack) {
  const fs::path dir = test::temp_dir("shards");
  const std::vector<float> a = values(100, 1), b = values(10, -3), big = values(500, 7),
                           c = values(100, 2);
  ShardedSafetensorsWriter w(dir, 500, {{"format", "pt"}});
  w.add("a", DType::F32, {10, 10}, a.data(), 400);
  w.add("b", DType::F32, {10}, b.data(), 40);
  w.add("big", DType::F32, {500}, big.data(), 2000);
  w.add("c", DType::F32, {100}, c.data(), 400);
  EXPECT_THROW(w.add("a", DType::F32, {1}, a.data(), 4), Error);  // a name is used once
  EXPECT_EQ(w.finish(), 3);
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  for (const char* f : {"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                        "model-00003-of-00003.safetensors"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  const auto index = nlohmann::json::parse(test::read_file(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 2840);
  EXPECT_EQ(index["weight_map"]["b"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["big"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["c"], "model-00003-of-00003.safetensors");
  const TensorStore store = TensorStore::open_dir(dir.string());
  EXPECT_EQ(store.get_f32("a", {10, 10}), a);
  EXPECT_EQ(store.get_f32("b", {10}), b);
  EXPECT_EQ(store.get_f32("big", {500}), big);
  EXPECT_EQ(store.get_f32("c", {100}), c);
  EXPECT_EQ(store.metadata().at("format"), "pt");
  for (const auto& entry : fs::directory_iterator(dir))  // no temporary shard left behind
    EXPECT_EQ(entry.path().string().find(".part"), std::string::npos) << entry.path();
}

// Everything within the limit: one model.safetensors, no index, as before sharding existed.
TEST(ShardedWriter, OneShardIsAPlainModelFile) {
  const fs::path dir = test::temp_dir("one_shard");
  const std::vector<float> a = values(100, 1);
  ShardedSafetensorsWriter w(dir, kDefaultMaxShardBytes, {});
  w.add("a", DType::F32, {100}, a.data(), 400);
  EXPECT_EQ(w.finish(), 1);
  EXPECT_TRUE(fs::exists(dir / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));
  SafetensorsWriter plain;
  plain.add("a", DType::F32, {100}, a.data(), 400);
  plain.write((dir / "plain.safetensors").string());
  EXPECT_EQ(test::read_file(dir / "model.safetensors"), test::read_file(dir / "plain.safetensors"));
}

TEST(ShardedWriter, ParsesSizes) {
  EXPECT_EQ(parse_byte_size("5GB"), 5'000'000'000ULL);
  EXPECT_EQ(parse_byte_size("500MB"), 500'000'000ULL);
  EXPECT_EQ(parse_byte_size("2GiB"), 2ULL << 30);
  EXPECT_EQ(parse_byte_size("100kB"), 100'000ULL);
  EXPECT_EQ(parse_byte_size("64mib"), 64ULL << 20);
  EXPECT_EQ(parse_byte_size("123"), 123ULL);
  EXPECT_EQ(parse_byte_size("7B"), 7ULL);
  for (const char* bad : {"", "GB", "0", "0GB", "-5GB", "1.5GB", "5 GB", "5TB", "abc",
                          "99999999999999999999", "20000000000GB"})
    EXPECT_THROW(parse_byte_size(bad), Error) << bad;
}

}  // namespace
}  // namespace quad
