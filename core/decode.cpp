// The one-token kernels of core/decode.h: a matrix-vector product that reads
// the weight rows in place, row layer norm and GELU, RoPE for one position,
// and single-query attention over a key/value cache. The reductions use the
// same lane structure and fast exp as the batched ops (core/ops/row_math.h),
// so both paths round alike up to the order of their sums.
#include "core/decode.h"

#include <algorithm>
#include <cmath>

#include "core/ops/gelu.h"
#include "core/ops/row_math.h"
#include "core/parallel.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define EMBER_DECODE_AVX2 1
#else
#define EMBER_DECODE_AVX2 0
#endif

namespace ember {
namespace {

// Multiply-adds a thread should get at least: the pool wakes in a few
// microseconds, about the time 2^15 multiply-adds stream from memory.
constexpr int64_t kTaskWork = int64_t{1} << 15;

#if EMBER_DECODE_AVX2
inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// One row's dot product with x: four accumulators of 8 lanes, 32 floats a
// trip. Row by row (one sequential stream of weights) measured faster on the
// development machine than four rows at once sharing each load of x
// (3.6-4.7 ms against 5.2-6.8 ms for config M's 24 matrices per token): the
// product is bound by memory, and the hardware prefetcher follows one
// stream better than four.
float dot_row(const float* w, const float* x, int64_t in) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t k = 0;
  for (; k + 32 <= in; k += 32) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 8), _mm256_loadu_ps(x + k + 8), a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 16), _mm256_loadu_ps(x + k + 16), a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 24), _mm256_loadu_ps(x + k + 24), a3);
  }
  for (; k + 8 <= in; k += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), a0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; k < in; ++k) s += w[k] * x[k];
  return s;
}
#else
float dot_row(const float* w, const float* x, int64_t in) { return detail::row_dot(w, x, in); }
#endif

}  // namespace

void linear_row(const float* x, const float* weight, const float* bias, float* y, int64_t in, int64_t out) {
  parallel_for(out, std::max<int64_t>(1, kTaskWork / std::max<int64_t>(in, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) y[r] = dot_row(weight + r * in, x, in) + (bias != nullptr ? bias[r] : 0.0f);
  });
}

void layer_norm_row(const float* x, const float* w, const float* b, float* y, int64_t C, float eps) {
  const float mu = detail::row_dot(x, nullptr, C) / static_cast<float>(C);
  float acc[detail::kRowLanes] = {};
  int64_t i = 0;
  for (; i + detail::kRowLanes <= C; i += detail::kRowLanes)
    for (int l = 0; l < detail::kRowLanes; ++l) {
      const float d = x[i + l] - mu;
      acc[l] += d * d;
    }
  float ss = 0.0f;
  for (; i < C; ++i) ss += (x[i] - mu) * (x[i] - mu);
  for (float a : acc) ss += a;
  const float rs = 1.0f / std::sqrt(ss / static_cast<float>(C) + eps);
  for (int64_t c = 0; c < C; ++c) {
    float v = (x[c] - mu) * rs;
    if (w != nullptr) v *= w[c];
    if (b != nullptr) v += b[c];
    y[c] = v;
  }
}

void gelu_row(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = detail::gelu_exact(x[i]);
}

void rope_tables(int64_t T, int64_t D, double base, std::vector<float>& cos, std::vector<float>& sin) {
  cos.resize(static_cast<size_t>(T * (D / 2)));
  sin.resize(cos.size());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < D / 2; ++i) {
      const double angle = static_cast<double>(t) * std::pow(base, -2.0 * static_cast<double>(i) / D);
      cos[t * (D / 2) + i] = static_cast<float>(std::cos(angle));
      sin[t * (D / 2) + i] = static_cast<float>(std::sin(angle));
    }
}

void rope_row(float* x, int64_t groups, int64_t D, const float* c, const float* s) {
  for (int64_t g = 0; g < groups; ++g) {
    float* xg = x + g * D;
    for (int64_t i = 0; i < D / 2; ++i) {
      const float x0 = xg[2 * i], x1 = xg[2 * i + 1];
      xg[2 * i] = x0 * c[i] - x1 * s[i];
      xg[2 * i + 1] = x0 * s[i] + x1 * c[i];
    }
  }
}

void attention_row(const float* q, const float* k, const float* v, int64_t n, int64_t H, int64_t D, int64_t head_stride,
                   const float* slopes, float* y, float* scratch) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  parallel_for(H, std::max<int64_t>(1, kTaskWork / std::max<int64_t>(2 * n * D, 1)), [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h) {
      const float *qh = q + h * D, *kh = k + h * head_stride, *vh = v + h * head_stride;
      float* p = scratch + h * n;
      // The batched op scales the product (sgemm's alpha), then adds the
      // bias rounded once from double: the same steps here.
      for (int64_t j = 0; j < n; ++j) p[j] = scale * detail::row_dot(qh, kh + j * D, D);
      if (slopes != nullptr && slopes[h] != 0.0f)
        for (int64_t j = 0; j < n; ++j)
          p[j] += static_cast<float>(-static_cast<double>(slopes[h]) * static_cast<double>(n - 1 - j));
      const float m = detail::row_max(p, n);
      const float inv = 1.0f / detail::row_exp_sum<true>(p, m, p, n);
      float* yh = y + h * D;
      std::fill(yh, yh + D, 0.0f);
      for (int64_t j = 0; j < n; ++j) {
        const float pj = p[j] * inv;
        const float* vj = vh + j * D;
        for (int64_t d = 0; d < D; ++d) yh[d] += pj * vj[d];
      }
    }
  });
}

}  // namespace ember
