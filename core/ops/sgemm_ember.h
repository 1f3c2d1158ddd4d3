// Internal to core/: ember's own single-threaded sgemm (AVX2 + FMA), which
// detail::sgemm runs on each thread's block of C. On a training step's small
// products OpenBLAS spends a large share of each call outside its kernel
// (packing, clearing C); this one reads A in place and clears nothing.
#pragma once

#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#define EMBER_HAVE_SGEMM_EMBER 1
#else
#define EMBER_HAVE_SGEMM_EMBER 0
#endif

namespace ember::detail {

// C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, all row-major, on the
// calling thread. op(A) = A (stored [M,K], lda >= K) or A^T (stored [K,M],
// lda >= M); same for B. beta = 0 overwrites C without reading it. Exists
// only when compiled with AVX2 and FMA (EMBER_HAVE_SGEMM_EMBER).
void sgemm_ember(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace ember::detail
