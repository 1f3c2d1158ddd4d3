// The thread pool behind parallel_for. A call's chunks go to whichever thread
// is free first, and a thread that has run out of chunks helps the others
// with the parallel_for calls they make inside theirs (work sharing, see
// parallel.h). Idle threads spin briefly before sleeping, because ops arrive
// every few microseconds during a training step and a wake-up costs tens of
// them; past that they sleep, so that on a machine shared with other
// processes a waiting thread does not take CPU time from a working one.
#include "core/parallel.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/ops/blas.h"

namespace ember {
namespace {

// A nested call shared with helpers is cut into this many chunks per pool
// thread (at most): enough that a helper arriving late still finds work, few
// enough that each chunk stays large (sgemm repacks an operand per chunk).
constexpr int64_t kShareChunksPerThread = 2;
// A nested call with fewer grains than this runs inline: its chunks would be
// too short (a few microseconds) to repay a helper's cold caches.
constexpr int64_t kMinShareChunks = 4;
// How long an idle thread spins before it sleeps: a worker between two
// calls (a training step makes one every few microseconds), and a thread
// that ran out of chunks, waiting for side jobs (nested calls come every
// 0.1-1 ms in a step).
constexpr int64_t kIdleSpinMicros = 100;
constexpr int64_t kHelpSpinMicros = 2000;

using Clock = std::chrono::steady_clock;

// The index of this thread in the pool job whose chunk it is running, or -1
// (outside any job, or inside a shared chunk: calls from there run inline).
thread_local int t_slot = -1;

inline void pause_cpu() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Errors of a job's chunks: the lowest chunk's is the one reported, as a
// serial loop would.
struct FirstError {
  std::mutex mutex;
  std::exception_ptr error;
  int64_t chunk = 0;

  void record(int64_t c) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!error || c < chunk) {
      error = std::current_exception();
      chunk = c;
    }
  }
};

// A nested parallel_for offered to helpers: chunk c is
// [n c / chunks, n (c + 1) / chunks), taken by whoever claims it first.
struct SideJob {
  detail::RangeFn fn = nullptr;
  void* ctx = nullptr;
  int64_t n = 0, chunks = 0;
  std::atomic<int64_t> next{0};
  FirstError error;

  // Claims and runs chunks until none is left; returns how many it ran.
  int64_t run_chunks() {
    int64_t ran = 0;
    for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks; ++ran) {
      try {
        fn(ctx, n * c / chunks, n * (c + 1) / chunks);
      } catch (...) {
        error.record(c);
      }
    }
    return ran;
  }
};

// Where thread i offers its side job. `users` counts helpers looking at the
// job: the owner unpublishes, then waits for it to reach 0 before its job
// (on its stack) goes away. Padded so that two slots never share a line.
struct alignas(64) Slot {
  std::atomic<SideJob*> job{nullptr};
  std::atomic<int> users{0};
  std::atomic<bool> owner_waits{false};  // the owner sleeps until users is 0
};

// The claim word of the running job: generation, parts and the next chunk
// in one atomic, so that a thread still holding an old job's generation can
// never claim a chunk of the next one.
constexpr uint64_t claim_word(uint32_t gen, uint64_t parts, uint64_t next) {
  return uint64_t{gen} << 32 | parts << 16 | next;
}

