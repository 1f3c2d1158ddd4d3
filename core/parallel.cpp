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
    // New workers count jobs from the current one: starting from 0 they would
    // take the last job, long finished and its context gone, for a new one.
    const uint64_t current = job_.load() >> kPartsBits;
    for (int i = 1; i < std::min(threads, kMaxParts); ++i)
      workers_.emplace_back([this, i, current] { work(i, current); });
  }

  void run(int64_t n, int64_t grain, detail::RangeFn fn, void* ctx) {
    // floor(n / grain) parts keeps every chunk at least `grain` items long.
    const int64_t parts = std::min<int64_t>(size(), n / grain);
    if (parts <= 1 || busy_.exchange(true)) {  // busy: a nested call runs inline
      fn(ctx, 0, n);
      return;
    }
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    pending_.store(parts - 1);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_.store((((job_.load() >> kPartsBits) + 1) << kPartsBits) | static_cast<uint64_t>(parts));
    }
    wake_.notify_all();
    fn(ctx, 0, n / parts);  // the caller takes the first chunk
    // Spin first (chunks are usually balanced, so the others finish soon), then yield.
    for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin)
      if (spin > 4096) std::this_thread::yield();
    busy_ = false;
  }

 private:
  // A job's number and width come from one load of job_: a worker that sat
  // out one job must not pair its number with the next job's width, or it
  // would run a chunk of the next job twice.
  void work(int index, uint64_t seen) {
    while (true) {
      uint64_t job = job_.load();
      for (int spin = 0; (job >> kPartsBits) == seen && spin < 20000; ++spin) job = job_.load();
      if ((job >> kPartsBits) == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return (job_.load() >> kPartsBits) != seen || stopping_; });
        job = job_.load();
      }
      if (stopping_) return;
      seen = job >> kPartsBits;
      const int64_t parts = static_cast<int64_t>(job & ((uint64_t{1} << kPartsBits) - 1));
      if (index < parts) {  // the caller waits for this chunk, so fn_, ctx_, n_ are this job's
        fn_(ctx_, n_ * index / parts, n_ * (index + 1) / parts);
        pending_.fetch_sub(1, std::memory_order_release);
      }
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      job_.store(((job_.load() >> kPartsBits) + 1) << kPartsBits);  // a new job of no parts
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  static constexpr int kPartsBits = 16;
  static constexpr int kMaxParts = (1 << kPartsBits) - 1;
  std::atomic<uint64_t> job_{0};  // job number << kPartsBits | number of parts
  std::atomic<int64_t> pending_{0};
  std::atomic<bool> busy_{false};
  std::atomic<bool> stopping_{false};
  detail::RangeFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
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
