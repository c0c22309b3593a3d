// SafetensorsFile: mmap (read-only, private), validate the header, expose TensorViews.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "quad/core/error.h"
#include "quad/io/safetensors.h"
#include "quad/io/safetensors_header.h"

namespace quad {

namespace {

constexpr const char* kModule = "safetensors";

// Owns a mapping until released; unmaps on the error paths of open().
struct Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr) munmap(addr, size);
  }
};

void map_file(const std::string& path, Mapping& mapping) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(kModule, "{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail(kModule, "{}: cannot stat: {}", path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(kModule, "{}: not a regular file", path);
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    fail(kModule, "{}: empty file (0 bytes; truncated download?)", path);
  }
  if (size < 8) {
    ::close(fd);
    fail(kModule,
         "{}: file is {} bytes, too small to be safetensors (needs an 8-byte header "
         "length; truncated download?)",
         path, size);
  }
  void* addr = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);
  if (addr == MAP_FAILED)
    fail(kModule, "{}: cannot mmap {} bytes: {}", path, size, std::strerror(err));
  mapping.addr = addr;
  mapping.size = size;
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated against overflow when the header was read
  return n;
}

std::vector<float> TensorView::to_f32() const {
  const auto n = static_cast<size_t>(numel());
  std::vector<float> out(n);
  if (n == 0) return out;
  // mmapped data need not be aligned for its type (e.g. after an odd-sized I8 tensor).
  if (reinterpret_cast<uintptr_t>(data) % dtype_size(dtype) != 0) {
    std::vector<uint64_t> aligned((nbytes + 7) / 8);
    std::memcpy(aligned.data(), data, nbytes);
    convert_to_f32(dtype, aligned.data(), out.data(), n);
  } else {
    convert_to_f32(dtype, data, out.data(), n);
  }
  return out;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  Mapping mapping;
  map_file(path, mapping);
  const auto* base = static_cast<const uint8_t*>(mapping.addr);
  const uint64_t size = mapping.size;

  const std::string_view head(reinterpret_cast<const char*>(base), std::min<uint64_t>(size, 64));
  if (head.rfind("version https://git-lfs", 0) == 0)
    fail(kModule, "{}: is a Git LFS pointer, not the tensor data (run `git lfs pull`)", path);
  const uint64_t header_len = read_le64(base);
  if (header_len > size - 8)
    fail(kModule,
         "{}: header length {} is larger than the {} bytes after it (truncated download, or not "
         "a safetensors file?)",
         path, header_len, size - 8);

  const std::string_view json_text(reinterpret_cast<const char*>(base + 8), header_len);
  const uint64_t data_size = size - 8 - header_len;
  safetensors_detail::Header header = safetensors_detail::parse_header(path, json_text, data_size);

  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  const uint8_t* data_region = base + 8 + header_len;
  for (auto& e : header.tensors) {
    TensorView view;
    view.name = e.name;
    view.dtype = e.dtype;
    view.shape = std::move(e.shape);
    view.data = data_region + e.begin;
    view.nbytes = static_cast<size_t>(e.end - e.begin);
    view.file = path;
    file->tensors_.emplace(e.name, std::move(view));
  }
  file->metadata_ = std::move(header.metadata);
  file->map_ = mapping.addr;
  file->map_size_ = mapping.size;
  mapping.addr = nullptr;  // now owned by `file`
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) munmap(map_, map_size_);
}

const TensorView& SafetensorsFile::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    fail(kModule, "{}: no tensor '{}' (the file has {} tensors)", path_, name, tensors_.size());
  return it->second;
}

}  // namespace quad
