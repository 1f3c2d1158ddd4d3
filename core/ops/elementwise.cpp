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

void neg_backward(Node&, const Tensor& g, std::vector<Tensor>& gi) { gi[0] = neg(g); }

// Scalar forms: a + s and a - s pass the gradient through, s - a negates it.
void add_scalar_backward(Node&, const Tensor& g, std::vector<Tensor>& gi) { gi[0] = g; }
void sub_scalar_backward(Node&, const Tensor& g, std::vector<Tensor>& gi) { gi[0] = g; }
void rsub_scalar_backward(Node&, const Tensor& g, std::vector<Tensor>& gi) { gi[0] = neg(g); }

struct MulScalarArgs {
  float s;
};
void mul_scalar_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const float s = n.args<MulScalarArgs>().s;
  gi[0] = map_unary(g, [s](float x) { return x * s; });
}

// d(a/s)/da = 1/s, rounded to float once in forward.
struct DivScalarArgs {
  float inv_s;
};
void div_scalar_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const float inv_s = n.args<DivScalarArgs>().inv_s;
  gi[0] = map_unary(g, [inv_s](float x) { return x * inv_s; });
}

// d(s/a)/da = -s/a^2
struct RdivScalarArgs {
  float s;
};
void rdiv_scalar_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const float s = n.args<RdivScalarArgs>().s;
  gi[0] = map_binary("rdiv", g, in0(n), [s](float x, float a) { return -x * s / (a * a); });
}

// `values` says whether the backward reads the inputs (mul, div) or only their shapes (add, sub).
Tensor binary(const char* op, Backward backward, InputValues values, const Tensor& a, const Tensor& b, auto f) {
  Tensor out = map_binary(op, a, b, f);
  record(out, op, backward, {a, b}, values);
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return binary("add", EMBER_BACKWARD(add_backward), InputValues::Unused, a, b, [](float x, float y) { return x + y; });
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary("sub", EMBER_BACKWARD(sub_backward), InputValues::Unused, a, b, [](float x, float y) { return x - y; });
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary("mul", EMBER_BACKWARD(mul_backward), InputValues::Used, a, b, [](float x, float y) { return x * y; });
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary("div", EMBER_BACKWARD(div_backward), InputValues::Used, a, b, [](float x, float y) { return x / y; });
}

Tensor add(const Tensor& a, float s) {
  Tensor out = map_unary(a, [s](float x) { return x + s; });
  record(out, "add_scalar", EMBER_BACKWARD(add_scalar_backward), {a}, InputValues::Unused);
  return out;
}
Tensor sub(const Tensor& a, float s) {
  Tensor out = map_unary(a, [s](float x) { return x - s; });
  record(out, "sub_scalar", EMBER_BACKWARD(sub_scalar_backward), {a}, InputValues::Unused);
  return out;
}
Tensor mul(const Tensor& a, float s) {
  Tensor out = map_unary(a, [s](float x) { return x * s; });
  if (Node* n = record(out, "mul_scalar", EMBER_BACKWARD(mul_scalar_backward), {a}, InputValues::Unused))
    n->set_args(MulScalarArgs{.s = s});
  return out;
}
Tensor div(const Tensor& a, float s) {
  // Multiplying by 1/s would differ from PyTorch's a / s in the last bit.
  Tensor out = map_unary(a, [s](float x) { return x / s; });
  if (Node* n = record(out, "div_scalar", EMBER_BACKWARD(div_scalar_backward), {a}, InputValues::Unused))
    n->set_args(DivScalarArgs{.inv_s = 1.0f / s});
  return out;
}
Tensor rsub(float s, const Tensor& a) {
  Tensor out = map_unary(a, [s](float x) { return s - x; });
  record(out, "rsub_scalar", EMBER_BACKWARD(rsub_scalar_backward), {a}, InputValues::Unused);
  return out;
}
Tensor rdiv(float s, const Tensor& a) {
  Tensor out = map_unary(a, [s](float x) { return s / x; });
  if (Node* n = record(out, "rdiv_scalar", EMBER_BACKWARD(rdiv_scalar_backward), {a}))
    n->set_args(RdivScalarArgs{.s = s});
  return out;
}
Tensor neg(const Tensor& a) {
  Tensor out = map_unary(a, [](float x) { return -x; });
  record(out, "neg", EMBER_BACKWARD(neg_backward), {a}, InputValues::Unused);
  return out;
}

}  // namespace ember
