// sgemm_ember: a 6x16 AVX2/FMA register tile with the blocking sized for the
// training step's products (K up to a few hundred, N up to ~1.5k).
//
// Blocking, outermost first:
//   pc  K in blocks of KC (all of K when K <= 512, else ~384-long pieces);
//       when op(A) = A^T it is packed here, whole, into 6-row panels;
//   jc  columns of C in blocks of NC, so one packed block of op(B)
//       (KC x NC floats, <= 192 KiB) stays in the 512 KiB L2; it is packed
//       into 16-column panels, zero-padded;
//   ic  rows of C, 6 at a time: this row panel of op(A) (6 x KC) stays in L1
//       while the kernel walks every 16-column panel of the B block from L2;
//   jr  16 columns at a time: one 6x16 tile of C in 12 ymm accumulators.
// op(A) = A is read in place (rows are contiguous in k; the kernel takes 6 row
// pointers), so the forward and dX products pack only B. Packing absorbs the
// transposes, so the kernel sees two layouts of A and one of B.
// Edge tiles (fewer than 6 rows or 16 columns) run the same kernel on
// zero-padded panels and write back only the valid entries.
#include "core/ops/sgemm_ember.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#if EMBER_HAVE_SGEMM_EMBER
#include <immintrin.h>

namespace ember::detail {
namespace {

constexpr int64_t kMR = 6;                  // rows of the register tile
constexpr int64_t kNR = 16;                 // columns of the register tile (two ymm)
constexpr int64_t kWholeK = 512;            // K up to this is one block
constexpr int64_t kKC = 384;                // target K block above that
constexpr int64_t kBBlock = 48 * 1024;      // floats in one packed block of op(B): 192 KiB of L2

// A 64-byte aligned buffer per thread that only grows: no allocation per call
// once the largest shape has been seen.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(p_); }
  float* get(int64_t n) {
    if (n > cap_) {
      std::free(p_);
      p_ = nullptr;
      cap_ = 0;
      const int64_t cap = (n + 15) / 16 * 16;  // whole 64-byte lines, as aligned_alloc requires
      p_ = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(cap) * sizeof(float)));
      if (p_ == nullptr) throw std::bad_alloc();
      cap_ = cap;
    }
    return p_;
  }

 private:
  float* p_ = nullptr;
  int64_t cap_ = 0;
};

thread_local Scratch t_pack_a, t_pack_b;

}  // namespace

// Everything from here to the matching pop is compiled for AVX2 + FMA, whatever
// -march the rest of ember is built with; detail::sgemm checks the CPU first.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace {

// Writes a finished tile t to C: C = alpha * t + beta * C, reading C only
// when beta != 0, and only the valid mr x nr corner at the edges.
inline void store_tile(const float (&t)[kMR][kNR], float* c, int64_t ldc, float alpha, float beta, int64_t mr,
                       int64_t nr) {
  const __m256 va = _mm256_set1_ps(alpha);
  if (mr == kMR && nr == kNR) {
    if (beta == 0.0f) {
      for (int i = 0; i < kMR; ++i) {
        _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, _mm256_load_ps(t[i])));
        _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, _mm256_load_ps(t[i] + 8)));
      }
    } else if (beta == 1.0f) {
      for (int i = 0; i < kMR; ++i) {
        _mm256_storeu_ps(c + i * ldc, _mm256_fmadd_ps(va, _mm256_load_ps(t[i]), _mm256_loadu_ps(c + i * ldc)));
        _mm256_storeu_ps(c + i * ldc + 8,
                         _mm256_fmadd_ps(va, _mm256_load_ps(t[i] + 8), _mm256_loadu_ps(c + i * ldc + 8)));
      }
    } else {
      const __m256 vb = _mm256_set1_ps(beta);
      for (int i = 0; i < kMR; ++i) {
        _mm256_storeu_ps(c + i * ldc, _mm256_fmadd_ps(va, _mm256_load_ps(t[i]),
                                                      _mm256_mul_ps(vb, _mm256_loadu_ps(c + i * ldc))));
        _mm256_storeu_ps(c + i * ldc + 8, _mm256_fmadd_ps(va, _mm256_load_ps(t[i] + 8),
                                                          _mm256_mul_ps(vb, _mm256_loadu_ps(c + i * ldc + 8))));
      }
    }
    return;
  }
  for (int64_t i = 0; i < mr; ++i) {
    float* ci = c + i * ldc;
    if (beta == 0.0f)
      for (int64_t j = 0; j < nr; ++j) ci[j] = alpha * t[i][j];
    else
      for (int64_t j = 0; j < nr; ++j) ci[j] = alpha * t[i][j] + beta * ci[j];
  }
}

