// View ops (share storage, record a node that maps the gradient back),
// contiguous/clone (copies), and cat/stack.
#include <fmt/ranges.h>

#include <numeric>
#include <optional>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops/strided.h"

namespace ember {
namespace {

Tensor make_view(const Tensor& base, Shape shape, Strides strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl()->storage;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  return Tensor(std::move(impl));
}

// Strides that let `shape` view memory laid out as (old_shape, old_strides),
// or nothing when the layout cannot be viewed that way without a copy. Each
// maximal run of old dims that is contiguous within itself must map onto a
// run of new dims with the same number of elements.
std::optional<Strides> view_strides(const Shape& old_shape, const Strides& old_strides, const Shape& shape) {
  if (numel_of(shape) == 0 || old_shape.empty()) return contiguous_strides(shape);
  Strides strides(shape.size());
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_stride = old_strides.back(), tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    const bool chunk_ends = d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
      strides[view_d] = view_numel * chunk_stride;
      view_numel *= shape[view_d--];
    }
    if (view_numel != tensor_numel) return std::nullopt;
    if (d > 0) {
      chunk_stride = old_strides[d - 1];
      tensor_numel = view_numel = 1;
    }
  }
  if (view_d != -1) return std::nullopt;
  return strides;
}

// Resolves one -1 in `shape` and checks the element count.
Shape infer_shape(const char* op, const Shape& from, Shape shape) {
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      EMBER_CHECK(infer_at < 0, "{}: only one dim can be -1 in {}", op, shape_str(shape));
      infer_at = static_cast<int64_t>(i);
    } else {
      EMBER_CHECK(shape[i] >= 0, "{}: invalid size {} in {}", op, shape[i], shape_str(shape));
      known *= shape[i];
    }
  }
  const int64_t n = numel_of(from);
  if (infer_at >= 0) {
    EMBER_CHECK(known != 0 && n % known == 0, "{}: cannot infer the -1 in {} for {} elements of shape {}", op,
                shape_str(shape), n, shape_str(from));
    shape[infer_at] = n / known;
  }
  EMBER_CHECK(numel_of(shape) == n, "{}: shape {} has {} elements but the tensor of shape {} has {}", op,
              shape_str(shape), numel_of(shape), shape_str(from), n);
  return shape;
}

// view, unsqueeze and squeeze keep the elements and their order: the gradient
// only takes the input's shape back.
void view_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) { gi[0] = g.reshape(n.inputs[0].shape()); }
void unsqueeze_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) { gi[0] = g.reshape(n.inputs[0].shape()); }
void squeeze_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) { gi[0] = g.reshape(n.inputs[0].shape()); }

// Swapping the same two dims again undoes a transpose.
struct TransposeArgs {
  int64_t dim0, dim1;  // wrapped (non-negative)
};
void transpose_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const auto& a = n.args<TransposeArgs>();
  gi[0] = g.transpose(a.dim0, a.dim1);
}

// Output dim i is input dim order[i], so the inverse permutation sends it back.
struct PermuteArgs {
  Shape order;  // wrapped (non-negative)
};
void permute_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const Shape& order = n.args<PermuteArgs>().order;
  Shape inverse(order.size());
  for (size_t i = 0; i < order.size(); ++i) inverse[order[i]] = static_cast<int64_t>(i);
  gi[0] = g.permute(inverse);
}

// The slice's gradient lands in the same slice of a zero tensor (the length is g's size).
struct NarrowArgs {
  int64_t dim, start;  // dim wrapped (non-negative)
};
void narrow_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const auto& a = n.args<NarrowArgs>();
  gi[0] = zeros(n.inputs[0].shape());
  detail::copy_into(gi[0].narrow(a.dim, a.start, g.size(a.dim)), g);
}

void expand_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) { gi[0] = sum_to(g, n.inputs[0].shape()); }
void clone_backward(Node&, const Tensor& g, std::vector<Tensor>& gi) { gi[0] = g; }

}  // namespace

Tensor Tensor::view(const Shape& shape_in) const {
  const Shape s = infer_shape("view", shape(), shape_in);
  auto strides_for_view = view_strides(shape(), strides(), s);
  EMBER_CHECK(strides_for_view.has_value(),
              "view: a tensor of shape {} with strides {} cannot be viewed as {} without a copy; use reshape()",
              shape_str(shape()), shape_str(strides()), shape_str(s));
  Tensor out = make_view(*this, s, *strides_for_view, offset());
  record(out, "view", EMBER_BACKWARD(view_backward), {*this});
  return out;
}

Tensor Tensor::reshape(const Shape& shape_in) const {
  const Shape s = infer_shape("reshape", shape(), shape_in);
  if (view_strides(shape(), strides(), s)) return view(s);
  return contiguous().view(s);
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  d0 = wrap_dim(d0, dim(), "transpose");
  d1 = wrap_dim(d1, dim(), "transpose");
  Shape s = shape();
  Strides st = strides();
  std::swap(s[d0], s[d1]);
  std::swap(st[d0], st[d1]);
  Tensor out = make_view(*this, s, st, offset());
  if (Node* n = record(out, "transpose", EMBER_BACKWARD(transpose_backward), {*this}))
    n->set_args(TransposeArgs{.dim0 = d0, .dim1 = d1});
  return out;
}

