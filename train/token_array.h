// TokenArray: a read-only sequence of token ids, each stored in the smallest
// unsigned type that holds the vocabulary (1, 2 or 4 bytes, little-endian),
// either in memory or in a memory-mapped token file (train/token_cache.h).
// Like Tensor it is a cheap handle: copies and slices share the storage,
// which lives as long as any handle to it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ember {

// The bytes one id takes for a vocabulary of vocab_size ids: 1 up to 256 ids,
// 2 up to 65536 (every BPE vocabulary), else 4.
int token_width(int64_t vocab_size);
// "uint8", "uint16" or "uint32" (numpy's names), and back (Error otherwise).
std::string token_dtype_name(int width);
int token_width_from_name(const std::string& name);

class TokenArray {
 public:
  TokenArray() = default;
  // Adapter for ids held in memory (tests, small texts): the vector is kept
  // as it is, 4 bytes an id. Implicit, so a std::vector<int32_t> can be passed
  // wherever a TokenArray is taken. Error on a negative id.
  TokenArray(std::vector<int32_t> ids);  // NOLINT(google-explicit-constructor)
  // `count` ids of `width` bytes at `data`, which `owner` keeps alive.
  TokenArray(std::shared_ptr<const void> owner, const void* data, int64_t count, int width);
  // Maps `count` ids of `width` bytes from a file of exactly count * width
  // bytes (read-only; pages are read in as they are touched). Error naming the
  // path when it is missing or its size differs.
  static TokenArray map_file(const std::string& path, int64_t count, int width);

  int64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  int width() const { return width_; }

  // The id at position i (0 <= i < size(); not checked: the callers check windows).
  int64_t operator[](int64_t i) const {
    switch (width_) {
      case 1:
        return data_[i];
      case 2:
        return load<uint16_t>(i);
      default:
        return load<uint32_t>(i);
    }
  }
  // The n ids from `start`, widened into out[0..n): one branch per call, so
  // building a batch costs a copy loop per window.
  void copy(int64_t start, int64_t n, int64_t* out) const;
  // The ids [start, start + n) sharing this storage. Error when out of range.
  TokenArray slice(int64_t start, int64_t n) const;
  std::vector<int32_t> to_vector() const;

 private:
  template <typename T>
  int64_t load(int64_t i) const {
    T v;
    __builtin_memcpy(&v, data_ + i * static_cast<int64_t>(sizeof(T)), sizeof(T));  // any alignment
    return v;
  }

  std::shared_ptr<const void> owner_;
  const unsigned char* data_ = nullptr;
  int64_t size_ = 0;
  int width_ = 4;
};

}  // namespace ember