// Touches the tile of C the kernel will write, so its lines arrive while the
// FMAs run (C is read back when beta != 0).
inline void prefetch_c(float* c, int64_t ldc, int64_t mr) {
  for (int64_t i = 0; i < mr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 15), _MM_HINT_T0);
  }
}

// The k loop in inline assembly (written with intrinsics, GCC 12 spills
// accumulators to the stack once the loop is unrolled). Registers: ymm0/ymm1
// hold the B panel's row, ymm2 the broadcast of A, ymm4..ymm15 the tile
// (row i in ymm(4+2i), ymm(5+2i)). Four k steps per trip, then one at a time;
// the tile is written to t[6][16] for store_tile.
#define EMBER_FMA_A(ADDR, R0, R1)                   \
  "vbroadcastss " ADDR ", %%ymm2\n\t"               \
  "vfmadd231ps %%ymm0, %%ymm2, %%ymm" R0 "\n\t"     \
  "vfmadd231ps %%ymm1, %%ymm2, %%ymm" R1 "\n\t"
#define EMBER_STEP(OB0, OB1, A0, A1, A2, A3, A4, A5)                                          \
  "vmovaps " OB0 "(%[b]), %%ymm0\n\t"                                                         \
  "vmovaps " OB1 "(%[b]), %%ymm1\n\t"                                                         \
  EMBER_FMA_A(A0, "4", "5") EMBER_FMA_A(A1, "6", "7") EMBER_FMA_A(A2, "8", "9")               \
  EMBER_FMA_A(A3, "10", "11") EMBER_FMA_A(A4, "12", "13") EMBER_FMA_A(A5, "14", "15")
#define EMBER_PACKED_STEP(OB0, OB1, O0, O1, O2, O3, O4, O5)                                   \
  EMBER_STEP(OB0, OB1, O0 "(%[a])", O1 "(%[a])", O2 "(%[a])", O3 "(%[a])", O4 "(%[a])", O5 "(%[a])")
#define EMBER_ROWS_STEP(OB0, OB1, O)                                                          \
  EMBER_STEP(OB0, OB1, O "(%[a0])", O "(%[a0],%[l],1)", O "(%[a0],%[l],2)", O "(%[a3])",      \
             O "(%[a3],%[l],1)", O "(%[a3],%[l],2)")
#define EMBER_ZERO_TILE                                                                        \
  "vxorps %%ymm4, %%ymm4, %%ymm4\n\t" "vxorps %%ymm5, %%ymm5, %%ymm5\n\t"                      \
  "vxorps %%ymm6, %%ymm6, %%ymm6\n\t" "vxorps %%ymm7, %%ymm7, %%ymm7\n\t"                      \
  "vxorps %%ymm8, %%ymm8, %%ymm8\n\t" "vxorps %%ymm9, %%ymm9, %%ymm9\n\t"                      \
  "vxorps %%ymm10, %%ymm10, %%ymm10\n\t" "vxorps %%ymm11, %%ymm11, %%ymm11\n\t"                \
  "vxorps %%ymm12, %%ymm12, %%ymm12\n\t" "vxorps %%ymm13, %%ymm13, %%ymm13\n\t"                \
  "vxorps %%ymm14, %%ymm14, %%ymm14\n\t" "vxorps %%ymm15, %%ymm15, %%ymm15\n\t"
