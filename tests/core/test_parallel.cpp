// What the autograd engine runs on: the storage cache in a steady-state loop,
// and parallel_for's chunking, back-to-back jobs, pool resizing, work sharing
// of nested calls and the errors of shared chunks.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "core/parallel.h"
#include "tests/core/test_helpers.h"

using namespace ember;

TEST_CASE("storage: a steady-state loop reuses cached buffers instead of allocating") {
  Generator gen(5);
  Tensor w = randn({16, 32}, &gen), b = randn({32}, &gen);
  w.requires_grad_();
  b.requires_grad_();
  const Tensor x = randn({8, 16, 1}, &gen);
  auto step = [&] {
    const Tensor h = tanh(sum(x * w, {1}) + b);  // [8, 16, 1] * [16, 32] -> [8, 16, 32] -> [8, 32]
    sum(h * h).backward();
    w.set_grad(Tensor());
    b.set_grad(Tensor());
  };
  const StorageStats before = storage_stats();
  step();
  const StorageStats warm = storage_stats();
  step();
  const StorageStats after = storage_stats();
  const int64_t first = (warm.system_allocations - before.system_allocations) + (warm.cache_hits - before.cache_hits);
  const int64_t second = (after.system_allocations - warm.system_allocations) + (after.cache_hits - warm.cache_hits);
  CHECK(first >= 10);      // the step makes about fifteen buffers (activations and gradients)
  CHECK(second == first);  // identical steps ask for identical buffers
#ifdef EMBER_NO_STORAGE_CACHE
  // Sanitizer builds turn the cache off so use-after-free is caught: every buffer is the system's.
  CHECK(after.cache_hits == before.cache_hits);
#else
  CHECK(after.system_allocations == warm.system_allocations);  // the second step allocated nothing new
#endif
}

TEST_CASE("parallel_for: covers [0 n) exactly once with disjoint chunks of at least grain items") {
  const int saved_threads = num_threads();
  for (int threads : {1, 3, 8}) {
    set_num_threads(threads);
    CHECK(num_threads() == threads);
    for (int64_t n : {0, 1, 5, 8, 64, 1000, 1500, 100003}) {
      for (int64_t grain : {1, 7, 1000}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::vector<std::pair<int64_t, int64_t>> chunks;
        std::mutex mutex;
        parallel_for(n, grain, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)]++;
          std::lock_guard<std::mutex> lock(mutex);
          chunks.emplace_back(begin, end);
        });
        INFO("threads ", threads, ", n ", n, ", grain ", grain);
        int64_t wrong = 0;
        for (const auto& h : hits) wrong += h.load() != 1;
        CHECK(wrong == 0);
        std::sort(chunks.begin(), chunks.end());
        CHECK(static_cast<int>(chunks.size()) <= threads);
        int64_t next = 0;
        for (const auto& [begin, end] : chunks) {
          CHECK(begin == next);  // disjoint and without gaps
          CHECK(end > begin);
          if (chunks.size() > 1) CHECK(end - begin >= grain);
          next = end;
        }
        CHECK(next == n);
        if (threads > 1 && n >= 2 * grain) CHECK(chunks.size() > 1);  // the work really was split
      }
    }
  }
  set_num_threads(saved_threads);
}

TEST_CASE("parallel_for: back-to-back calls of different widths never replay or overlap chunks") {
  // Alternating 2-chunk and 8-chunk calls on 8 threads: workers that sit out one
  // call must not pick up the next call's chunks twice or run a stale job.
  const int saved_threads = num_threads();
  set_num_threads(8);
  int64_t wrong = 0;
  for (int round = 0; round < 2000; ++round) {
    const int64_t n = round % 2 ? 16 : 2;
    std::array<std::atomic<int>, 16> hits{};
    parallel_for(n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)]++;
    });
    for (int64_t i = 0; i < 16; ++i) wrong += hits[static_cast<size_t>(i)].load() != (i < n ? 1 : 0);
  }
  CHECK(wrong == 0);
  set_num_threads(saved_threads);
}

TEST_CASE("parallel_for: resizing the pool does not rerun the last job") {
  // The callable lives until the end of the test, so a stale replay would show
  // up as extra hits rather than as a use-after-scope.
  const int saved_threads = num_threads();
  set_num_threads(4);
  std::atomic<int64_t> hits{0};
  auto count = [&](int64_t begin, int64_t end) { hits += end - begin; };
  parallel_for(400, 1, count);
  CHECK(hits.load() == 400);
  set_num_threads(3);
  parallel_for(1, 1, count);  // runs inline; new workers have had time to wake
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(hits.load() == 401);
  set_num_threads(saved_threads);
}

TEST_CASE("parallel_for: a nested call is shared with a thread that finished its part, every item once") {
  // Chunk 0 of the outer call is empty; chunk 1 makes nested calls, each item
  // a short sleep (which leaves a core to the other thread even on a busy
  // machine), until the idle thread has taken part of one (work sharing).
  // An idle thread sleeps once it has seen no nested call for a while, so
  // the outer call is repeated (each wakes it again), up to about 2 seconds.
  const int saved_threads = num_threads();
  set_num_threads(2);
  const int64_t before = detail::shared_chunks();
  int64_t wrong = 0;
  for (int outer = 0; outer < 100 && detail::shared_chunks() == before; ++outer)
    parallel_for(2, 1, [&](int64_t begin, int64_t) {
      if (begin == 0) return;
      for (int call = 0; call < 20 && detail::shared_chunks() == before; ++call) {
        std::array<std::atomic<int>, 8> hits{};
        parallel_for(8, 1, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
          std::this_thread::sleep_for(std::chrono::microseconds(100));
        });
        for (const auto& h : hits) wrong += h.load() != 1;
      }
    });
  CHECK(wrong == 0);
  CHECK(detail::shared_chunks() > before);
  // Without sharing a nested call runs whole on its own thread.
  detail::set_work_sharing(false);
  const int64_t off_before = detail::shared_chunks();
  parallel_for(2, 1, [&](int64_t begin, int64_t) {
    if (begin == 0) return;
    for (int i = 0; i < 20; ++i)
      parallel_for(8, 1, [&](int64_t b, int64_t e) {
        CHECK((b == 0 && e == 8));
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      });
  });
  CHECK(detail::shared_chunks() == off_before);
  detail::set_work_sharing(true);
  set_num_threads(saved_threads);
}

TEST_CASE("parallel_for: an exception in a shared chunk reaches the outermost caller") {
  const int saved_threads = num_threads();
  set_num_threads(2);
  // As above, calls repeat until one was shared; then one throws from item 3 of 8.
  auto run = [&] {
    const int64_t before = detail::shared_chunks();
    for (int outer = 0; outer < 100; ++outer)
      parallel_for(2, 1, [&](int64_t begin, int64_t) {
        if (begin == 0) return;
        for (int call = 0; call < 20; ++call) {
          const bool last = detail::shared_chunks() != before || (outer == 99 && call == 19);
          parallel_for(8, 1, [&](int64_t b, int64_t e) {
            std::this_thread::sleep_for(std::chrono::microseconds(100));
            if (last && b <= 3 && 3 < e) throw Error("chunk with item 3 failed");
          });
        }
      });
  };
  CHECK_THROWS_WITH_AS(run(), "chunk with item 3 failed", Error);
  // The pool is still usable afterwards.
  std::atomic<int64_t> sum{0};
  parallel_for(100, 1, [&](int64_t b, int64_t e) { sum += e - b; });
  CHECK(sum.load() == 100);
  set_num_threads(saved_threads);
}
