// The strided copy and accumulate kernels shared by views, broadcasting and
// the autograd engine.
#include "core/ops/strided.h"

namespace ember::detail {

Strides broadcast_strides(const Tensor& t, const Shape& out) {
  Strides s(out.size(), 0);
  const size_t lead = out.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i)
    s[lead + i] = t.shape()[i] == 1 && out[lead + i] != 1 ? 0 : t.strides()[i];
  return s;
}

void copy_into(const Tensor& dst, const Tensor& src) {
  float* d = dst.data();
  const float* s = src.data();
  for_each_run<2>(dst.shape(), {dst.strides(), broadcast_strides(src, dst.shape())},
                  [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                    float* o = d + off[0];
                    const float* in = s + off[1];
                    if (st[0] == 1 && st[1] == 1)
                      std::copy(in, in + n, o);
                    else
                      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = in[i * st[1]];
                  });
}

void add_into(const Tensor& dst, const Tensor& src) {
  float* d = dst.data();
  const float* s = src.data();
  for_each_run<2>(dst.shape(), {dst.strides(), broadcast_strides(src, dst.shape())},
                  [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                    float* o = d + off[0];
                    const float* in = s + off[1];
                    if (st[0] == 1 && st[1] == 1)
                      for (int64_t i = 0; i < n; ++i) o[i] += in[i];
                    else
                      for (int64_t i = 0; i < n; ++i) o[i * st[0]] += in[i * st[1]];
                  });
}

}  // namespace ember::detail
