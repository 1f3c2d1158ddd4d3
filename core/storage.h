// Storage: one 64-byte aligned float buffer, shared by a tensor and its views.
// Buffers come from a size-keyed cache, so a training step that allocates the
// same activation sizes every step stops calling malloc after the first step.
#pragma once

#include <cstdint>
#include <memory>

namespace ember {

class Storage {
 public:
  explicit Storage(int64_t size);  // uninitialised floats
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  float* data() const { return data_; }
  int64_t size() const { return size_; }

 private:
  float* data_;
  int64_t size_;
};

// Statistics of the buffer cache, for tests and benchmarks.
struct StorageStats {
  int64_t system_allocations = 0;  // buffers obtained from the system allocator
  int64_t cache_hits = 0;          // buffers reused from the cache
  int64_t cached_bytes = 0;        // bytes currently parked in the cache
  int64_t live_bytes = 0;          // bytes held by live Storage objects
  int64_t peak_live_bytes = 0;     // the most live_bytes has been
};
StorageStats storage_stats();
void release_cached_storage();  // return every cached buffer to the system

}  // namespace ember
