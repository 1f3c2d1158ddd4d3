// The thread pool behind parallel_for. Workers spin briefly on a generation
// counter before sleeping, because ops arrive every few microseconds during a
// training step and a condition-variable wake-up costs tens of them.
#include "core/parallel.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/ops/blas.h"

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
    for (int i = 1; i < threads; ++i) {
      try {
        workers_.emplace_back([this, i, current] { work(i, current); });
      } catch (const std::system_error&) {
        stop();  // back to the calling thread alone, a usable pool
        stopping_ = false;
        fail("threads: the system refused to start thread {} of {} (a limit on threads or memory); ask for fewer "
             "with --threads or EMBER_NUM_THREADS",
             i + 1, threads);
      }
    }
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
    std::exception_ptr error;
    try {
      fn(ctx, 0, n / parts);  // the caller takes the first chunk
    } catch (...) {
      error = std::current_exception();
    }
    // Spin first (chunks are usually balanced, so the others finish soon), then
    // yield. Even when the caller's chunk threw, the workers still use ctx: wait.
    for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin)
      if (spin > 4096) std::this_thread::yield();
    if (!error) std::swap(error, worker_error_);
    worker_error_ = nullptr;
    worker_error_index_ = kMaxParts;
    busy_ = false;
    if (error) std::rethrow_exception(error);  // the first chunk's error, as a serial loop would report
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
        try {
          fn_(ctx_, n_ * index / parts, n_ * (index + 1) / parts);
        } catch (...) {  // handed to the caller: an exception leaving a thread would end the process
          std::lock_guard<std::mutex> lock(error_mutex_);
          if (!worker_error_ || index < worker_error_index_) worker_error_ = std::current_exception();
          worker_error_index_ = std::min(worker_error_index_, index);
        }
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
  std::mutex error_mutex_;
  std::exception_ptr worker_error_;  // from the lowest-numbered chunk that threw
  int worker_error_index_ = kMaxParts;
  detail::RangeFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
};

int default_threads() {
#ifdef EMBER_DEBUG
  return 1;
#else
  if (const char* env = std::getenv("EMBER_NUM_THREADS")) {
    const std::string v = env;
    const bool digits = !v.empty() && v.size() <= 6 && v.find_first_not_of("0123456789") == std::string::npos;
    const int n = digits ? std::stoi(v) : 0;
    EMBER_CHECK(n >= 1 && n <= kMaxThreads, "EMBER_NUM_THREADS must be an integer in [1, {}], got '{}'", kMaxThreads,
                v.substr(0, 40));
    return n;
  }
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, static_cast<unsigned>(kMaxThreads)));
#endif
}

Pool& pool() {
  static Pool* p = [] {
    // EMBER_GEMM is read here, on the first thread, before any worker exists:
    // a bad value must throw to the caller, not inside a worker's matmul.
    detail::gemm_kernel();
    openblas_set_num_threads(1);  // ember splits work itself; see parallel.h
    return new Pool(default_threads());
  }();  // never destroyed: worker threads must not be joined during static teardown
  return *p;
}

}  // namespace

int num_threads() { return pool().size(); }
void set_num_threads(int n) {
  EMBER_CHECK(n >= 1 && n <= kMaxThreads, "threads: the thread count must be in [1, {}], got {}", kMaxThreads, n);
  pool().resize(n);
}

namespace detail {
void parallel_run(int64_t n, int64_t grain, RangeFn fn, void* ctx) {
  if (n <= 0) return;
  pool().run(n, std::max<int64_t>(grain, 1), fn, ctx);
}
}  // namespace detail

}  // namespace ember
