#include "quad/io/safetensors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "quad/core/error.h"
#include "test_support.h"

namespace quad {
namespace {

namespace fs = std::filesystem;

void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// A safetensors file from a raw header text and data region.
std::string raw_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = char(uint8_t(n >> (8 * i)));
  return out + header + data;
}

fs::path write_raw(const fs::path& dir, const std::string& name, const std::string& header,
                   const std::string& data) {
  fs::path p = dir / name;
  spit(p, raw_file(header, data));
  return p;
}

// Runs `fn`, expects a quad::Error from module "safetensors" whose one-line message contains
// every needle; returns the message.
std::string expect_error(const std::function<void()>& fn,
                         std::initializer_list<std::string> needles) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.module(), "safetensors") << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& needle : needles) EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    return msg;
  }
  ADD_FAILURE() << "expected quad::Error";
  return "";
}

void expect_open_error(const fs::path& path, std::initializer_list<std::string> needles) {
  const std::string msg = expect_error([&] { SafetensorsFile::open(path.string()); }, needles);
  EXPECT_NE(msg.find(path.filename().string()), std::string::npos) << "no file name: " << msg;
}

std::vector<uint8_t> random_nonzero_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(1, 255);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = uint8_t(dist(rng));
  return out;
}

// ---------------------------------------------------------------- writer -> reader

TEST(Safetensors, RoundTripEveryDtype) {
  const fs::path dir = test::temp_dir("st-roundtrip");
  const fs::path path = dir / "all.safetensors";
  const std::vector<DType> dtypes = {DType::F32, DType::F16, DType::BF16, DType::I8,
                                     DType::U8,  DType::I32, DType::I64,  DType::F64};
  std::map<std::string, std::vector<uint8_t>> expected;
  SafetensorsWriter writer;
  // An odd-sized I8 tensor first, so the tensors after it are misaligned in the file.
  const auto odd = random_nonzero_bytes(7, 99);
  writer.add("odd", DType::I8, {7}, odd.data(), odd.size());
  expected["odd"] = odd;
  for (size_t i = 0; i < dtypes.size(); ++i) {
    const std::string name = "t." + std::string(dtype_name(dtypes[i]));
    const std::vector<int64_t> shape = {3, int64_t(i) + 2};
    const auto bytes = random_nonzero_bytes(size_t(3 * (i + 2)) * dtype_size(dtypes[i]), i);
    writer.add(name, dtypes[i], shape, bytes.data(), bytes.size());
    expected[name] = bytes;
  }
  const std::vector<float> f = {1.5f, -2.25f, 3.0f, 0.125f};
  writer.add_f32("f32.values", {2, 2}, f.data());
  writer.set_metadata("format", "pt");
  writer.set_metadata("quad.recipe", "{\"bits\": 4}");
  writer.write(path.string());
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));

  // Header length: 8 + N is a multiple of 8 (data region aligned).
  const std::string raw = test::read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);

  auto file = SafetensorsFile::open(path.string());
  EXPECT_EQ(file->tensors().size(), dtypes.size() + 2);
  EXPECT_EQ(file->metadata(), (std::map<std::string, std::string>{
                                  {"format", "pt"}, {"quad.recipe", "{\"bits\": 4}"}}));
  for (size_t i = 0; i < dtypes.size(); ++i) {
    const std::string name = "t." + std::string(dtype_name(dtypes[i]));
    const TensorView& v = file->get(name);
    EXPECT_EQ(v.name, name);
    EXPECT_EQ(v.dtype, dtypes[i]);
    EXPECT_EQ(v.shape, (std::vector<int64_t>{3, int64_t(i) + 2}));
    EXPECT_EQ(v.numel(), int64_t(3 * (i + 2)));
    EXPECT_EQ(v.file, path.string());
    ASSERT_EQ(v.nbytes, expected[name].size());
    EXPECT_EQ(std::memcmp(v.data, expected[name].data(), v.nbytes), 0) << name;
    // to_f32 agrees with converting the original bytes (compared bitwise: NaNs included).
    std::vector<float> want(size_t(v.numel()));
    convert_to_f32(dtypes[i], expected[name].data(), want.data(), want.size());
    const std::vector<float> got = v.to_f32();
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0) << name;
  }
  const TensorView& odd_view = file->get("odd");
  EXPECT_EQ(std::memcmp(odd_view.data, odd.data(), odd.size()), 0);
  EXPECT_EQ(file->get("f32.values").to_f32(), f);
}

