// Broadcasting arithmetic: add, sub, mul, div, their scalar forms and neg.
// The backward of a broadcast input sums the gradient back to its shape.
#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops/strided.h"

namespace ember {
namespace {

using detail::map_binary;
using detail::map_unary;

const Tensor& in0(const Node& n) { return n.inputs[0]; }
const Tensor& in1(const Node& n) { return n.inputs[1]; }

void add_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  if (n.needs_grad(0)) gi[0] = sum_to(g, in0(n).shape());
  if (n.needs_grad(1)) gi[1] = sum_to(g, in1(n).shape());
}

void sub_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  if (n.needs_grad(0)) gi[0] = sum_to(g, in0(n).shape());
  if (n.needs_grad(1)) gi[1] = sum_to(neg(g), in1(n).shape());
}

void mul_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  if (n.needs_grad(0)) gi[0] = sum_to(mul(g, in1(n)), in0(n).shape());
  if (n.needs_grad(1)) gi[1] = sum_to(mul(g, in0(n)), in1(n).shape());
}

// d(a/b)/da = 1/b,  d(a/b)/db = -a/b^2.
void div_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  if (n.needs_grad(0)) gi[0] = sum_to(div(g, in1(n)), in0(n).shape());
  if (n.needs_grad(1)) {
    const Tensor g_times_a = map_binary("div", g, in0(n), [](float x, float y) { return x * y; });
    gi[1] = sum_to(map_binary("div", g_times_a, in1(n), [](float x, float b) { return -x / (b * b); }), in1(n).shape());
  }
}

void identity_backward(Node&, const Tensor& g, std::vector<Tensor>& gi) { gi[0] = g; }
void neg_backward(Node&, const Tensor& g, std::vector<Tensor>& gi) { gi[0] = neg(g); }
void scale_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const float s = static_cast<float>(n.reals[0]);
  gi[0] = map_unary(g, [s](float x) { return x * s; });
}
// d(s/a)/da = -s/a^2
void rdiv_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const float s = static_cast<float>(n.reals[0]);
  gi[0] = map_binary("rdiv", g, in0(n), [s](float x, float a) { return -x * s / (a * a); });
}

// `values` says whether the backward reads the inputs (mul, div) or only their shapes (add, sub).
Tensor binary(const char* op, BackwardFn backward, InputValues values, const Tensor& a, const Tensor& b, auto f) {
  Tensor out = map_binary(op, a, b, f);
  record(out, op, backward, {a, b}, values);
  return out;
}

Tensor scalar_op(const char* op, BackwardFn backward, InputValues values, const Tensor& a, float s, auto f) {
  Tensor out = map_unary(a, f);
  if (Node* n = record(out, op, backward, {a}, values)) n->reals = {s};
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return binary("add", add_backward, InputValues::Unused, a, b, [](float x, float y) { return x + y; });
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary("sub", sub_backward, InputValues::Unused, a, b, [](float x, float y) { return x - y; });
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary("mul", mul_backward, InputValues::Used, a, b, [](float x, float y) { return x * y; });
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary("div", div_backward, InputValues::Used, a, b, [](float x, float y) { return x / y; });
}

Tensor add(const Tensor& a, float s) {
  return scalar_op("add_scalar", identity_backward, InputValues::Unused, a, s, [s](float x) { return x + s; });
}
Tensor sub(const Tensor& a, float s) {
  return scalar_op("sub_scalar", identity_backward, InputValues::Unused, a, s, [s](float x) { return x - s; });
}
Tensor mul(const Tensor& a, float s) {
  return scalar_op("mul_scalar", scale_backward, InputValues::Unused, a, s, [s](float x) { return x * s; });
}
Tensor div(const Tensor& a, float s) {
  // Multiplying by 1/s would differ from PyTorch's a / s in the last bit.
  return scalar_op("div_scalar", scale_backward, InputValues::Unused, a, 1.0f / s, [s](float x) { return x / s; });
}
Tensor rsub(float s, const Tensor& a) {
  return scalar_op("rsub_scalar", neg_backward, InputValues::Unused, a, s, [s](float x) { return s - x; });
}
Tensor rdiv(float s, const Tensor& a) {
  return scalar_op("rdiv_scalar", rdiv_backward, InputValues::Used, a, s, [s](float x) { return s / x; });
}
Tensor neg(const Tensor& a) {
  Tensor out = map_unary(a, [](float x) { return -x; });
  record(out, "neg", neg_backward, {a}, InputValues::Unused);
  return out;
}

}  // namespace ember
