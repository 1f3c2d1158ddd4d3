// Internal to core/: the one door to matrix products. sgemm here is row-major
// with transpose flags, split across ember's thread pool by rows (or columns)
// of C when the product is large enough to be worth it; each thread's block
// runs ember's AVX2 kernel (sgemm_ember.h) or single-threaded cblas_sgemm.
#pragma once

#include <cstdint>

namespace ember::detail {

// Which single-threaded kernel computes each block. Ember (the default) is
// sgemm_ember, which is OpenBLAS too where AVX2 + FMA are missing; OpenBLAS
// is there for comparisons (bench_peak's ceiling, tests).
enum class GemmKernel { Ember, OpenBLAS };

// C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, all row-major.
// op(A) = A (stored [M,K], lda >= K) or A^T (stored [K,M], lda >= M); same for B.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, GemmKernel kernel = GemmKernel::Ember);

}  // namespace ember::detail