// Spilling tensors to a scratch file gives the same bytes as holding them in memory, also for
// more than one read-back buffer (8 MiB) and an empty tensor; the scratch file is gone at once.
TEST(Safetensors, SpilledWriterWritesTheSameFile) {
  const fs::path dir = test::temp_dir("st-spill");
  const auto big = random_nonzero_bytes((size_t(9) << 20) + 6, 3);
  const auto small = random_nonzero_bytes(2 * 3 * 2, 4);
  auto fill = [&](SafetensorsWriter& w) {
    w.set_metadata("format", "pt");
    w.add("small", DType::BF16, {2, 3}, small.data(), small.size());
    w.add("empty", DType::F32, {0, 4}, nullptr, 0);
    w.add("big", DType::U8, {int64_t(big.size())}, big.data(), big.size());
  };
  SafetensorsWriter held, spilled;
  spilled.spill_to((dir / "scratch.spill").string());
  EXPECT_FALSE(fs::exists(dir / "scratch.spill"));
  fill(held);
  fill(spilled);
  held.write((dir / "held.safetensors").string());
  spilled.write((dir / "spilled.safetensors").string());
  const std::string bytes = test::read_file(dir / "spilled.safetensors");
  EXPECT_EQ(bytes, test::read_file(dir / "held.safetensors"));
  EXPECT_GT(bytes.size(), big.size());
  EXPECT_EQ(std::memcmp(bytes.data() + bytes.size() - big.size(), big.data(), big.size()), 0);
  EXPECT_THROW(held.spill_to((dir / "late.spill").string()), Error);  // after add()
}

TEST(Safetensors, WriterOutputIsDeterministicAndInAddedOrder) {
  const fs::path dir = test::temp_dir("st-determinism");
  auto make = [] {
    SafetensorsWriter w;
    const auto a = random_nonzero_bytes(2 * 3 * 2, 1);
    const auto b = random_nonzero_bytes(5, 2);
    w.add("zeta", DType::BF16, {2, 3}, a.data(), a.size());
    w.add("alpha", DType::U8, {5}, b.data(), b.size());
    w.add("empty", DType::F32, {0, 4}, nullptr, 0);
    w.set_metadata("b", "2");
    w.set_metadata("a", "1");
    return w;
  };
  const SafetensorsWriter w1 = make();
  w1.write((dir / "one.safetensors").string());
  w1.write((dir / "two.safetensors").string());
  make().write((dir / "three.safetensors").string());
  const std::string one = test::read_file(dir / "one.safetensors");
  EXPECT_EQ(one, test::read_file(dir / "two.safetensors"));
  EXPECT_EQ(one, test::read_file(dir / "three.safetensors"));

  uint64_t n = 0;
  std::memcpy(&n, one.data(), 8);
  const auto header = nlohmann::ordered_json::parse(one.substr(8, n));
  std::vector<std::string> keys;
  for (const auto& [key, value] : header.items()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"__metadata__", "zeta", "alpha", "empty"}));
  EXPECT_EQ(header["zeta"]["data_offsets"], nlohmann::json::array({0, 12}));
  EXPECT_EQ(header["alpha"]["data_offsets"], nlohmann::json::array({12, 17}));
  EXPECT_EQ(header["empty"]["data_offsets"], nlohmann::json::array({17, 17}));
  EXPECT_EQ(one.size(), 8 + n + 17);

  auto file = SafetensorsFile::open((dir / "one.safetensors").string());
  EXPECT_EQ(file->get("empty").nbytes, 0u);
  EXPECT_EQ(file->get("empty").numel(), 0);
  EXPECT_TRUE(file->get("empty").to_f32().empty());
}

