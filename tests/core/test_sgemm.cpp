// detail::sgemm's three kernels (naive, OpenBLAS, ember's AVX2 one where the
// CPU has it) against a double-precision triple loop: all four transpose
// combinations, edge sizes around ember's 6x16 tile and its K blocks, padded
// lda/ldb/ldc, alpha != 1, beta in {0, 1, 0.5}, and beta = 0 over NaN in C.
// Then how EMBER_GEMM, the build and the CPU pick the kernel.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/ops/blas.h"
#include "core/parallel.h"

using ember::detail::gemm_kernel_name;
using ember::detail::GemmKernel;

namespace {

struct Case {
  bool ta, tb;
  int64_t M, N, K;
  int64_t pad;  // added to each natural leading dimension
  float alpha, beta;
};

// The kernels this CPU can run.
std::vector<GemmKernel> kernels() {
  std::vector<GemmKernel> k = {GemmKernel::Naive, GemmKernel::OpenBLAS};
  if (ember::detail::cpu_has_avx2_fma()) k.push_back(GemmKernel::Ember);
  return k;
}

// Runs one case on `kernel` and returns the number of entries of C outside
// tolerance (including any write outside the M x N block, which must keep its value).
int64_t run_case(GemmKernel kernel, const Case& cs, uint32_t seed) {
  const auto [ta, tb, M, N, K, pad, alpha, beta] = cs;
  const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  const int64_t arows = ta ? K : M, brows = tb ? N : K;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  // +1 so that a zero-sized operand still has a valid pointer.
  std::vector<float> A(arows * lda + 1), B(brows * ldb + 1), C(M * ldc + 1);
  for (auto& x : A) x = dist(rng);
  for (auto& x : B) x = dist(rng);
  for (auto& x : C) x = dist(rng);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  if (beta == 0.0f)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = nan;
  const std::vector<float> C0 = C;

  ember::detail::sgemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc, kernel);

  int64_t bad = 0;
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double ref = 0.0, mag = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const double a = ta ? A[k * lda + i] : A[i * lda + k];
        const double b = tb ? B[j * ldb + k] : B[k * ldb + j];
        ref += a * b;
        mag += std::abs(a * b);
      }
      ref *= alpha;
      mag *= std::abs(alpha);
      if (beta != 0.0f) {
        ref += static_cast<double>(beta) * C0[i * ldc + j];
        mag += std::abs(static_cast<double>(beta) * C0[i * ldc + j]);
      }
      // A float sum of K products, each rounded, in any order (blocked,
      // fused or not) errs by at most about K * 2^-24 * sum |a b|; for random
      // signs the error grows like sqrt(K) * 2^-24 * sum |a b| in practice.
      // 1e-5 * sqrt(K + 1) is ~170 times that typical bound, yet still far
      // below the error of a wrong index, a dropped K block or a missing
      // alpha/beta (all of order mag itself). The + 1 covers beta * C.
      const double tol = 1e-5 * std::sqrt(static_cast<double>(K + 1)) * mag + 1e-30;
      const float got = C[i * ldc + j];
      if (!std::isfinite(got) || std::abs(got - ref) > tol) ++bad;
    }
    for (int64_t j = N; j < ldc && i * ldc + j < static_cast<int64_t>(C.size()); ++j)
      if (C[i * ldc + j] != C0[i * ldc + j]) ++bad;  // padding between rows is untouched
  }
  return bad;
}

}  // namespace

TEST_CASE("sgemm: every kernel matches a double reference on edge sizes") {
  const int64_t sizes[] = {0, 1, 5, 6, 7, 15, 16, 17, 33, 65};
  for (GemmKernel kernel : kernels()) {
    uint32_t seed = 1;
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (int64_t M : sizes)
          for (int64_t N : sizes)
            for (int64_t K : {0, 1, 5, 7, 16, 17, 65}) {
              const float beta = (seed % 3 == 0) ? 0.0f : (seed % 3 == 1) ? 1.0f : 0.5f;
              const Case cs{ta, tb, M, N, K, static_cast<int64_t>(seed % 4), seed % 2 ? 1.0f : -0.75f, beta};
              INFO("kernel=" << gemm_kernel_name(kernel) << " ta=" << ta << " tb=" << tb << " M=" << M << " N=" << N
                             << " K=" << K << " pad=" << cs.pad << " alpha=" << cs.alpha << " beta=" << beta);
              CHECK(run_case(kernel, cs, seed) == 0);
              ++seed;
            }
  }
}

