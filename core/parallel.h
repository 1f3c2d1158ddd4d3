// One thread pool for all of ember. Ops split their work with parallel_for;
// OpenBLAS itself is kept on one thread, so the two never compete for cores
// (two pools of 2 threads on 2 cores run about twice as slow).
#pragma once

#include <cstdint>
#include <type_traits>

namespace ember {

// Number of threads ops may use (the caller plus workers). Defaults to the
// EMBER_NUM_THREADS environment variable, else the machine's core count;
// debug builds (EMBER_DEBUG) default to 1 so a debugger steps one thread.
int num_threads();
// Error for n outside [1, kMaxThreads], or when the system refuses a thread
// (the pool is then left with the calling thread alone).
void set_num_threads(int n);
// More threads than cores only slows ember down; far beyond it is a typo.
inline constexpr int kMaxThreads = 1024;

namespace detail {
using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end);
void parallel_run(int64_t n, int64_t grain, RangeFn fn, void* ctx);
// Work sharing (below) on or off, for benchmarks that compare the two; on by default.
void set_work_sharing(bool on);
// Chunks of nested calls run so far by a thread other than the caller's.
int64_t shared_chunks();
// True on a thread running a chunk of a parallel_for (where a nested call may be shared).
bool in_parallel_chunk();
}  // namespace detail

// Calls f(begin, end) on disjoint chunks covering [0, n), one per thread,
// never smaller than `grain` items. Runs inline when n <= grain or one thread.
// An exception thrown by f in any chunk reaches the caller (the lowest
// chunk's, after every chunk has finished).
//
// A call made from inside a chunk (nested) runs inline on its thread, unless
// another thread of the pool has finished its own chunk and waits for the
// rest: then the nested call is cut into a few chunks of at least `grain`
// items that both take as they come (work sharing). So a thread that draws
// the longer part, or runs on a slower or preempted core, is helped, and a
// training step whose slices are uneven still ends together. Which thread
// runs a chunk varies from run to run; f must therefore compute the same
// values however [0, n) is cut into chunks (every op does: chunks write
// disjoint outputs, and sums run in an order fixed by the data, not by the
// chunks), and results stay bit-identical for a given thread count.
template <typename F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  using Fn = std::remove_reference_t<F>;  // F is a reference when f is a named (maybe const) callable
  auto call = [](void* ctx, int64_t b, int64_t e) { (*static_cast<Fn*>(ctx))(b, e); };
  detail::parallel_run(n, grain, call, const_cast<void*>(static_cast<const void*>(&f)));
}

}  // namespace ember
