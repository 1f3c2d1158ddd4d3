// sgemm over ember's thread pool: each thread runs a single-threaded kernel
// on its own block of C, so no copies are made and no threads compete. The
// kernel is the naive loop below, OpenBLAS, or ember's own (sgemm_ember.cpp);
// gemm_kernel() says which, from EMBER_GEMM, the build and the CPU.
#include "core/ops/blas.h"

#include <cblas.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

#include "core/error.h"
#include "core/ops/sgemm_ember.h"
#include "core/parallel.h"

namespace ember::detail {

// The matmul to read first. C[i][j] = sum over p of op(A)[i][p] op(B)[p][j],
// one entry of C at a time, straight from the definition. Row-major storage
// keeps element (r, c) of a matrix at r * ld + c, where ld (the leading
// dimension) is the distance between rows; a transposed operand is the same
// memory read with r and c swapped, so no copy is ever made. Nothing here is
// tuned for speed (the other two kernels run a training step's products
// 20-80 times faster), but every line can be stepped through in gdb.
void sgemm_naive(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t terms = alpha == 0.0f ? 0 : K;  // alpha = 0: no product; as in BLAS, A and B are not read
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      float sum = 0.0f;  // row i of op(A) dotted with column j of op(B)
      for (int64_t p = 0; p < terms; ++p) {
        const float a = ta ? A[p * lda + i] : A[i * lda + p];  // op(A)[i][p]
        const float b = tb ? B[j * ldb + p] : B[p * ldb + j];  // op(B)[p][j]
        sum += a * b;
      }
      float& c = C[i * ldc + j];
      // beta = 0 makes C output only: it is never read, so whatever it held
      // (uninitialised memory, even NaN) is replaced, not multiplied by 0.
      c = beta == 0.0f ? alpha * sum : alpha * sum + beta * c;
    }
  }
}

namespace {

// Below this many multiply-adds, one thread is faster than two.
constexpr int64_t kParallelWork = int64_t{1} << 18;
// Multiply-adds a part of a split product should at least hold (about 20 us
// here): a helper that joins a product late (parallel.h's work sharing) must
// find parts worth the trip.
constexpr int64_t kPartWork = int64_t{1} << 20;

// The default kernel compiled in by `make EMBER_GEMM=...`; debug builds read
// and step the naive loop unless told otherwise.
#if defined(EMBER_GEMM_DEFAULT)
constexpr const char* kBuildDefault = EMBER_GEMM_DEFAULT;
#elif defined(EMBER_DEBUG)
constexpr const char* kBuildDefault = "naive";
#else
constexpr const char* kBuildDefault = nullptr;
#endif

void sgemm_openblas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (beta == 0.0f) {
    // OpenBLAS clears C for beta = 0 with scalar stores; a memset and beta = 1
    // is 8-20% faster on the training step's shapes (measured on this CPU).
    if (ldc == N)
      std::memset(C, 0, static_cast<size_t>(M * N) * sizeof(float));
    else
      for (int64_t i = 0; i < M; ++i) std::memset(C + i * ldc, 0, static_cast<size_t>(N) * sizeof(float));
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(M),
              static_cast<int>(N), static_cast<int>(K), alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta,
              C, static_cast<int>(ldc));
}