TEST_CASE("sgemm: every kernel matches a double reference across K and column blocks") {
  // K > 512 is split into blocks by ember's kernel (later blocks add onto the
  // first); a long K with a wide N also splits the columns so one packed B
  // block fits L2. The products above 2^18 multiply-adds are split over threads.
  struct Dims {
    int64_t M, N, K;
  };
  const Dims dims[] = {{130, 33, 130}, {7, 300, 513}, {13, 17, 1100}, {65, 200, 777}, {64, 32, 64}, {12, 1040, 600}};
  for (GemmKernel kernel : kernels()) {
    uint32_t seed = 1000;
    for (const Dims& d : dims)
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (float beta : {0.0f, 1.0f, 0.5f}) {
            const Case cs{ta, tb, d.M, d.N, d.K, static_cast<int64_t>(seed % 3) * 5, 0.5f, beta};
            INFO("kernel=" << gemm_kernel_name(kernel) << " ta=" << ta << " tb=" << tb << " M=" << d.M << " N=" << d.N
                           << " K=" << d.K << " pad=" << cs.pad << " beta=" << beta);
            CHECK(run_case(kernel, cs, seed) == 0);
            ++seed;
          }
  }
}

TEST_CASE("sgemm: with K = 0 every kernel scales or clears C") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (GemmKernel kernel : kernels()) {
    INFO("kernel=" << gemm_kernel_name(kernel));
    std::vector<float> C = {1.0f, 2.0f, 3.0f, nan, 5.0f, 6.0f};  // two rows of 2, pitch 3
    ember::detail::sgemm(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.5f, C.data(), 3, kernel);
    CHECK(C[0] == 0.5f);
    CHECK(C[1] == 1.0f);
    CHECK(C[2] == 3.0f);  // padding
    ember::detail::sgemm(true, true, 2, 2, 0, 1.0f, nullptr, 2, nullptr, 1, 0.0f, C.data(), 3, kernel);
    CHECK(C[0] == 0.0f);
    CHECK(C[1] == 0.0f);
    CHECK(C[3] == 0.0f);  // NaN overwritten
    CHECK(C[4] == 0.0f);
    CHECK(C[5] == 6.0f);
  }
}

TEST_CASE("sgemm: the naive kernel computes a 2x2 product by hand") {
  // [1 2; 3 4] [5 6; 7 8] = [19 22; 43 50]; then alpha = 2, beta = 0.5 on the
  // transposes: 2 * A^T B^T + 0.5 C, A^T B^T = [1 3; 2 4][5 7; 6 8] = [23 31; 34 46].
  const std::vector<float> A = {1, 2, 3, 4}, B = {5, 6, 7, 8};
  std::vector<float> C(4, std::numeric_limits<float>::quiet_NaN());
  ember::detail::sgemm_naive(false, false, 2, 2, 2, 1.0f, A.data(), 2, B.data(), 2, 0.0f, C.data(), 2);
  CHECK(C == std::vector<float>{19, 22, 43, 50});
  ember::detail::sgemm_naive(true, true, 2, 2, 2, 2.0f, A.data(), 2, B.data(), 2, 0.5f, C.data(), 2);
  CHECK(C == std::vector<float>{2 * 23 + 9.5f, 2 * 31 + 11, 2 * 34 + 21.5f, 2 * 46 + 25});
}

TEST_CASE("detail::sgemm on products it splits over threads matches a double reference with every kernel") {
  // Large enough for sgemm to split C into parts of 6-row or 16-column panels
  // across two threads (M N K >= 2^18, and each part at least 2^20
  // multiply-adds, so M N K >= 2^21; the naive kernel runs on one thread),
  // which offsets A or B per part, so the transposed layouts' offsets are
  // exercised. Tolerance as in run_case:
  // 1e-5 sqrt(K) of sum |a b| <= K (|a|, |b| <= 1).
  struct Dims {
    int64_t M, N, K;
  };
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const int threads = ember::num_threads();
  ember::set_num_threads(std::max(threads, 2));
  for (const Dims d : {Dims{600, 70, 90}, Dims{70, 600, 90}})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (GemmKernel kernel : kernels()) {
          const int64_t M = d.M, N = d.N, K = d.K;
          INFO("M=" << M << " N=" << N << " ta=" << ta << " tb=" << tb << " kernel=" << gemm_kernel_name(kernel));
          std::vector<float> A(M * K), B(K * N), C(M * N, -1.0f);
          for (auto& x : A) x = dist(rng);
          for (auto& x : B) x = dist(rng);
          const int64_t lda = ta ? M : K, ldb = tb ? K : N;
          ember::detail::sgemm(ta, tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), N, kernel);
          double worst = 0.0;
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
              double ref = 0.0;
              for (int64_t k = 0; k < K; ++k)
                ref +=
                    static_cast<double>(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
              worst = std::max(worst, std::abs(C[i * N + j] - ref));
            }
          CHECK(worst <= 1e-5 * std::sqrt(static_cast<double>(K)) * static_cast<double>(K));
        }
  ember::set_num_threads(threads);
}