TEST(Safetensors, WriterRejectsBadTensors) {
  SafetensorsWriter w;
  const std::vector<uint8_t> bytes(12, 1);
  expect_error(
      [&] {
        w.add("w", DType::F32, {2, 2}, bytes.data(), bytes.size());
      },
      {"'w'", "16", "12"});
  expect_error([&] { w.add("neg", DType::U8, {-1, 4}, bytes.data(), 4); }, {"'neg'", "negative"});
  expect_error([&] { w.add("__metadata__", DType::U8, {12}, bytes.data(), 12); }, {"__metadata__"});
  w.add("ok", DType::U8, {12}, bytes.data(), 12);
  expect_error([&] { w.add("ok", DType::U8, {12}, bytes.data(), 12); }, {"'ok'", "twice"});
}

TEST(Safetensors, WriterReportsIoFailureAndRemovesTempFile) {
  const fs::path dir = test::temp_dir("st-writefail");
  SafetensorsWriter w;
  const std::vector<uint8_t> bytes(4, 7);
  w.add("x", DType::U8, {4}, bytes.data(), 4);
  expect_error([&] { w.write((dir / "no-such-dir" / "out.safetensors").string()); },
               {"no-such-dir", "out.safetensors.tmp"});
  // The target is a directory: the temp file is written but the rename fails.
  const fs::path target = dir / "occupied";
  fs::create_directories(target / "child");
  expect_error([&] { w.write(target.string()); }, {"occupied", "rename"});
  EXPECT_FALSE(fs::exists(target.string() + ".tmp"));
  EXPECT_TRUE(fs::is_directory(target));
}

// ---------------------------------------------------------------- real model folders

TEST(Safetensors, ReadsStories260K) {
  QUAD_REQUIRE_ASSET(dir, "models/stories260K");
  const TensorStore store = TensorStore::open_dir(dir.string());
  EXPECT_EQ(store.names().size(), 47u);
  const TensorView& embed = store.get("model.embed_tokens.weight");
  EXPECT_EQ(embed.dtype, DType::F32);
  EXPECT_EQ(embed.shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(embed.nbytes, 512u * 64 * 4);
  EXPECT_EQ(store.metadata().at("format"), "pt");
  const std::vector<float> values = embed.to_f32();
  ASSERT_EQ(values.size(), 512u * 64);
  double sum_abs = 0;
  for (float v : values) {
    ASSERT_TRUE(std::isfinite(v));
    sum_abs += std::abs(v);
  }
  EXPECT_GT(sum_abs, 0.0);
  expect_error([&] { store.get("model.no_such.weight"); }, {"stories260K", "model.no_such.weight"});
}

// Every weight_map entry of the index resolves to a tensor of the named shard.
void check_index_resolves(const fs::path& dir, const TensorStore& store) {
  const auto index = nlohmann::json::parse(test::read_file(dir / "model.safetensors.index.json"));
  size_t count = 0;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    ASSERT_TRUE(store.has(name)) << name;
    const TensorView& v = store.get(name);
    EXPECT_EQ(fs::path(v.file).filename().string(), shard.get<std::string>()) << name;
    EXPECT_NE(v.data, nullptr);
    EXPECT_GT(v.nbytes, 0u);
    ++count;
  }
  EXPECT_EQ(count, store.names().size());
}

TEST(Safetensors, ReadsShardedTinyLlama3) {
  QUAD_REQUIRE_ASSET(dir, "models/tiny-llama3-30m");
  const TensorStore store = TensorStore::open_dir(dir.string());
  EXPECT_EQ(store.names().size(), 66u);
  const std::vector<std::string> names = store.names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  const TensorView& embed = store.get("model.embed_tokens.weight");
  EXPECT_EQ(embed.dtype, DType::BF16);
  EXPECT_EQ(embed.shape, (std::vector<int64_t>{8192, 512}));
  EXPECT_EQ(embed.nbytes, 8192u * 512 * 2);
  EXPECT_EQ(fs::path(embed.file).filename(), "model-00001-of-00005.safetensors");
  for (const auto& name : store.names()) EXPECT_EQ(store.get(name).dtype, DType::BF16) << name;
  check_index_resolves(dir, store);
}