void sgemm_serial(GemmKernel kernel, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
#if EMBER_HAVE_SGEMM_EMBER
  if (kernel == GemmKernel::Ember) {
    sgemm_ember(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#endif
  sgemm_openblas(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

bool cpu_has_avx2_fma() {
#if EMBER_HAVE_SGEMM_EMBER
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;  // not an x86-64 build: sgemm_ember is not compiled in
#endif
}

const char* gemm_kernel_name(GemmKernel kernel) {
  switch (kernel) {
    case GemmKernel::Naive:
      return "naive";
    case GemmKernel::OpenBLAS:
      return "openblas";
    case GemmKernel::Ember:
      return "ember";
    case GemmKernel::Default:
      break;
  }
  return "default";
}

GemmKernel choose_gemm_kernel(const char* env, const char* build_default, bool cpu_has_avx2_fma) {
  const bool from_env = env != nullptr && *env != '\0';
  const std::string_view name = from_env ? env : build_default != nullptr ? build_default : "";
  if (name.empty()) return cpu_has_avx2_fma ? GemmKernel::Ember : GemmKernel::OpenBLAS;
  const char* origin = from_env ? "EMBER_GEMM" : "make EMBER_GEMM";  // who asked, for the message
  for (GemmKernel k : {GemmKernel::Naive, GemmKernel::OpenBLAS, GemmKernel::Ember}) {
    if (name != gemm_kernel_name(k)) continue;
    EMBER_CHECK(k != GemmKernel::Ember || cpu_has_avx2_fma,
                "{}=ember: ember's matmul kernel needs an x86-64 CPU with AVX2 and FMA, which this one lacks "
                "(use openblas or naive)",
                origin);
    return k;
  }
  fail("{}={}: unknown matmul kernel (expected naive, openblas or ember)", origin, name);
}

GemmKernel gemm_kernel() {
  // Read once; if it throws, the next call reads and throws again.
  static const GemmKernel chosen = choose_gemm_kernel(std::getenv("EMBER_GEMM"), kBuildDefault, cpu_has_avx2_fma());
  return chosen;
}

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
           int64_t ldb, float beta, float* C, int64_t ldc, GemmKernel kernel) {
  // Copied once, so that gdb's `step` from here on goes past this line into the kernel.
  static const GemmKernel chosen = gemm_kernel();
  if (kernel == GemmKernel::Default) kernel = chosen;
  if (kernel == GemmKernel::Naive) {  // on the calling thread: it is there to be read and stepped through
    sgemm_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  EMBER_CHECK(kernel != GemmKernel::Ember || cpu_has_avx2_fma(),
              "sgemm: ember's kernel needs an x86-64 CPU with AVX2 and FMA, which this one lacks");
  if (M * N * K < kParallelWork || num_threads() == 1 ||
      (kernel == GemmKernel::OpenBLAS && detail::in_parallel_chunk())) {
    // OpenBLAS may pick another inner kernel for another block shape: inside a
    // chunk, where work sharing would cut the product differently from run to
    // run, it stays whole so that results stay bit-identical.
    sgemm_serial(kernel, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Parts are whole 6-row or 16-column panels of C. ember's kernel packs op(B)
  // per column block and A^T whole, while it reads A in place: so splitting
  // columns repacks nothing when op(A) = A, and with A^T the split goes along
  // the longer side, repacking the smaller operand in each part. Every entry
  // of C is computed the same way however C is cut (its K loop depends on K
  // only), which parallel_for's work sharing relies on.
  const int64_t row_panels = (M + 5) / 6, col_panels = (N + 15) / 16;
  bool by_rows = ta && M > N;
  if ((by_rows ? row_panels : col_panels) < 2 * num_threads()) by_rows = row_panels > col_panels;
  const int64_t panel_work = (by_rows ? 6 * N : 16 * M) * K;  // multiply-adds per panel
  const int64_t grain = std::max<int64_t>(1, kPartWork / panel_work);
  if (by_rows) {
    parallel_for(row_panels, grain, [&](int64_t p0, int64_t p1) {
      const int64_t m0 = 6 * p0, m1 = std::min(M, 6 * p1);
      const float* a = ta ? A + m0 : A + m0 * lda;
      sgemm_serial(kernel, ta, tb, m1 - m0, N, K, alpha, a, lda, B, ldb, beta, C + m0 * ldc, ldc);
    });
  } else {
    parallel_for(col_panels, grain, [&](int64_t p0, int64_t p1) {
      const int64_t n0 = 16 * p0, n1 = std::min(N, 16 * p1);
      const float* b = tb ? B + n0 * ldb : B + n0;
      sgemm_serial(kernel, ta, tb, M, n1 - n0, K, alpha, A, lda, b, ldb, beta, C + n0, ldc);
    });
  }
}

}  // namespace ember::detail
