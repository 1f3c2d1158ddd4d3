// The machine's ceilings for `make bench`: OpenBLAS sgemm GFLOP/s on large
// squares (split over ember's pool, one OpenBLAS call per thread), and a plain FMA loop's GFLOP/s on all
// cores (the arithmetic peak no kernel can beat), and one core's FMA rate per
// second of its CPU time. Prints one JSON line, so run_bench.py can say what
// share of either a training step reaches.
#include <fmt/format.h>

#include "core/ops/blas.h"
#include "core/parallel.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <vector>

using namespace ember;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Best GFLOP/s of C = A B on n x n matrices over a few repetitions: the best,
// not the median, because this is a ceiling and interference only lowers it.
double sgemm_gflops(int64_t n, int reps) {
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n, 0.0f);
  detail::sgemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n,
                detail::GemmKernel::OpenBLAS);  // warm caches, pool
  double best = 0.0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    detail::sgemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n,
                  detail::GemmKernel::OpenBLAS);
    best = std::max(best, 2.0 * n * n * n / seconds_since(t0) / 1e9);
  }
  return best;
}

// One thread's FMA chains: kChains independent accumulators hide the FMA
// latency (4 cycles on Zen and Skylake, 2 FMA ports: 8 chains in flight keep
// both ports busy). Each iteration is kChains x 8 lanes x 2 flops. Returns a
// value that depends on every chain, so the compiler cannot drop the loop.
constexpr int kChains = 8;
constexpr int64_t kIters = 20'000'000;

#if defined(__AVX2__) && defined(__FMA__)
constexpr int kLanes = 8;
float fma_chains(int64_t iters, float seed) {
  const __m256 mul = _mm256_set1_ps(0.999999f), add = _mm256_set1_ps(1e-7f);
  __m256 acc[kChains];
  for (int k = 0; k < kChains; ++k) acc[k] = _mm256_set1_ps(seed + static_cast<float>(k));
  for (int64_t i = 0; i < iters; ++i)
    for (int k = 0; k < kChains; ++k) acc[k] = _mm256_fmadd_ps(acc[k], mul, add);
  __m256 s = acc[0];
  for (int k = 1; k < kChains; ++k) s = _mm256_add_ps(s, acc[k]);
  alignas(32) float out[kLanes];
  _mm256_store_ps(out, s);
  float total = 0.0f;
  for (float v : out) total += v;
  return total;
}
#else
constexpr int kLanes = 1;  // no AVX2/FMA: scalar chains, a lower bound of the peak
float fma_chains(int64_t iters, float seed) {
  float acc[kChains];
  for (int k = 0; k < kChains; ++k) acc[k] = seed + static_cast<float>(k);
  for (int64_t i = 0; i < iters; ++i)
    for (int k = 0; k < kChains; ++k) acc[k] = acc[k] * 0.999999f + 1e-7f;
  float total = 0.0f;
  for (float v : acc) total += v;
  return total;
}
#endif

// CPU time of the calling thread, in seconds.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Best GFLOP/s of one thread's chains per second of its own CPU time: the
// core's rate while it runs, which other processes on the machine cannot
// lower (they only take turns), for run_bench's per-CPU-second shares.
double fma_gflops_per_cpu_second(int reps) {
  float sink = 0.0f;
  double best = 0.0;
  for (int r = 0; r < reps; ++r) {
    const double t0 = thread_cpu_seconds();
    sink += fma_chains(kIters, static_cast<float>(r));
    best = std::max(best, 2.0 * kChains * kLanes * kIters / (thread_cpu_seconds() - t0) / 1e9);
  }
  volatile float keep = sink;
  (void)keep;
  return best;
}

// Best GFLOP/s of `threads` threads each running the chains at once.
double fma_gflops(int threads, int reps) {
  std::vector<float> sink(threads, 0.0f);
  auto run = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) sink[t] = fma_chains(kIters, static_cast<float>(t));
  };
  double best = 0.0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    parallel_for(threads, 1, run);
    best = std::max(best, 2.0 * kChains * kLanes * kIters * threads / seconds_since(t0) / 1e9);
  }
  volatile float keep = sink[0];  // the results are used: the loops stay
  (void)keep;
  return best;
}

}  // namespace

int main() {
  const int threads = num_threads();
  constexpr int64_t kN = 1024;
  const double gemm_all = sgemm_gflops(kN, 10);
  const double fma_all = fma_gflops(threads, 8);
  set_num_threads(1);
  const double gemm_one = sgemm_gflops(kN, 10);
  const double fma_one = fma_gflops(1, 8);
  const double fma_cpu = fma_gflops_per_cpu_second(4);
  set_num_threads(threads);
  std::puts(fmt::format(R"({{"threads": {}, "sgemm_n": {}, "sgemm_gflops": {:.1f}, "sgemm_1t_gflops": {:.1f}, )"
                        R"("fma_gflops": {:.1f}, "fma_1t_gflops": {:.1f}, "fma_1t_cpu_gflops": {:.1f}, )"
                        R"("fma_simd_lanes": {}}})",
                        threads, kN, gemm_all, gemm_one, fma_all, fma_one, fma_cpu, kLanes)
                .c_str());
  return 0;
}