#define EMBER_SAVE_TILE                                                                        \
  "vmovaps %%ymm4, 0(%[t])\n\t" "vmovaps %%ymm5, 32(%[t])\n\t"                                 \
  "vmovaps %%ymm6, 64(%[t])\n\t" "vmovaps %%ymm7, 96(%[t])\n\t"                                \
  "vmovaps %%ymm8, 128(%[t])\n\t" "vmovaps %%ymm9, 160(%[t])\n\t"                              \
  "vmovaps %%ymm10, 192(%[t])\n\t" "vmovaps %%ymm11, 224(%[t])\n\t"                            \
  "vmovaps %%ymm12, 256(%[t])\n\t" "vmovaps %%ymm13, 288(%[t])\n\t"                            \
  "vmovaps %%ymm14, 320(%[t])\n\t" "vmovaps %%ymm15, 352(%[t])\n\t"
#define EMBER_CLOBBERS                                                                         \
  "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
      "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

// Tile kernel on a packed A panel: element (i, k) at a[6k + i].
void kernel_packed(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta,
                   int64_t mr, int64_t nr) {
  prefetch_c(c, ldc, mr);
  alignas(32) float t[kMR][kNR];
  int64_t n4 = kc / 4, n1 = kc % 4;
  asm volatile(
      EMBER_ZERO_TILE
      "testq %[n4], %[n4]\n\t"
      "jz 2f\n\t"
      "1:\n\t"
      EMBER_PACKED_STEP("0", "32", "0", "4", "8", "12", "16", "20")
      EMBER_PACKED_STEP("64", "96", "24", "28", "32", "36", "40", "44")
      EMBER_PACKED_STEP("128", "160", "48", "52", "56", "60", "64", "68")
      EMBER_PACKED_STEP("192", "224", "72", "76", "80", "84", "88", "92")
      "addq $96, %[a]\n\t"
      "addq $256, %[b]\n\t"
      "decq %[n4]\n\t"
      "jnz 1b\n\t"
      "2:\n\t"
      "testq %[n1], %[n1]\n\t"
      "jz 4f\n\t"
      "3:\n\t"
      EMBER_PACKED_STEP("0", "32", "0", "4", "8", "12", "16", "20")
      "addq $24, %[a]\n\t"
      "addq $64, %[b]\n\t"
      "decq %[n1]\n\t"
      "jnz 3b\n\t"
      "4:\n\t"
      EMBER_SAVE_TILE
      : [a] "+r"(a), [b] "+r"(b), [n4] "+r"(n4), [n1] "+r"(n1)
      : [t] "r"(&t[0][0])
      : EMBER_CLOBBERS);
  store_tile(t, c, ldc, alpha, beta, mr, nr);
}

// Tile kernel on A in place: row i of the panel at a + i * lda, contiguous in k.
void kernel_rows(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, float alpha,
                 float beta, int64_t mr, int64_t nr) {
  prefetch_c(c, ldc, mr);
  alignas(32) float t[kMR][kNR];
  int64_t n4 = kc / 4, n1 = kc % 4;
  const float* a0 = a;
  const float* a3 = a + 3 * lda;
  const int64_t l = lda * static_cast<int64_t>(sizeof(float));
  asm volatile(
      EMBER_ZERO_TILE
      "testq %[n4], %[n4]\n\t"
      "jz 2f\n\t"
      "1:\n\t"
      EMBER_ROWS_STEP("0", "32", "0")
      EMBER_ROWS_STEP("64", "96", "4")
      EMBER_ROWS_STEP("128", "160", "8")
      EMBER_ROWS_STEP("192", "224", "12")
      "addq $16, %[a0]\n\t"
      "addq $16, %[a3]\n\t"
      "addq $256, %[b]\n\t"
      "decq %[n4]\n\t"
      "jnz 1b\n\t"
      "2:\n\t"
      "testq %[n1], %[n1]\n\t"
      "jz 4f\n\t"
      "3:\n\t"
      EMBER_ROWS_STEP("0", "32", "0")
      "addq $4, %[a0]\n\t"
      "addq $4, %[a3]\n\t"
      "addq $64, %[b]\n\t"
      "decq %[n1]\n\t"
      "jnz 3b\n\t"
      "4:\n\t"
      EMBER_SAVE_TILE
      : [a0] "+r"(a0), [a3] "+r"(a3), [b] "+r"(b), [n4] "+r"(n4), [n1] "+r"(n1)
      : [t] "r"(&t[0][0]), [l] "r"(l)
      : EMBER_CLOBBERS);
  store_tile(t, c, ldc, alpha, beta, mr, nr);
}