TEST(Safetensors, ReadsShardedTinyQwen2) {
  QUAD_REQUIRE_ASSET(dir, "models/tiny-qwen2-27m");
  const TensorStore store = TensorStore::open_dir(dir.string());
  EXPECT_EQ(store.names().size(), 98u);
  const TensorView& embed = store.get("model.embed_tokens.weight");
  EXPECT_EQ(embed.dtype, DType::BF16);
  EXPECT_EQ(embed.shape, (std::vector<int64_t>{8192, 512}));
  check_index_resolves(dir, store);
}

// ---------------------------------------------------------------- bad files

constexpr const char* kGood = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";

TEST(SafetensorsBadInput, AcceptsTheBaselineFile) {
  const fs::path dir = test::temp_dir("st-bad");
  auto file =
      SafetensorsFile::open(write_raw(dir, "ok.safetensors", kGood, std::string(16, 'x')).string());
  EXPECT_EQ(file->get("w").nbytes, 16u);
  expect_error([&] { file->get("v"); }, {"ok.safetensors", "'v'"});
}

TEST(SafetensorsBadInput, EmptyAndTinyFiles) {
  const fs::path dir = test::temp_dir("st-bad");
  spit(dir / "empty.safetensors", "");
  expect_open_error(dir / "empty.safetensors", {"0 bytes"});
  spit(dir / "tiny.safetensors", "abcde");
  expect_open_error(dir / "tiny.safetensors", {"5 bytes"});
  expect_open_error(dir / "absent.safetensors", {"cannot open"});
  expect_open_error(dir, {"not a regular file"});
  spit(dir / "lfs.safetensors", "version https://git-lfs.github.com/spec/v1\noid sha256:00\n");
  expect_open_error(dir / "lfs.safetensors", {"Git LFS"});
}

TEST(SafetensorsBadInput, TruncatedRealShard) {
  QUAD_REQUIRE_ASSET(src, "models/tiny-llama3-30m/model-00002-of-00005.safetensors");
  const fs::path dir = test::temp_dir("st-trunc");
  const fs::path cut = dir / "model-00002-of-00005.safetensors";
  fs::copy_file(src, cut);
  fs::permissions(cut, fs::perms::owner_read | fs::perms::owner_write);
  fs::resize_file(cut, fs::file_size(cut) / 2);
  expect_open_error(cut, {"tensor 'model.layers.", "ends at byte", "truncated"});
  // Cut inside the header.
  fs::resize_file(cut, 100);
  expect_open_error(cut, {"header length", "truncated"});
}

TEST(SafetensorsBadInput, HeaderLengthPastEof) {
  const fs::path dir = test::temp_dir("st-bad");
  std::string bytes = raw_file(kGood, std::string(16, 'x'));
  bytes[0] = char(0xff);
  bytes[1] = char(0xff);
  spit(dir / "long.safetensors", bytes);
  expect_open_error(dir / "long.safetensors", {"header length 65535", "larger"});
}

TEST(SafetensorsBadInput, HeaderNotAJsonObject) {
  const fs::path dir = test::temp_dir("st-bad");
  expect_open_error(write_raw(dir, "badjson.safetensors", "{\"w\": {", ""), {"not valid JSON"});
  expect_open_error(write_raw(dir, "array.safetensors", "[1, 2]", ""), {"JSON object", "'array'"});
  expect_open_error(write_raw(dir, "entry.safetensors", R"({"w": 3})", ""),
                    {"'w'", "must be an object"});
}

