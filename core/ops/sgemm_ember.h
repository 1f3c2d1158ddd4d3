// Internal to core/: ember's own single-threaded sgemm (AVX2 + FMA), which
// detail::sgemm runs on each thread's block of C. On a training step's small
// products OpenBLAS spends a large share of each call outside its kernel
// (packing, clearing C); this one reads A in place and clears nothing.
#pragma once

#include <cstdint>

// Compiled into every x86-64 build whatever -march says (its functions are
// compiled for AVX2 + FMA on their own), so a portable or debug build has it
// too: detail::sgemm calls it only after checking the CPU (cpu_has_avx2_fma).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define EMBER_HAVE_SGEMM_EMBER 1
#else
#define EMBER_HAVE_SGEMM_EMBER 0
#endif

namespace ember::detail {

// C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, all row-major, on the
// calling thread. op(A) = A (stored [M,K], lda >= K) or A^T (stored [K,M],
// lda >= M); same for B. beta = 0 overwrites C without reading it. Exists
// only on x86-64 (EMBER_HAVE_SGEMM_EMBER), runs only where the CPU has AVX2 + FMA.
void sgemm_ember(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace ember::detail