class Pool {
 public:
  explicit Pool(int threads) : slots_(new Slot[kMaxThreads]) { resize(threads); }
  ~Pool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int threads) {
    stop();
    stopping_ = false;
    const uint32_t current = generation_.load();
    for (int i = 1; i < threads; ++i) {
      try {
        workers_.emplace_back([this, i, current] { work(i, current); });
      } catch (const std::system_error&) {
        stop();  // back to the calling thread alone, a usable pool
        stopping_ = false;
        fail(
            "threads: the system refused to start thread {} of {} (a limit on threads or memory); ask for fewer "
            "with --threads or EMBER_NUM_THREADS",
            i + 1, threads);
      }
    }
  }

  void run(int64_t n, int64_t grain, detail::RangeFn fn, void* ctx) {
    if (t_slot >= 0) {  // called from inside a chunk of a running job
      share(n, grain, fn, ctx);
      return;
    }
    // floor(n / grain) parts keeps every chunk at least `grain` items long.
    const int64_t parts = std::min<int64_t>(size(), n / grain);
    if (parts <= 1 || busy_.exchange(true)) {  // busy: another thread's job is running
      fn(ctx, 0, n);
      return;
    }
    // No chunk of the previous job is left to claim, so no thread reads these
    // fields until the new claim word (release) says whose they are.
    const uint32_t gen = generation_.load() + 1;
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    active_.store(parts);
    claim_.store(claim_word(gen, static_cast<uint64_t>(parts), 0));
    generation_.store(gen);
    signal();
    take_part(gen, 0);
    // Every chunk has finished: no thread touches ctx any more.
    std::exception_ptr error = std::move(error_.error);
    error_.error = nullptr;
    busy_ = false;
    if (error) std::rethrow_exception(error);
  }

  void set_sharing(bool on) { sharing_ = on; }
  int64_t shared_chunks() const { return shared_chunks_.load(); }

 private:
  // Wakes the threads in sleep_while (cheap when none sleeps).
  void signal() {
    events_.fetch_add(1);
    if (sleepers_.load() != 0) events_.notify_all();
  }

  // Sleeps until a signal() while idle() holds; awake (when given) counts
  // the threads that are not asleep.
  template <typename Idle>
  void sleep_while(Idle idle, std::atomic<int>* awake = nullptr) {
    const uint32_t seen = events_.load();
    sleepers_.fetch_add(1);
    if (awake) awake->fetch_sub(1);
    if (idle()) events_.wait(seen);
    if (awake) awake->fetch_add(1);
    sleepers_.fetch_sub(1);
  }

  // Spins for about spin_us microseconds, then sleeps, while idle() holds.
  template <typename Idle>
  void wait_while(Idle idle, int64_t spin_us) {
    const Clock::time_point until = Clock::now() + std::chrono::microseconds(spin_us);
    for (int spin = 1; idle(); ++spin) {
      pause_cpu();
      if (spin % 64 == 0 && Clock::now() >= until) sleep_while(idle);
    }
  }

  // Thread `me` claims chunks of job `gen` until none is left, then helps the
  // threads still at theirs (side jobs) until every chunk has finished.
  void take_part(uint32_t gen, int me) {
    uint64_t word = claim_.load();
    while (word >> 32 == gen && (word & 0xFFFF) < ((word >> 16) & 0xFFFF)) {
      if (!claim_.compare_exchange_weak(word, word + 1)) continue;
      // A claimed chunk keeps the job running, so fn_, ctx_, n_ are still its.
      const int64_t c = static_cast<int64_t>(word & 0xFFFF), parts = static_cast<int64_t>((word >> 16) & 0xFFFF);
      t_slot = me;
      try {
        fn_(ctx_, n_ * c / parts, n_ * (c + 1) / parts);
      } catch (...) {  // handed to the caller: an exception leaving a thread would end the process
        error_.record(c);
      }
      t_slot = -1;
      active_.fetch_sub(1);
      signal();
      word = claim_.load();
    }
    auto running = [&] { return generation_.load() == gen && active_.load() != 0; };
    // Side jobs are offered only while a helper is awake (helping_), and never
    // wake a sleeping one. A helper spins for a while after joining and after
    // each chunk it ran, then sleeps until the job ends: on a machine whose
    // cores are busy with other processes, a thread that spins takes CPU time
    // from the one that works, and a wake-up per nested call costs more than
    // it brings.
    helping_.fetch_add(1);
    Clock::time_point until = Clock::now() + std::chrono::microseconds(kHelpSpinMicros);
    for (int spin = 1; running(); ++spin) {
      if (help_once(me)) {
        until = Clock::now() + std::chrono::microseconds(kHelpSpinMicros);
        continue;
      }
      pause_cpu();
      if (spin % 64 == 0 && Clock::now() >= until) sleep_while(running, &helping_);
    }
    helping_.fetch_sub(1);
  }

  // A parallel_for from inside chunk t_slot: run inline, unless a thread has
  // finished its own chunks and waits for the job to end; then offer the call
  // to it in chunks. The values computed are the same either way (parallel.h
  // asks that of every f), only who computes them changes.
  void share(int64_t n, int64_t grain, detail::RangeFn fn, void* ctx) {
    const int64_t chunks = std::min<int64_t>(kShareChunksPerThread * size(), n / grain);
    if (chunks < kMinShareChunks || !sharing_.load(std::memory_order_relaxed) ||
        helping_.load(std::memory_order_relaxed) == 0) {
      fn(ctx, 0, n);
      return;
    }
    SideJob job;
    job.fn = fn;
    job.ctx = ctx;
    job.n = n;
    job.chunks = chunks;
    const int me = t_slot;
    Slot& slot = slots_[me];
    t_slot = -1;  // calls made by the chunks run inline
    slot.job.store(&job);
    job.run_chunks();
    slot.job.store(nullptr);  // seq_cst, paired with the helper's users++ then load (Dekker)
    for (int spin = 0; slot.users.load() != 0 && spin < 4096; ++spin) pause_cpu();
    if (slot.users.load() != 0) {  // a helper is still at a chunk (its core may be busy elsewhere)
      slot.owner_waits.store(true);
      for (int u; (u = slot.users.load()) != 0;) slot.users.wait(u);
      slot.owner_waits.store(false);
    }
    t_slot = me;
    if (job.error.error) std::rethrow_exception(job.error.error);
  }

  // One pass over the other threads' slots; true when it ran a chunk.
  bool help_once(int me) {
    for (int k = 1; k < size(); ++k) {
      Slot& slot = slots_[(me + k) % size()];
      if (slot.job.load(std::memory_order_relaxed) == nullptr) continue;
      slot.users.fetch_add(1);
      int64_t ran = 0;
      if (SideJob* job = slot.job.load()) ran = job->run_chunks();
      if (slot.users.fetch_sub(1) == 1 && slot.owner_waits.load()) slot.users.notify_all();
      if (ran > 0) {
        shared_chunks_.fetch_add(ran, std::memory_order_relaxed);
        return true;
      }
    }
    return false;
  }

  // Waits for a new generation (a new job, or stop), then joins the job if
  // it is still running; one that woke too late finds no chunk to claim.
  void work(int index, uint32_t seen) {
    while (true) {
      wait_while([&] { return generation_.load() == seen && !stopping_.load(); }, kIdleSpinMicros);
      if (stopping_) return;
      seen = generation_.load();
      take_part(seen, index);
    }
  }

  void stop() {
    stopping_ = true;
    generation_.fetch_add(1);
    signal();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  // The running job (one at a time: busy_).
  std::atomic<uint32_t> generation_{0};  // bumped for every job and for stop()
  std::atomic<uint64_t> claim_{0};       // claim_word(generation, parts, next chunk)
  std::atomic<int64_t> active_{0};       // its chunks not yet finished
  detail::RangeFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  FirstError error_;
  // Sleeping and waking.
  std::atomic<uint32_t> events_{0};
  std::atomic<int> sleepers_{0};
  // Work sharing.
  std::atomic<int> helping_{0};  // threads done with the job's chunks, looking for side jobs
  std::atomic<bool> sharing_{true};
  std::atomic<int64_t> shared_chunks_{0};
  std::unique_ptr<Slot[]> slots_;  // slots_[i]: the side job thread i offers
  std::atomic<bool> busy_{false};
  std::atomic<bool> stopping_{false};
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
void set_work_sharing(bool on) { pool().set_sharing(on); }
int64_t shared_chunks() { return pool().shared_chunks(); }
bool in_parallel_chunk() { return t_slot >= 0; }
}  // namespace detail

}  // namespace ember
