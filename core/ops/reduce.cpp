// Reductions: sum, mean and max over dims (with keepdim), and sum_to, the
// backward of broadcasting. All run one strided loop in which the output has
// stride 0 along the reduced dims.
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops/strided.h"

namespace ember {
namespace {

// Sorted, unique, wrapped dims; an empty list means every dim.
std::vector<int64_t> reduced_dims(const char* op, const Tensor& a, const std::vector<int64_t>& dims) {
  std::vector<bool> reduce(a.dim(), dims.empty());
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, a.dim(), op);
    EMBER_CHECK(!reduce[w], "{}: dim {} appears twice in [{}]", op, d, fmt::join(dims, ", "));
    reduce[w] = true;
  }
  std::vector<int64_t> out;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (reduce[d]) out.push_back(d);
  return out;
}

Shape keepdim_shape(const Shape& s, const std::vector<int64_t>& dims) {
  Shape out = s;
  for (int64_t d : dims) out[d] = 1;
  return out;
}

Shape dropped_shape(const Shape& s, const std::vector<int64_t>& dims) {
  Shape out;
  for (size_t d = 0; d < s.size(); ++d)
    if (std::find(dims.begin(), dims.end(), static_cast<int64_t>(d)) == dims.end()) out.push_back(s[d]);
  return out;
}

// out (keepdim shape, zeroed) += a, summing along the dims where out has size 1.
// Runs along a reduced dim accumulate in double, which keeps long sums exact to float precision.
void sum_kernel(const Tensor& out, const Tensor& a) {
  float* po = out.data();
  const float* pa = a.data();
  detail::for_each_run<2>(a.shape(), {detail::broadcast_strides(out, a.shape()), a.strides()},
                          [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                            float* o = po + off[0];
                            const float* x = pa + off[1];
                            if (st[0] == 0) {
                              double acc = 0.0;
                              for (int64_t i = 0; i < n; ++i) acc += x[i * st[1]];
                              *o += static_cast<float>(acc);
                            } else {
                              for (int64_t i = 0; i < n; ++i) o[i * st[0]] += x[i * st[1]];
                            }
                          });
}

// Every input element feeds one output element with weight 1 (sum) or
// 1/count (mean): g, viewed with the reduced dims as size 1, broadcasts back.
struct SumArgs {
  Shape keepdim_shape;  // the input's shape with the reduced dims set to 1
};
void sum_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  gi[0] = g.reshape(n.args<SumArgs>().keepdim_shape).expand(n.inputs[0].shape()).contiguous();
}

struct MeanArgs {
  Shape keepdim_shape;  // as SumArgs
  float inv_count;      // 1 / (input elements per output element)
};
void mean_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const auto& a = n.args<MeanArgs>();
  gi[0] = mul(g.reshape(a.keepdim_shape).expand(n.inputs[0].shape()).contiguous(), a.inv_count);
}

// Only the (first) maximum of each group receives its output's gradient.
struct MaxArgs {
  IntTensor argmax;  // per output element: the offset of its maximum in the contiguous input
};
void max_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const IntTensor& argmax = n.args<MaxArgs>().argmax;
  gi[0] = zeros(n.inputs[0].shape());
  const Tensor gc = g.contiguous();
  for (int64_t i = 0; i < argmax.numel(); ++i) gi[0].data()[argmax.data[i]] += gc.data()[i];
}