Tensor Tensor::permute(const Shape& order) const {
  EMBER_CHECK(static_cast<int64_t>(order.size()) == dim(), "permute: order {} has {} dims but the tensor has {}",
              shape_str(order), order.size(), dim());
  Shape s(order.size()), st(order.size()), wrapped(order.size());
  std::vector<bool> seen(order.size(), false);
  for (size_t i = 0; i < order.size(); ++i) {
    wrapped[i] = wrap_dim(order[i], dim(), "permute");
    EMBER_CHECK(!seen[wrapped[i]], "permute: dim {} appears twice in {}", order[i], shape_str(order));
    seen[wrapped[i]] = true;
    s[i] = shape()[wrapped[i]];
    st[i] = strides()[wrapped[i]];
  }
  Tensor out = make_view(*this, s, st, offset());
  if (Node* n = record(out, "permute", EMBER_BACKWARD(permute_backward), {*this}))
    n->set_args(PermuteArgs{.order = std::move(wrapped)});
  return out;
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  EMBER_CHECK(start >= 0 && length >= 0 && start + length <= shape()[d],
              "narrow: start {} + length {} exceeds size {} of dim {} (shape {})", start, length, shape()[d], d,
              shape_str(shape()));
  Shape s = shape();
  s[d] = length;
  Tensor out = make_view(*this, s, strides(), offset() + start * strides()[d]);
  if (Node* n = record(out, "narrow", EMBER_BACKWARD(narrow_backward), {*this}))
    n->set_args(NarrowArgs{.dim = d, .start = start});
  return out;
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = shape();
  Strides st = strides();
  const int64_t stride = d < dim() ? st[d] * s[d] : 1;
  s.insert(s.begin() + d, 1);
  st.insert(st.begin() + d, stride);
  Tensor out = make_view(*this, s, st, offset());
  record(out, "unsqueeze", EMBER_BACKWARD(unsqueeze_backward), {*this});
  return out;
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  if (shape()[d] != 1) return *this;  // as PyTorch: squeezing a dim whose size is not 1 does nothing
  Shape s = shape();
  Strides st = strides();
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  Tensor out = make_view(*this, s, st, offset());
  record(out, "squeeze", EMBER_BACKWARD(squeeze_backward), {*this});
  return out;
}

Tensor Tensor::expand(const Shape& shape_in) const {
  EMBER_CHECK(shape_in.size() >= shape().size(), "expand: target {} has fewer dims than the tensor's shape {}",
              shape_str(shape_in), shape_str(shape()));
  Shape s = shape_in;
  const size_t lead = s.size() - shape().size();
  for (size_t i = 0; i < s.size(); ++i) {
    const int64_t have = i < lead ? 1 : shape()[i - lead];
    if (s[i] == -1 && i >= lead) s[i] = have;
    EMBER_CHECK(have == s[i] || have == 1, "expand: cannot expand shape {} to {} (dim {}: {} is neither {} nor 1)",
                shape_str(shape()), shape_str(shape_in), i, have, s[i]);
  }
  Tensor out = make_view(*this, s, detail::broadcast_strides(*this, s), offset());
  record(out, "expand", EMBER_BACKWARD(expand_backward), {*this});
  return out;
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape());
  detail::copy_into(out, *this);
  record(out, "clone", EMBER_BACKWARD(clone_backward), {*this});
  return out;
}

namespace {

// Each input's gradient is its own slice of g along the cat dim.
struct CatArgs {
  int64_t dim;  // wrapped (non-negative)
};
void cat_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const int64_t dim = n.args<CatArgs>().dim;
  int64_t start = 0;
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    const int64_t len = n.inputs[i].size(dim);
    if (n.needs_grad(i)) gi[i] = g.narrow(dim, start, len);
    start += len;
  }
}

}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  EMBER_CHECK(!tensors.empty(), "cat: needs at least one tensor");
  const Shape& first = tensors[0].shape();
  dim = wrap_dim(dim, static_cast<int64_t>(first.size()), "cat");
  Shape s = first;
  s[dim] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    Shape a = tensors[i].shape(), b = first;
    EMBER_CHECK(a.size() == b.size(), "cat: tensor {} has shape {} but tensor 0 has {} (dims differ)", i, shape_str(a),
                shape_str(b));
    a[dim] = b[dim] = 0;
    EMBER_CHECK(a == b, "cat: tensor {} has shape {} but tensor 0 has {} (all sizes but dim {} must match)", i,
                shape_str(tensors[i].shape()), shape_str(first), dim);
    s[dim] += tensors[i].size(dim);
  }
  Tensor out = empty(s);
  int64_t start = 0;
  for (const Tensor& t : tensors) {
    const Tensor slice = make_view(out, out.shape(), out.strides(), out.offset()).narrow(dim, start, t.size(dim));
    detail::copy_into(slice, t);
    start += t.size(dim);
  }
  if (Node* n = record(out, "cat", EMBER_BACKWARD(cat_backward), tensors)) n->set_args(CatArgs{.dim = dim});
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  EMBER_CHECK(!tensors.empty(), "stack: needs at least one tensor");
  dim = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  for (size_t i = 0; i < tensors.size(); ++i) {
    EMBER_CHECK(tensors[i].shape() == tensors[0].shape(), "stack: tensor {} has shape {} but tensor 0 has {}", i,
                shape_str(tensors[i].shape()), shape_str(tensors[0].shape()));
    parts.push_back(tensors[i].unsqueeze(dim));
  }
  return cat(parts, dim);
}

}  // namespace ember