TEST_CASE("sgemm: ember's and the naive kernel give bit-identical entries however C is cut into blocks") {
  // parallel_for's work sharing cuts a product differently from run to run,
  // so training stays bit-for-bit repeatable only if every entry of C comes
  // out the same whichever block computes it: its K loop must depend on K
  // alone, never on the block's rows or columns. Blocks here cut at uneven
  // rows and columns (inside a 6x16 tile), with K past one K block (512).
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const int64_t M = 50, N = 70, K = 700;
  std::vector<GemmKernel> ks = {GemmKernel::Naive};
  if (ember::detail::cpu_has_avx2_fma()) ks.push_back(GemmKernel::Ember);
  for (GemmKernel kernel : ks)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (float beta : {0.0f, 1.0f}) {
          INFO("ta=" << ta << " tb=" << tb << " beta=" << beta << " kernel=" << gemm_kernel_name(kernel));
          const int64_t lda = ta ? M : K, ldb = tb ? K : N;
          std::vector<float> A(M * K), B(K * N), C0(M * N);
          for (auto& x : A) x = dist(rng);
          for (auto& x : B) x = dist(rng);
          for (auto& x : C0) x = dist(rng);
          std::vector<float> whole = C0, by_rows = C0, by_cols = C0;
          ember::detail::sgemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, beta, whole.data(), N, kernel);
          for (auto [m0, m1] : {std::pair<int64_t, int64_t>{0, 7}, {7, 8}, {8, 29}, {29, 50}})
            ember::detail::sgemm(ta, tb, m1 - m0, N, K, 0.5f, ta ? A.data() + m0 : A.data() + m0 * lda, lda, B.data(),
                                 ldb, beta, by_rows.data() + m0 * N, N, kernel);
          for (auto [n0, n1] : {std::pair<int64_t, int64_t>{0, 5}, {5, 21}, {21, 22}, {22, 70}})
            ember::detail::sgemm(ta, tb, M, n1 - n0, K, 0.5f, A.data(), lda, tb ? B.data() + n0 * ldb : B.data() + n0,
                                 ldb, beta, by_cols.data() + n0, N, kernel);
          CHECK(by_rows == whole);
          CHECK(by_cols == whole);
        }
}

TEST_CASE("sgemm: EMBER_GEMM, then the build's default, then the CPU pick the kernel") {
  using ember::detail::choose_gemm_kernel;
  CHECK(choose_gemm_kernel(nullptr, nullptr, true) == GemmKernel::Ember);  // no choice made: by CPU
  CHECK(choose_gemm_kernel(nullptr, nullptr, false) == GemmKernel::OpenBLAS);
  CHECK(choose_gemm_kernel("", "", true) == GemmKernel::Ember);  // empty counts as unset
  CHECK(choose_gemm_kernel(nullptr, "naive", true) == GemmKernel::Naive);
  CHECK(choose_gemm_kernel("openblas", "naive", true) == GemmKernel::OpenBLAS);  // the variable wins
  CHECK(choose_gemm_kernel("naive", nullptr, true) == GemmKernel::Naive);
  CHECK(choose_gemm_kernel("ember", "openblas", true) == GemmKernel::Ember);
  CHECK(choose_gemm_kernel("openblas", "ember", false) == GemmKernel::OpenBLAS);
}

TEST_CASE("sgemm: a bad EMBER_GEMM, or ember on a CPU without AVX2, is a one-line error") {
  using ember::detail::choose_gemm_kernel;
  CHECK_THROWS_WITH_AS(choose_gemm_kernel("fast", nullptr, true),
                       "EMBER_GEMM=fast: unknown matmul kernel (expected naive, openblas or ember)", ember::Error);
  CHECK_THROWS_WITH_AS(choose_gemm_kernel("Naive", nullptr, true),
                       "EMBER_GEMM=Naive: unknown matmul kernel (expected naive, openblas or ember)", ember::Error);
  CHECK_THROWS_WITH_AS(choose_gemm_kernel("ember", nullptr, false),
                       "EMBER_GEMM=ember: ember's matmul kernel needs an x86-64 CPU with AVX2 and FMA, which this "
                       "one lacks (use openblas or naive)",
                       ember::Error);
  CHECK_THROWS_WITH_AS(choose_gemm_kernel(nullptr, "ember", false),
                       "make EMBER_GEMM=ember: ember's matmul kernel needs an x86-64 CPU with AVX2 and FMA, which "
                       "this one lacks (use openblas or naive)",
                       ember::Error);
}

TEST_CASE("sgemm: this process runs the kernel EMBER_GEMM names") {
  // `EMBER_GEMM=naive make test` must test the naive kernel everywhere, not
  // the default one: check the variable reached the choice.
  const char* env = std::getenv("EMBER_GEMM");
  const std::string chosen = gemm_kernel_name(ember::detail::gemm_kernel());
  if (env != nullptr && *env != '\0')
    CHECK(chosen == env);
  else
    CHECK((chosen == "naive" || chosen == "openblas" || chosen == "ember"));
  if (chosen == "ember") CHECK(ember::detail::cpu_has_avx2_fma());
}
