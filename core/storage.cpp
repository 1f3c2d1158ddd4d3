// The buffer cache behind Storage. Freed buffers are parked by exact byte
// size and handed out again for the next request of that size. Under
// AddressSanitizer (EMBER_NO_STORAGE_CACHE) the cache is off so that
// use-after-free is still caught.
#include "core/storage.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace ember {
namespace {

constexpr size_t kAlign = 64;
// Past this many parked bytes, freed buffers go straight back to the system,
// so a run whose shapes keep changing (sampling a growing context) stays bounded.
constexpr int64_t kMaxCachedBytes = int64_t{1} << 30;

struct BufferCache {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free_by_size;
  StorageStats stats;
};

BufferCache& cache() {
  static BufferCache* c = new BufferCache();  // never destroyed: storages may die during static teardown
  return *c;
}

// "1.5 GB" for error messages.
std::string byte_size(size_t bytes) {
  const char* units[] = {"bytes", "KB", "MB", "GB", "TB", "PB", "EB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  for (; v >= 1000.0 && u < 6; ++u) v /= 1000.0;
  return u == 0 ? fmt::format("{} bytes", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

size_t padded_bytes(int64_t size) {
  const size_t bytes = static_cast<size_t>(size) * sizeof(float);
  return (bytes + kAlign - 1) / kAlign * kAlign + kAlign * (bytes == 0);
}

}  // namespace

Storage::Storage(int64_t size) : size_(size) {
  EMBER_CHECK(size >= 0, "storage: negative size {}", size);
  // Beyond this the byte count itself would overflow; no machine has that much memory.
  if (size > (int64_t{1} << 60))
    throw OutOfMemory(fmt::format("a tensor of {} floats is larger than any memory", size));
  const size_t bytes = padded_bytes(size);
  BufferCache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    c.stats.live_bytes += static_cast<int64_t>(bytes);
    c.stats.peak_live_bytes = std::max(c.stats.peak_live_bytes, c.stats.live_bytes);
#ifndef EMBER_NO_STORAGE_CACHE
    auto it = c.free_by_size.find(bytes);
    if (it != c.free_by_size.end() && !it->second.empty()) {
      data_ = static_cast<float*>(it->second.back());
      it->second.pop_back();
      c.stats.cache_hits++;
      c.stats.cached_bytes -= static_cast<int64_t>(bytes);
      return;
    }
#endif
    c.stats.system_allocations++;  // counted with the cache off too, so the stats stay true
  }
  data_ = static_cast<float*>(std::aligned_alloc(kAlign, bytes));
  if (!data_) {
    {
      std::lock_guard<std::mutex> lock(c.mutex);
      c.stats.live_bytes -= static_cast<int64_t>(bytes);
    }
    throw OutOfMemory(fmt::format("a tensor of {} floats ({}) could not be allocated", size, byte_size(bytes)));
  }
}

Storage::~Storage() {
  BufferCache& c = cache();
  const size_t bytes = padded_bytes(size_);
  std::lock_guard<std::mutex> lock(c.mutex);
  c.stats.live_bytes -= static_cast<int64_t>(bytes);
#ifdef EMBER_NO_STORAGE_CACHE
  std::free(data_);
#else
  if (c.stats.cached_bytes + static_cast<int64_t>(bytes) > kMaxCachedBytes) {
    std::free(data_);
    return;
  }
  c.free_by_size[bytes].push_back(data_);
  c.stats.cached_bytes += static_cast<int64_t>(bytes);
#endif
}

StorageStats storage_stats() {
  std::lock_guard<std::mutex> lock(cache().mutex);
  return cache().stats;
}

void release_cached_storage() {
  BufferCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& [bytes, buffers] : c.free_by_size)
    for (void* p : buffers) std::free(p);
  c.free_by_size.clear();
  c.stats.cached_bytes = 0;
}

}  // namespace ember