TEST(SafetensorsBadInput, MissingOrMistypedFields) {
  const fs::path dir = test::temp_dir("st-bad");
  const std::string data(16, 'x');
  expect_open_error(
      write_raw(dir, "nodtype.safetensors", R"({"w":{"shape":[2,2],"data_offsets":[0,16]}})", data),
      {"'w'", "\"dtype\""});
  expect_open_error(
      write_raw(dir, "noshape.safetensors", R"({"w":{"dtype":"F32","data_offsets":[0,16]}})", data),
      {"'w'", "\"shape\""});
  expect_open_error(
      write_raw(dir, "nooffsets.safetensors", R"({"w":{"dtype":"F32","shape":[2,2]}})", data),
      {"'w'", "\"data_offsets\""});
  expect_open_error(write_raw(dir, "dtypenum.safetensors",
                              R"({"w":{"dtype":4,"shape":[2,2],"data_offsets":[0,16]}})", data),
                    {"'w'", "\"dtype\" must be a string"});
  expect_open_error(write_raw(dir, "shapestr.safetensors",
                              R"({"w":{"dtype":"F32","shape":"2x2","data_offsets":[0,16]}})", data),
                    {"'w'", "\"shape\" must be an array"});
  expect_open_error(
      write_raw(dir, "shapefloat.safetensors",
                R"({"w":{"dtype":"F32","shape":[2,2.0],"data_offsets":[0,16]}})", data),
      {"'w'", "\"shape\" must be an array of integers"});
  expect_open_error(
      write_raw(dir, "negdim.safetensors",
                R"({"w":{"dtype":"F32","shape":[-2,-2],"data_offsets":[0,16]}})", data),
      {"'w'", "negative dimension -2"});
  expect_open_error(
      write_raw(dir, "offsets3.safetensors",
                R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8,16]}})", data),
      {"'w'", "[begin, end]"});
  expect_open_error(
      write_raw(dir, "negoffset.safetensors",
                R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[-16,0]}})", data),
      {"'w'", "non-negative"});
  expect_open_error(
      write_raw(
          dir, "meta.safetensors",
          R"({"__metadata__":{"format":1},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})",
          data),
      {"__metadata__", "'format'", "string"});
  expect_open_error(write_raw(dir, "meta2.safetensors", R"({"__metadata__":[1]})", ""),
                    {"__metadata__"});
}

TEST(SafetensorsBadInput, UnknownDtype) {
  const fs::path dir = test::temp_dir("st-bad");
  expect_open_error(
      write_raw(dir, "fp8.safetensors",
                R"({"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", "abcd"),
      {"tensor 'w'", "'F8_E4M3'", "BF16"});
}

TEST(SafetensorsBadInput, ShapeBytesMismatch) {
  const fs::path dir = test::temp_dir("st-bad");
  expect_open_error(write_raw(dir, "mismatch.safetensors",
                              R"({"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,16]}})",
                              std::string(16, 'x')),
                    {"tensor 'w'", "BF16 [2, 3] = 12 bytes", "16 bytes"});
  expect_open_error(
      write_raw(dir, "overflow.safetensors",
                R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})",
                std::string(16, 'x')),
      {"tensor 'w'", "overflows"});
  expect_open_error(
      write_raw(dir, "reversed.safetensors",
                R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[16,0]}})", std::string(16, 'x')),
      {"tensor 'w'", "begin > end"});
}

TEST(SafetensorsBadInput, OutOfRangeOffsets) {
  const fs::path dir = test::temp_dir("st-bad");
  expect_open_error(write_raw(dir, "range.safetensors",
                              R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}})",
                              std::string(16, 'x')),
                    {"tensor 'w'", "ends at byte 24", "16 bytes"});
  expect_open_error(
      write_raw(
          dir, "huge.safetensors",
          R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551614,18446744073709551615]}})",
          std::string(16, 'x')),
      {"tensor 'w'", "ends at byte 18446744073709551615"});
}

TEST(SafetensorsBadInput, OverlappingOffsets) {
  const fs::path dir = test::temp_dir("st-bad");
  expect_open_error(write_raw(dir, "overlap.safetensors",
                              R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},
                    "b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                              std::string(16, 'x')),
                    {"'a'", "'b'", "overlap"});
}

TEST(SafetensorsBadInput, UnindexedBytes) {
  const fs::path dir = test::temp_dir("st-bad");
  expect_open_error(write_raw(dir, "hole.safetensors",
                              R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                    "b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
                              std::string(20, 'x')),
                    {"[8, 12)", "'b'"});
  expect_open_error(write_raw(dir, "trailing.safetensors", kGood, std::string(20, 'x')),
                    {"20 bytes", "first 16"});
}

