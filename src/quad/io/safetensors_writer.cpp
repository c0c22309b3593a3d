// SafetensorsWriter: deterministic safetensors output, written to "<path>.tmp" then renamed.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "quad/core/error.h"
#include "quad/io/safetensors.h"
#include "quad/io/safetensors_header.h"

namespace quad {

namespace {

constexpr const char* kModule = "safetensors";

// All n bytes to fd (the file at path), or a clear error.
void write_all(int fd, const std::string& path, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t written = ::write(fd, p, n);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0)
      fail(kModule, "{}: write failed: {}", path,
           written < 0 ? std::strerror(errno) : "no progress");
    p += written;
    n -= static_cast<size_t>(written);
  }
}

// An open temp file that is closed and removed unless commit() renamed it into place.
class TempFile {
 public:
  TempFile(std::string tmp_path, std::string final_path)
      : tmp_(std::move(tmp_path)), final_(std::move(final_path)) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail(kModule, "{}: cannot create: {}", tmp_, std::strerror(errno));
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const void* data, size_t n) { write_all(fd_, tmp_, data, n); }

  // fsync, close and rename over the final path.
  void commit() {
    if (::fsync(fd_) != 0) fail(kModule, "{}: fsync failed: {}", tmp_, std::strerror(errno));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail(kModule, "{}: close failed: {}", tmp_, std::strerror(errno));
    if (std::rename(tmp_.c_str(), final_.c_str()) != 0)
      fail(kModule, "{}: cannot rename to {}: {}", tmp_, final_, std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string tmp_;
  std::string final_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

// An anonymous scratch file: created and unlinked at once, read back with pread.
class SpillFile {
 public:
  explicit SpillFile(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0) fail(kModule, "{}: cannot create: {}", path_, std::strerror(errno));
    ::unlink(path_.c_str());
  }
  ~SpillFile() { ::close(fd_); }
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;

  void append(const void* data, size_t n) {
    write_all(fd_, path_, data, n);
    size_ += n;
  }
  // Every byte appended so far, in order, into out.
  void copy_to(TempFile& out) const {
    std::vector<uint8_t> buffer(size_t(8) << 20);
    for (uint64_t at = 0; at < size_;) {
      const size_t want = size_t(std::min<uint64_t>(buffer.size(), size_ - at));
      const ssize_t got = ::pread(fd_, buffer.data(), want, off_t(at));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0)
        fail(kModule, "{}: read back failed: {}", path_,
             got < 0 ? std::strerror(errno) : "unexpected end");
      out.write(buffer.data(), size_t(got));
      at += uint64_t(got);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

void SafetensorsWriter::spill_to(const std::string& path) {
  if (!entries_.empty()) fail(kModule, "spill_to after tensors were added");
  spill_ = std::make_shared<SpillFile>(path);
}

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            const void* data, size_t nbytes) {
  using safetensors_detail::checked_nbytes;
  using safetensors_detail::shape_str;
  if (name.empty() || name == "__metadata__")
    fail(kModule, "cannot add a tensor named '{}' (reserved or empty)", name);
  for (const Entry& e : entries_)
    if (e.name == name) fail(kModule, "tensor '{}' added twice", name);
  const std::optional<uint64_t> expected = checked_nbytes(shape, dtype);
  if (!expected)
    fail(kModule, "tensor '{}': shape {} has a negative dimension or is too large", name,
         shape_str(shape));
  if (*expected != nbytes)
    fail(kModule, "tensor '{}': {} {} needs {} bytes but {} were given", name, dtype_name(dtype),
         shape_str(shape), *expected, nbytes);
  if (nbytes > 0 && data == nullptr) fail(kModule, "tensor '{}': data is null", name);
  Entry entry{name, dtype, std::move(shape), nbytes, {}};
  const auto* bytes = static_cast<const uint8_t*>(data);
  if (spill_)
    spill_->append(bytes, nbytes);
  else if (nbytes > 0)
    entry.bytes.assign(bytes, bytes + nbytes);
  entries_.push_back(std::move(entry));
}

void SafetensorsWriter::add_f32(const std::string& name, std::vector<int64_t> shape,
                                const float* data) {
  const std::optional<uint64_t> nbytes = safetensors_detail::checked_nbytes(shape, DType::F32);
  if (!nbytes)
    fail(kModule, "tensor '{}': shape {} has a negative dimension or is too large", name,
         safetensors_detail::shape_str(shape));
  add(name, DType::F32, std::move(shape), data, static_cast<size_t>(*nbytes));
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

void SafetensorsWriter::write(const std::string& path) const {
  // Header: "__metadata__" (keys sorted) first, then tensors in the order added.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata_) meta[key] = value;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const Entry& e : entries_) {
    nlohmann::ordered_json info = nlohmann::ordered_json::object();
    info["dtype"] = std::string(dtype_name(e.dtype));
    info["shape"] = e.shape;
    info["data_offsets"] = {offset, offset + e.size};
    header[e.name] = std::move(info);
    offset += e.size;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // e.g. a name that is not valid UTF-8
    fail(kModule, "{}: cannot encode the header: {}", path, e.what());
  }
  // Pad with spaces so the data region starts 8-byte aligned. Tensors follow back to back:
  // the format forbids gaps between them.
  text.append((8 - text.size() % 8) % 8, ' ');

  uint8_t len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(n >> (8 * i));

  TempFile out(path + ".tmp", path);
  out.write(len, sizeof len);
  out.write(text.data(), text.size());
  if (spill_)
    spill_->copy_to(out);
  else
    for (const Entry& e : entries_) out.write(e.bytes.data(), e.bytes.size());
  out.commit();
}

}  // namespace quad
