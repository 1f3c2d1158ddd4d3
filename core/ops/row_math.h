// Internal to core/: reductions over one contiguous row of floats (max, sum of
// exps, dot product) written with kLanes independent partial results, so that
// GCC vectorises them without -ffast-math (a single float accumulator is a
// serial chain it may not reorder). Used by the softmaxes and by attention.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>

#include "core/ops/fastmath.h"

namespace ember::detail {

constexpr int kRowLanes = 16;

// Floats compared as int32 after flipping the magnitude bits of negatives: that
// map is monotonic, and integer max vectorises where a float compare-select
// does not (under -ftrapping-math). A NaN either wins (and every x - max is NaN)
// or loses and poisons the exp sum, so a row with a NaN comes out NaN either way.
inline int32_t ordered_bits(float x) {
  const int32_t b = std::bit_cast<int32_t>(x);
  return b ^ ((b >> 31) & 0x7FFFFFFF);
}

// max_j x_j (-inf for n = 0). Lanes: 16 for long rows; 8 suits short rows
// padded to a multiple of 8, which then have no scalar tail.
template <int Lanes = kRowLanes>
float row_max(const float* x, int64_t n) {
  int32_t acc[Lanes];
  std::fill(acc, acc + Lanes, ordered_bits(-std::numeric_limits<float>::infinity()));
  int64_t i = 0;
  for (; i + Lanes <= n; i += Lanes)
    for (int l = 0; l < Lanes; ++l) acc[l] = std::max(acc[l], ordered_bits(x[i + l]));
  int32_t m = ordered_bits(-std::numeric_limits<float>::infinity());
  for (; i < n; ++i) m = std::max(m, ordered_bits(x[i]));
  for (int32_t a : acc) m = std::max(m, a);
  return std::bit_cast<float>(m ^ ((m >> 31) & 0x7FFFFFFF));  // the map is its own inverse
}

// sum_j exp(x_j - m), also storing the terms in y when Store (y may be x).
template <bool Store, int Lanes = kRowLanes>
float row_exp_sum(const float* x, float m, float* y, int64_t n) {
  float acc[Lanes] = {};
  int64_t i = 0;
  for (; i + Lanes <= n; i += Lanes)
    for (int l = 0; l < Lanes; ++l) {
      const float e = exp_fast(x[i + l] - m);
      if constexpr (Store) y[i + l] = e;
      acc[l] += e;
    }
  float s = 0.0f;
  for (; i < n; ++i) {
    const float e = exp_fast(x[i] - m);
    if constexpr (Store) y[i] = e;
    s += e;
  }
  for (float a : acc) s += a;
  return s;
}

// sum_j a_j b_j; with b == nullptr, sum_j a_j.
inline float row_dot(const float* a, const float* b, int64_t n) {
  float acc[kRowLanes] = {};
  int64_t i = 0;
  if (b != nullptr)
    for (; i + kRowLanes <= n; i += kRowLanes)
      for (int l = 0; l < kRowLanes; ++l) acc[l] += a[i + l] * b[i + l];
  else
    for (; i + kRowLanes <= n; i += kRowLanes)
      for (int l = 0; l < kRowLanes; ++l) acc[l] += a[i + l];
  float s = 0.0f;
  for (; i < n; ++i) s += b != nullptr ? a[i] * b[i] : a[i];
  for (float v : acc) s += v;
  return s;
}

}  // namespace ember::detail