// ---------------------------------------------------------------- bad folders

// A two-shard folder: a [2] F32 in shard 1, b [3] U8 in shard 2, with an index.
fs::path make_sharded_dir(const std::string& tag, const std::string& index_text) {
  const fs::path dir = test::temp_dir(tag);
  const std::vector<float> a = {1.0f, 2.0f};
  const std::vector<uint8_t> b = {1, 2, 3};
  SafetensorsWriter w1;
  w1.add_f32("a", {2}, a.data());
  w1.set_metadata("format", "pt");
  w1.write((dir / "model-00001-of-00002.safetensors").string());
  SafetensorsWriter w2;
  w2.add("b", DType::U8, {3}, b.data(), b.size());
  w2.write((dir / "model-00002-of-00002.safetensors").string());
  spit(dir / "model.safetensors.index.json", index_text);
  return dir;
}

constexpr const char* kIndex = R"({"metadata": {"total_size": 11}, "weight_map": {
  "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})";

TEST(SafetensorsStore, OpensAValidShardedFolder) {
  const fs::path dir = make_sharded_dir("st-store", kIndex);
  const TensorStore store = TensorStore::open_dir(dir.string());
  EXPECT_EQ(store.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(store.get("a").to_f32(), (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(store.get("b").to_f32(), (std::vector<float>{1.0f, 2.0f, 3.0f}));
  EXPECT_EQ(store.metadata().at("format"), "pt");
  EXPECT_EQ(store.dir(), dir.string());
  const TensorStore files =
      TensorStore::open_files({(dir / "model-00001-of-00002.safetensors").string(),
                               (dir / "model-00002-of-00002.safetensors").string()});
  EXPECT_EQ(files.names(), store.names());
  EXPECT_FALSE(files.has("c"));
}

TEST(SafetensorsStore, MissingShardNamedByIndex) {
  const fs::path dir = make_sharded_dir("st-store", kIndex);
  fs::remove(dir / "model-00002-of-00002.safetensors");
  expect_error([&] { TensorStore::open_dir(dir.string()); },
               {"model.safetensors.index.json", "model-00002-of-00002.safetensors", "'b'",
                "does not exist"});
}

TEST(SafetensorsStore, IndexNamesTensorNotInItsShard) {
  const fs::path dir = make_sharded_dir("st-store", R"({"weight_map": {
    "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors",
    "c": "model-00001-of-00002.safetensors"}})");
  expect_error([&] { TensorStore::open_dir(dir.string()); },
               {"model.safetensors.index.json", "'c'", "model-00001-of-00002.safetensors"});
}

TEST(SafetensorsStore, BadIndexAndEmptyFolder) {
  const fs::path bad = make_sharded_dir("st-store", R"({"weight_map": [1]})");
  expect_error([&] { TensorStore::open_dir(bad.string()); },
               {"model.safetensors.index.json", "weight_map"});
  const fs::path broken = make_sharded_dir("st-store", "{nope");
  expect_error([&] { TensorStore::open_dir(broken.string()); },
               {"model.safetensors.index.json", "JSON"});
  const fs::path empty = test::temp_dir("st-store-empty");
  expect_error([&] { TensorStore::open_dir(empty.string()); },
               {"no model.safetensors or model.safetensors.index.json in", empty.string()});
  expect_error([&] { TensorStore::open_dir((empty / "nope").string()); }, {"not a directory"});
}

TEST(SafetensorsStore, SameTensorInTwoFiles) {
  const fs::path dir = make_sharded_dir("st-store", kIndex);
  const std::string one = (dir / "model-00001-of-00002.safetensors").string();
  fs::copy_file(one, dir / "copy.safetensors");
  expect_error(
      [&] {
        TensorStore::open_files({one, (dir / "copy.safetensors").string()});
      },
      {"'a'", "model-00001-of-00002.safetensors", "copy.safetensors"});
}

}  // namespace
}  // namespace quad
