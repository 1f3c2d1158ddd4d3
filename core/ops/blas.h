// Internal to core/: the one door to matrix products. sgemm here is row-major
// with transpose flags, split across ember's thread pool by rows (or columns)
// of C when the product is large enough to be worth it; each thread's block
// runs one of three kernels, picked by EMBER_GEMM (see gemm_kernel below).
#pragma once

#include <cstdint>

namespace ember::detail {

// The single-threaded kernel that computes each block of C.
enum class GemmKernel {
  Default,   // whatever gemm_kernel() picked for this process
  Naive,     // sgemm_naive: three plain loops on the calling thread, for reading and stepping in gdb
  OpenBLAS,  // OpenBLAS's cblas_sgemm (kept on one thread: ember splits the work)
  Ember,     // sgemm_ember: ember's AVX2 + FMA kernel, fastest on a training step's shapes
};

// The kernel sgemm runs for GemmKernel::Default, chosen once per process:
//   1. the EMBER_GEMM environment variable (naive, openblas or ember), if set;
//   2. else the build's default: `make EMBER_GEMM=...`, or naive in debug builds;
//   3. else ember where the CPU has AVX2 and FMA, openblas elsewhere.
// Throws ember::Error on an unknown name, or on ember where the CPU lacks AVX2/FMA.
GemmKernel gemm_kernel();

// The rule gemm_kernel() applies, given its inputs: `env` is EMBER_GEMM's
// value and `build_default` the build's choice (null or empty: not set).
GemmKernel choose_gemm_kernel(const char* env, const char* build_default, bool cpu_has_avx2_fma);

// Whether sgemm_ember can run here: built for x86-64 and the CPU has AVX2 + FMA.
bool cpu_has_avx2_fma();

const char* gemm_kernel_name(GemmKernel kernel);  // "naive", "openblas", "ember"

// C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, all row-major.
// op(A) = A (stored [M,K], lda >= K) or A^T (stored [K,M], lda >= M); same for B.
// beta = 0 means C is output only: it is never read, so NaN there is overwritten.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, GemmKernel kernel = GemmKernel::Default);

// The naive kernel on its own (same contract as sgemm, on the calling thread).
void sgemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace ember::detail
