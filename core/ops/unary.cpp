// Pointwise functions: pow (scalar exponent), exp, log, sqrt, tanh, relu and
// gelu (exact erf form and the tanh approximation GPT-2 used).
#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops/gelu.h"
#include "core/ops/strided.h"

namespace ember {
namespace {

using detail::map_binary;
using detail::map_unary;

// Backward functions get the input as inputs[0] and, where cheaper, the
// output as saved[0] (detached, so the node does not own its own output).
// d(x^p)/dx = p x^(p-1); for p = 0 the output is constant, and the formula
// would give 0 * inf = NaN at x = 0 where PyTorch gives 0.
struct PowArgs {
  float p;  // the exponent
};
void pow_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const float p = n.args<PowArgs>().p;
  if (p == 0.0f) {
    gi[0] = zeros(n.inputs[0].shape());
    return;
  }
  gi[0] = map_binary("pow", g, n.inputs[0], [p](float gv, float x) { return gv * p * std::pow(x, p - 1.0f); });
}
void exp_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  gi[0] = map_binary("exp", g, n.saved[0], [](float gv, float y) { return gv * y; });
}
void log_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  gi[0] = map_binary("log", g, n.inputs[0], [](float gv, float x) { return gv / x; });
}
void sqrt_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  gi[0] = map_binary("sqrt", g, n.saved[0], [](float gv, float y) { return gv * 0.5f / y; });
}
void tanh_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  gi[0] = map_binary("tanh", g, n.saved[0], [](float gv, float y) { return gv * (1.0f - y * y); });
}
void relu_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  gi[0] = map_binary("relu", g, n.inputs[0], [](float gv, float x) { return x > 0.0f ? gv : 0.0f; });
}

struct GeluArgs {
  GeluApprox approx;
};
void gelu_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  if (n.args<GeluArgs>().approx == GeluApprox::Tanh)
    gi[0] = map_binary("gelu", g, n.inputs[0], [](float gv, float x) { return gv * detail::gelu_tanh_grad(x); });
  else
    gi[0] = map_binary("gelu", g, n.inputs[0], [](float gv, float x) { return gv * detail::gelu_exact_grad(x); });
}

// Records `op` on out; `keep_output` saves a detached handle to the result.
Tensor finish(Tensor out, const char* op, Backward backward, const Tensor& a, bool keep_output) {
  if (Node* n = record(out, op, backward, {a}); n && keep_output) n->saved = {out.detach()};
  return out;
}

}  // namespace

Tensor pow(const Tensor& a, float p) {
  Tensor out = map_unary(a, [p](float x) { return std::pow(x, p); });
  if (Node* n = record(out, "pow", EMBER_BACKWARD(pow_backward), {a})) n->set_args(PowArgs{.p = p});
  return out;
}
Tensor exp(const Tensor& a) {
  return finish(map_unary(a, [](float x) { return std::exp(x); }), "exp", EMBER_BACKWARD(exp_backward), a, true);
}
Tensor log(const Tensor& a) {
  return finish(map_unary(a, [](float x) { return std::log(x); }), "log", EMBER_BACKWARD(log_backward), a, false);
}
Tensor sqrt(const Tensor& a) {
  return finish(map_unary(a, [](float x) { return std::sqrt(x); }), "sqrt", EMBER_BACKWARD(sqrt_backward), a, true);
}
Tensor tanh(const Tensor& a) {
  return finish(map_unary(a, [](float x) { return std::tanh(x); }), "tanh", EMBER_BACKWARD(tanh_backward), a, true);
}
Tensor relu(const Tensor& a) {
  return finish(map_unary(a, [](float x) { return x > 0.0f ? x : 0.0f; }), "relu", EMBER_BACKWARD(relu_backward), a,
                false);
}
Tensor gelu(const Tensor& a, GeluApprox approx) {
  // Lambdas, not function pointers, so the kernel inlines and vectorises.
  Tensor out = approx == GeluApprox::Tanh ? map_unary(a, [](float x) { return detail::gelu_tanh(x); })
                                          : map_unary(a, [](float x) { return detail::gelu_exact(x); });
  if (Node* n = record(out, "gelu", EMBER_BACKWARD(gelu_backward), {a})) n->set_args(GeluArgs{.approx = approx});
  return out;
}

}  // namespace ember
