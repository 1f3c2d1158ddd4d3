// Internal to core/: the strided loop behind elementwise ops, broadcasting
// and copies. It merges dims that are contiguous for every operand, so the
// common cases (same-shape contiguous, [B,T,C] + [T,C]) become one or two
// flat loops, and hands the kernel whole inner runs, never single elements.
#pragma once

#include <array>

#include "core/tensor.h"

namespace ember::detail {

// t's strides aligned on the right against `out`, 0 where t is broadcast.
Strides broadcast_strides(const Tensor& t, const Shape& out);

// Calls run(offsets, n, inner_strides) for every inner run of `shape`, where
// offsets[k] is operand k's element offset at the run start and the run has
// n elements spaced inner_strides[k] apart in operand k.
template <size_t N, typename Run>
void for_each_run(const Shape& shape, std::array<Strides, N> strides, Run&& run) {
  // Drop size-1 dims, then merge neighbours that are contiguous in all operands.
  Shape sizes;
  std::array<Strides, N> st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (shape[d] == 0) return;
    bool merge = !sizes.empty();
    for (size_t k = 0; k < N && merge; ++k) merge = st[k].back() == strides[k][d] * shape[d];
    if (merge) {
      sizes.back() *= shape[d];
      for (size_t k = 0; k < N; ++k) st[k].back() = strides[k][d];
    } else {
      sizes.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) st[k].push_back(strides[k][d]);
    }
  }
  std::array<int64_t, N> offsets{}, inner{};
  if (sizes.empty()) {
    run(offsets, int64_t{1}, inner);
    return;
  }
  const size_t last = sizes.size() - 1;
  for (size_t k = 0; k < N; ++k) inner[k] = st[k][last];
  std::vector<int64_t> counter(last, 0);
  while (true) {
    run(offsets, sizes[last], inner);
    size_t d = last;  // advance the outer counter like an odometer
    while (d-- > 0) {
      for (size_t k = 0; k < N; ++k) offsets[k] += st[k][d];
      if (++counter[d] < sizes[d]) break;
      for (size_t k = 0; k < N; ++k) offsets[k] -= st[k][d] * sizes[d];
      counter[d] = 0;
    }
    if (d == static_cast<size_t>(-1)) return;
  }
}

// dst = src elementwise (same shape, any strides).
void copy_into(const Tensor& dst, const Tensor& src);
// dst += src, where src broadcasts to dst's shape.
void add_into(const Tensor& dst, const Tensor& src);

}  // namespace ember::detail

namespace ember::detail {

// out = f(a) elementwise; out is a new contiguous tensor of a's shape.
template <typename F>
Tensor map_unary(const Tensor& a, F f) {
  Tensor out = empty(a.shape());
  float* po = out.data();
  const float* pa = a.data();
  for_each_run<2>(a.shape(), {out.strides(), a.strides()},
                  [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                    float* o = po + off[0];
                    const float* x = pa + off[1];
                    if (st[1] == 1)
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i]);
                    else
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i * st[1]]);
                  });
  return out;
}

// out = f(a, b) with broadcasting; `op` names the caller in shape errors.
template <typename F>
Tensor map_binary(const char* op, const Tensor& a, const Tensor& b, F f) {
  const Shape s = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor out = empty(s);
  float* po = out.data();
  const float *pa = a.data(), *pb = b.data();
  for_each_run<3>(s, {out.strides(), broadcast_strides(a, s), broadcast_strides(b, s)},
                  [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
                    float* o = po + off[0];
                    const float *x = pa + off[1], *y = pb + off[2];
                    if (st[1] == 1 && st[2] == 1) {
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
                    } else if (st[1] == 1 && st[2] == 0) {
                      const float yv = *y;
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
                    } else if (st[1] == 0 && st[2] == 1) {
                      const float xv = *x;
                      for (int64_t i = 0; i < n; ++i) o[i] = f(xv, y[i]);
                    } else {
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i * st[1]], y[i * st[2]]);
                    }
                  });
  return out;
}

}  // namespace ember::detail
