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

// Four rows' dot products with x at once: x is loaded once for the four, and
// eight accumulators (two per row) keep both FMA ports busy.
void dot4(const float* w, int64_t in, const float* x, float* y) {
  const float *w0 = w, *w1 = w + in, *w2 = w + 2 * in, *w3 = w + 3 * in;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  int64_t k = 0;
  for (; k + 16 <= in; k += 16) {
    const __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + k), x0, a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + k), x0, a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + k), x0, a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + k), x0, a3);
    b0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + k + 8), x1, b0);
    b1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + k + 8), x1, b1);
    b2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + k + 8), x1, b2);
    b3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + k + 8), x1, b3);
  }
  float s[4] = {hsum(_mm256_add_ps(a0, b0)), hsum(_mm256_add_ps(a1, b1)), hsum(_mm256_add_ps(a2, b2)),
                hsum(_mm256_add_ps(a3, b3))};
  for (; k < in; ++k) {
    s[0] += w0[k] * x[k];
    s[1] += w1[k] * x[k];
    s[2] += w2[k] * x[k];
    s[3] += w3[k] * x[k];
  }
  for (int r = 0; r < 4; ++r) y[r] = s[r];
}
#endif

// Rows [r0, r1): whole groups of four through dot4, a last partial group
// row by row. Threads get whole groups, so how a row is summed never depends
// on the thread count.
void linear_rows(const float* x, const float* w, const float* b, float* y, int64_t in, int64_t r0, int64_t r1) {
  int64_t r = r0;
#if EMBER_DECODE_AVX2
  for (; r + 4 <= r1; r += 4) dot4(w + r * in, in, x, y + r);
#endif
  for (; r < r1; ++r) y[r] = detail::row_dot(w + r * in, x, in);
  if (b != nullptr)
    for (r = r0; r < r1; ++r) y[r] += b[r];
}

}  // namespace

void linear_row(const float* x, const float* weight, const float* bias, float* y, int64_t in, int64_t out) {
  const int64_t groups = (out + 3) / 4, grain = std::max<int64_t>(1, kTaskWork / (4 * std::max<int64_t>(in, 1)));
  parallel_for(groups, grain,
               [&](int64_t g0, int64_t g1) { linear_rows(x, weight, bias, y, in, 4 * g0, std::min(out, 4 * g1)); });
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