Tensor reduce_sum(const char* op, const Tensor& a, const std::vector<int64_t>& dims_in, bool keepdim, bool average) {
  const std::vector<int64_t> dims = reduced_dims(op, a, dims_in);
  const Shape keep = keepdim_shape(a.shape(), dims);
  Tensor out = zeros(keep);
  sum_kernel(out, a);
  const int64_t count = numel_of(a.shape()) / std::max<int64_t>(numel_of(keep), 1);
  if (average) {
    const float inv = 1.0f / static_cast<float>(count);
    for (int64_t i = 0; i < out.numel(); ++i) out.data()[i] *= inv;
  }
  if (!keepdim) out = Tensor(out).view(dropped_shape(a.shape(), dims));
  if (!average) {
    if (Node* n = record(out, op, EMBER_BACKWARD(sum_backward), {a}, InputValues::Unused))
      n->set_args(SumArgs{.keepdim_shape = keep});
  } else if (Node* n = record(out, op, EMBER_BACKWARD(mean_backward), {a}, InputValues::Unused)) {
    n->set_args(MeanArgs{.keepdim_shape = keep, .inv_count = static_cast<float>(1.0 / static_cast<double>(count))});
  }
  return out;
}

}  // namespace

Tensor sum(const Tensor& a) { return reduce_sum("sum", a, {}, false, false); }
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  EMBER_CHECK(!dims.empty(), "sum: empty dim list (call sum(t) to reduce every dim)");
  return reduce_sum("sum", a, dims, keepdim, false);
}
Tensor mean(const Tensor& a) { return reduce_sum("mean", a, {}, false, true); }
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  EMBER_CHECK(!dims.empty(), "mean: empty dim list (call mean(t) to reduce every dim)");
  return reduce_sum("mean", a, dims, keepdim, true);
}

Tensor max(const Tensor& a, const std::vector<int64_t>& dims_in, bool keepdim) {
  EMBER_CHECK(!dims_in.empty(), "max: empty dim list");
  const std::vector<int64_t> dims = reduced_dims("max", a, dims_in);
  for (int64_t d : dims)
    EMBER_CHECK(a.shape()[d] > 0, "max: cannot reduce dim {} of size 0 (shape {})", d, shape_str(a.shape()));
  const Shape keep = keepdim_shape(a.shape(), dims);
  const Tensor x = a.contiguous();
  Tensor out = full(keep, -std::numeric_limits<float>::infinity());
  IntTensor arg(keep, std::vector<int64_t>(numel_of(keep), -1));
  float* po = out.data();
  const float* px = x.data();
  // Row-major order visits each group's elements first to last, so a strict
  // comparison keeps the first maximum, as the gradient rule says.
  detail::for_each_run<2>(x.shape(), {detail::broadcast_strides(out, x.shape()), x.strides()},
                          [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                            for (int64_t i = 0; i < n; ++i) {
                              const int64_t o = off[0] + i * st[0], p = off[1] + i * st[1];
                              if (px[p] > po[o] || arg.data[o] < 0 || std::isnan(px[p])) {
                                if (arg.data[o] >= 0 && std::isnan(po[o])) continue;  // NaN wins and stays
                                po[o] = px[p];
                                arg.data[o] = p;
                              }
                            }
                          });
  if (!keepdim) out = out.view(dropped_shape(a.shape(), dims));
  if (Node* n = record(out, "max", EMBER_BACKWARD(max_backward), {a}, InputValues::Unused))
    n->set_args(MaxArgs{.argmax = std::move(arg)});
  return out;
}

Tensor sum_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  EMBER_CHECK(shape.size() <= a.shape().size(), "sum_to: cannot reduce shape {} to {} (more dims)",
              shape_str(a.shape()), shape_str(shape));
  const size_t lead = a.shape().size() - shape.size();
  std::vector<int64_t> dims;
  for (size_t d = 0; d < a.shape().size(); ++d) {
    if (d < lead) {
      dims.push_back(static_cast<int64_t>(d));
      continue;
    }
    const int64_t want = shape[d - lead];
    EMBER_CHECK(want == a.shape()[d] || want == 1, "sum_to: cannot reduce shape {} to {} (dim {}: {} vs {})",
                shape_str(a.shape()), shape_str(shape), d, a.shape()[d], want);
    if (want == 1 && a.shape()[d] != 1) dims.push_back(static_cast<int64_t>(d));
  }
  if (dims.empty()) return a.reshape(shape);
  return reduce_sum("sum", a, dims, true, false).reshape(shape);
}

}  // namespace ember
