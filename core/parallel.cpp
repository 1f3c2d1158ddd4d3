// The thread pool behind parallel_for. Workers spin briefly on a generation
// counter before sleeping, because ops arrive every few microseconds during a
// training step and a condition-variable wake-up costs tens of them.
#include "core/parallel.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace ember {
namespace {

class Pool {
 public:
  explicit Pool(int threads) { resize(threads); }
  ~Pool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int threads) {
    stop();
    stopping_ = false;
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
  }

  void run(int64_t n, int64_t grain, detail::RangeFn fn, void* ctx) {
    const int64_t parts = std::min<int64_t>(size(), (n + grain - 1) / grain);
    if (parts <= 1 || busy_.exchange(true)) {  // busy: a nested call runs inline
      fn(ctx, 0, n);
      return;
    }
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    parts_ = parts;
    pending_.store(parts - 1);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      generation_.fetch_add(1);
    }
    wake_.notify_all();
    fn(ctx, 0, n / parts);  // the caller takes the first chunk
    while (pending_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
    busy_ = false;
  }

 private:
  void work(int index) {
    uint64_t seen = 0;
    while (true) {
      uint64_t gen = generation_.load();
      for (int spin = 0; gen == seen && spin < 20000; ++spin) gen = generation_.load();
      if (gen == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load() != seen || stopping_; });
        gen = generation_.load();
      }
      if (stopping_) return;
      seen = gen;
      if (index < parts_) {
        fn_(ctx_, n_ * index / parts_, n_ * (index + 1) / parts_);
        pending_.fetch_sub(1, std::memory_order_release);
      }
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      generation_.fetch_add(1);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> pending_{0};
  std::atomic<bool> busy_{false};
  std::atomic<bool> stopping_{false};
  detail::RangeFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0, parts_ = 0;
};

int default_threads() {
#ifdef EMBER_DEBUG
  return 1;
#else
  if (const char* env = std::getenv("EMBER_NUM_THREADS")) return std::max(1, std::atoi(env));
  return std::max(1u, std::thread::hardware_concurrency());
#endif
}

Pool& pool() {
  static Pool* p = [] {
    openblas_set_num_threads(1);  // ember splits work itself; see parallel.h
    return new Pool(default_threads());
  }();  // never destroyed: worker threads must not be joined during static teardown
  return *p;
}

}  // namespace

int num_threads() { return pool().size(); }
void set_num_threads(int n) { pool().resize(std::max(1, n)); }

namespace detail {
void parallel_run(int64_t n, int64_t grain, RangeFn fn, void* ctx) {
  if (n <= 0) return;
  pool().run(n, std::max<int64_t>(grain, 1), fn, ctx);
}
}  // namespace detail

}  // namespace ember
