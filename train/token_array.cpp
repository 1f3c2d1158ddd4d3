// TokenArray's storage: a vector in memory or a read-only file mapping, and
// the widening copy batches are built with.
#include "train/token_array.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace ember {

int token_width(int64_t vocab_size) {
  if (vocab_size <= 256) return 1;
  if (vocab_size <= 65536) return 2;
  return 4;
}

std::string token_dtype_name(int width) { return width == 1 ? "uint8" : width == 2 ? "uint16" : "uint32"; }

int token_width_from_name(const std::string& name) {
  if (name == "uint8") return 1;
  if (name == "uint16") return 2;
  if (name == "uint32") return 4;
  fail("tokens: unknown dtype '{}' (expected uint8, uint16 or uint32)", name);
}

TokenArray::TokenArray(std::vector<int32_t> ids) {
  for (size_t i = 0; i < ids.size(); ++i)
    EMBER_CHECK(ids[i] >= 0, "tokens: id {} at position {} is negative", ids[i], i);
  auto held = std::make_shared<std::vector<int32_t>>(std::move(ids));
  // A non-negative int32_t has the bit pattern of the same uint32_t.
  data_ = reinterpret_cast<const unsigned char*>(held->data());
  size_ = static_cast<int64_t>(held->size());
  width_ = 4;
  owner_ = std::move(held);
}

TokenArray::TokenArray(std::shared_ptr<const void> owner, const void* data, int64_t count, int width)
    : owner_(std::move(owner)), data_(static_cast<const unsigned char*>(data)), size_(count), width_(width) {
  EMBER_CHECK(width == 1 || width == 2 || width == 4, "tokens: an id takes 1, 2 or 4 bytes, not {}", width);
  EMBER_CHECK(count >= 0 && (count == 0 || data != nullptr), "tokens: {} ids without storage", count);
}

namespace {

// munmap()s a mapping when the last TokenArray using it goes.
struct Mapping {
  void* addr = nullptr;
  size_t bytes = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (addr) munmap(addr, bytes);
  }
};

}  // namespace

TokenArray TokenArray::map_file(const std::string& path, int64_t count, int width) {
  EMBER_CHECK(count >= 0, "tokens: cannot map {} ids from '{}'", count, path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EMBER_CHECK(fd >= 0, "tokens: cannot open '{}' ({})", path, std::strerror(errno));
  struct stat st {};
  const bool stat_ok = ::fstat(fd, &st) == 0;
  const int64_t bytes = count * width;
  if (!stat_ok || st.st_size != bytes) {
    ::close(fd);
    fail("tokens: '{}' holds {} bytes, expected {} ({} ids of {} bytes)", path,
         stat_ok ? static_cast<int64_t>(st.st_size) : -1, bytes, count, width);
  }
  auto m = std::make_shared<Mapping>();
  if (bytes > 0) {
    void* addr = ::mmap(nullptr, static_cast<size_t>(bytes), PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    EMBER_CHECK(addr != MAP_FAILED, "tokens: cannot map '{}' ({})", path, std::strerror(err));
    m->addr = addr;
    m->bytes = static_cast<size_t>(bytes);
  } else {
    ::close(fd);
  }
  static const unsigned char kNone = 0;  // a valid pointer for an empty file
  const void* data = m->addr ? m->addr : &kNone;
  return TokenArray(std::move(m), data, count, width);
}

void TokenArray::copy(int64_t start, int64_t n, int64_t* out) const {
  const unsigned char* p = data_ + start * width_;
  switch (width_) {
    case 1:
      for (int64_t i = 0; i < n; ++i) out[i] = p[i];
      break;
    case 2:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, p + 2 * i, 2);
        out[i] = v;
      }
      break;
    default:
      for (int64_t i = 0; i < n; ++i) {
        uint32_t v;
        std::memcpy(&v, p + 4 * i, 4);
        out[i] = v;
      }
  }
}

TokenArray TokenArray::slice(int64_t start, int64_t n) const {
  EMBER_CHECK(start >= 0 && n >= 0 && start + n <= size_, "tokens: slice [{}, {}) is outside the {} ids", start,
              start + n, size_);
  TokenArray out = *this;
  out.data_ = data_ + start * width_;
  out.size_ = n;
  return out;
}

std::vector<int32_t> TokenArray::to_vector() const {
  std::vector<int32_t> out(static_cast<size_t>(size_));
  for (int64_t i = 0; i < size_; ++i) out[static_cast<size_t>(i)] = static_cast<int32_t>((*this)[i]);
  return out;
}

}  // namespace ember