#undef EMBER_FMA_A
#undef EMBER_STEP
#undef EMBER_PACKED_STEP
#undef EMBER_ROWS_STEP
#undef EMBER_ZERO_TILE
#undef EMBER_SAVE_TILE
#undef EMBER_CLOBBERS

// 8x8 transpose: r[j] holds 8 consecutive k of column j; afterwards r[k] holds
// 8 consecutive j of row k.
inline void transpose8(__m256 (&r)[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// Packs op(B)[p0 : p0+kc, j0 : j0+nc] into 16-column panels: panel q holds
// kc rows of 16 floats (columns j0+16q ...), zeros past column nc.
void pack_b(bool tb, const float* B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  for (int64_t jq = 0; jq < nc; jq += kNR, dst += kc * kNR) {
    const int64_t w = std::min(kNR, nc - jq);
    if (!tb) {  // op(B) = B: each panel row is 16 contiguous floats of a row of B
      const float* src = B + p0 * ldb + j0 + jq;
      if (w == kNR) {
        for (int64_t k = 0; k < kc; ++k) {
          _mm256_store_ps(dst + k * kNR, _mm256_loadu_ps(src + k * ldb));
          _mm256_store_ps(dst + k * kNR + 8, _mm256_loadu_ps(src + k * ldb + 8));
        }
      } else {
        for (int64_t k = 0; k < kc; ++k)
          for (int64_t j = 0; j < kNR; ++j) dst[k * kNR + j] = j < w ? src[k * ldb + j] : 0.0f;
      }
    } else {  // op(B) = B^T: column j of the panel is row j0+jq+j of B, contiguous in k
      const float* src = B + (j0 + jq) * ldb + p0;
      int64_t k = 0;
      if (w == kNR) {
        for (; k + 8 <= kc; k += 8) {
          for (int64_t h = 0; h < 2; ++h) {
            __m256 r[8];
            for (int64_t j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(src + (8 * h + j) * ldb + k);
            transpose8(r);
            for (int64_t kk = 0; kk < 8; ++kk) _mm256_store_ps(dst + (k + kk) * kNR + 8 * h, r[kk]);
          }
        }
      }
      for (; k < kc; ++k)
        for (int64_t j = 0; j < kNR; ++j) dst[k * kNR + j] = j < w ? src[j * ldb + k] : 0.0f;
    }
  }
}

// Packs rows [i0, i0+mr) x [p0, p0+kc) of A (not transposed) as a 6-row
// panel: element (i, k) at dst[6k + i], zeros past row mr.
void pack_a(const float* A, int64_t lda, int64_t i0, int64_t mr, int64_t p0, int64_t kc, float* dst) {
  const float* src = A + i0 * lda + p0;
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t i = 0; i < kMR; ++i) dst[k * kMR + i] = i < mr ? src[i * lda + k] : 0.0f;
}

// Packs op(A) = A^T [0, M) x [p0, p0+kc) as consecutive 6-row panels
// (panel q at dst + 6q * kc, zeros below row M). A^T's column k is contiguous in A, so
// this walks A row by row, 8 rows at a time: a few KiB of A stay in L1 while
// every panel takes its 6 floats from each (panel by panel, the reads stride
// by lda and miss L1 on nearly every row).
void pack_at(const float* A, int64_t lda, int64_t M, int64_t p0, int64_t kc, float* dst) {
  for (int64_t kb = 0; kb < kc; kb += 8) {
    const int64_t kn = std::min<int64_t>(8, kc - kb);
    for (int64_t q = 0; q * kMR < M; ++q) {
      const int64_t r = std::min(kMR, M - q * kMR);
      const float* src = A + (p0 + kb) * lda + q * kMR;
      float* d = dst + q * kMR * kc + kb * kMR;
      if (r == kMR) {
        for (int64_t k = 0; k < kn; ++k) std::memcpy(d + k * kMR, src + k * lda, kMR * sizeof(float));
      } else {
        for (int64_t k = 0; k < kn; ++k)
          for (int64_t i = 0; i < kMR; ++i) d[k * kMR + i] = i < r ? src[k * lda + i] : 0.0f;
      }
    }
  }
}

}  // namespace

void sgemm_ember(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {  // C = beta * C; no product to add
    for (int64_t i = 0; i < M; ++i) {
      float* ci = C + i * ldc;
      if (beta == 0.0f)
        std::memset(ci, 0, static_cast<size_t>(N) * sizeof(float));
      else if (beta != 1.0f)
        for (int64_t j = 0; j < N; ++j) ci[j] *= beta;
    }
    return;
  }

  // K blocks of equal length: all of K when short, else pieces of about kKC.
  const int64_t nk = K <= kWholeK ? 1 : (K + kKC - 1) / kKC;
  const int64_t KC = (K + nk - 1) / nk;
  // Column blocks of equal width (whole panels) so that KC x NC fits kBBlock.
  const int64_t nc_max = std::max<int64_t>(kNR, kBBlock / KC / kNR * kNR);
  const int64_t nj = (N + nc_max - 1) / nc_max;
  const int64_t NC = ((N + nj - 1) / nj + kNR - 1) / kNR * kNR;

  float* bp = t_pack_b.get(KC * NC);
  // A^T is packed whole for each K block, once for all column blocks; A
  // itself is read in place but for its last rows.
  float* ap = t_pack_a.get(KC * (ta ? (M + kMR - 1) / kMR * kMR : kMR));

  for (int64_t p0 = 0; p0 < K; p0 += KC) {
    const int64_t kc = std::min(KC, K - p0);
    const float beta_k = p0 == 0 ? beta : 1.0f;  // later K blocks add onto the first
    if (ta) pack_at(A, lda, M, p0, kc, ap);
    for (int64_t j0 = 0; j0 < N; j0 += NC) {
      const int64_t nc = std::min(NC, N - j0);
      pack_b(tb, B, ldb, p0, kc, j0, nc, bp);
      for (int64_t i0 = 0; i0 < M; i0 += kMR) {
        const int64_t mr = std::min(kMR, M - i0);
        float* c = C + i0 * ldc + j0;
        const float* a = ap + i0 * kc;  // A^T's panel, packed above
        if (!ta && mr == kMR) {
          a = A + i0 * lda + p0;
          for (int64_t jq = 0; jq < nc; jq += kNR)
            kernel_rows(kc, a, lda, bp + jq * kc, c + jq, ldc, alpha, beta_k, kMR, std::min(kNR, nc - jq));
          continue;
        }
        if (!ta) {  // the last rows of A: pack them with zeros below
          pack_a(A, lda, i0, mr, p0, kc, ap);
          a = ap;
        }
        for (int64_t jq = 0; jq < nc; jq += kNR)
          kernel_packed(kc, a, bp + jq * kc, c + jq, ldc, alpha, beta_k, mr, std::min(kNR, nc - jq));
      }
    }
  }
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

}  // namespace ember::detail

#endif  // EMBER_HAVE_SGEMM_EMBER
