// Internal to core/: GELU and its derivative, both forms, as inline scalar
// functions that vectorise inside elementwise loops. Used by the gelu op and
// by gelu_linear, which recomputes GELU in its backward.
#pragma once

#include "core/ops/fastmath.h"

namespace ember::detail {

constexpr float kSqrt2OverPi = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kInvSqrt2Pi = 0.3989422804014327f;   // 1/sqrt(2 pi)
constexpr float kGeluCubic = 0.044715f;

// Exact: y = x Phi(x), Phi the standard normal CDF, so dy/dx = Phi(x) + x phi(x)
// with phi the standard normal density.
[[gnu::always_inline]] inline float gelu_exact(float x) { return x * detail::normal_cdf_fast(x); }
// phi(x) and Phi(x) share one exp(-x^2 / 2).
[[gnu::always_inline]] inline float gelu_exact_grad(float x) {
  const float gauss = detail::gauss_fast(x);
  return detail::normal_cdf_given_gauss(x, gauss) + x * kInvSqrt2Pi * gauss;
}
// Tanh form: y = x/2 (1 + tanh u), u = sqrt(2/pi)(x + 0.044715 x^3). Since
// (1 + tanh u)/2 = s = sigmoid(2u), y = x s, and with 1 - tanh^2 u = 4 s (1 - s),
// dy/dx = s + 2 x s (1 - s) sqrt(2/pi)(1 + 3 * 0.044715 x^2). The sigmoid form
// keeps the left tail accurate, where 1 + tanh u would cancel.
[[gnu::always_inline]] inline float gelu_tanh(float x) {
  return x * detail::sigmoid_fast(2.0f * kSqrt2OverPi * (x + kGeluCubic * x * x * x));
}
[[gnu::always_inline]] inline float gelu_tanh_grad(float x) {
  const float e = detail::exp_fast(-2.0f * kSqrt2OverPi * (x + kGeluCubic * x * x * x));
  const float s = 1.0f / (1.0f + e), one_minus_s = e * s;  // not 1 - s, which cancels for large x
  return s + 2.0f * x * s * one_minus_s * kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x);
}

// GELU and its derivative together from one exp, for backward passes that
// need both (gelu_linear recomputes y for the weight gradient).
[[gnu::always_inline]] inline void gelu_exact_both(float x, float& y, float& dy) {
  const float gauss = detail::gauss_fast(x);
  const float cdf = detail::normal_cdf_given_gauss(x, gauss);
  y = x * cdf;
  dy = cdf + x * kInvSqrt2Pi * gauss;
}
[[gnu::always_inline]] inline void gelu_tanh_both(float x, float& y, float& dy) {
  const float e = detail::exp_fast(-2.0f * kSqrt2OverPi * (x + kGeluCubic * x * x * x));
  const float s = 1.0f / (1.0f + e), one_minus_s = e * s;
  y = x * s;
  dy = s + 2.0f * x * s * one_minus_s * kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x);
}

}  // namespace ember::detail
