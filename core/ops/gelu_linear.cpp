// gelu_linear(u, W, b) = linear(gelu(u), W, b), the second half of the
// transformer MLP, without keeping gelu(u): backward recomputes it from u.
// For a GPT that is 4C floats per token per layer not held between forward
// and backward (25 MB a layer at C = 384, 4096 tokens) for one extra
// elementwise pass.
#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops/gelu.h"
#include "core/ops/strided.h"

namespace ember {
namespace {

Tensor gelu_of(const Tensor& u, GeluApprox approx) {
  NoGradGuard no_grad;
  return gelu(u, approx);
}

// h = gelu(u) and, in the same pass, gh *= gelu'(u) (gh becomes du): the
// two share their exp and division. u and gh are contiguous, same shape.
Tensor gelu_and_grad_into(const Tensor& u, Tensor& gh, GeluApprox approx) {
  Tensor h = empty(u.shape());
  const float* pu = u.data();
  float *ph = h.data(), *pg = gh.data();
  const int64_t n = u.numel();
  if (approx == GeluApprox::Tanh) {
    for (int64_t i = 0; i < n; ++i) {
      float d;
      detail::gelu_tanh_both(pu[i], ph[i], d);
      pg[i] *= d;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      float d;
      detail::gelu_exact_both(pu[i], ph[i], d);
      pg[i] *= d;
    }
  }
  return h;
}

// With h = gelu(u) and y = h W^T + b over rows R:
//   dW = dy^T h,  db = sum over rows of dy,  du = (dy W) * gelu'(u).
struct GeluLinearArgs {
  GeluApprox approx;
};
void gelu_linear_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const Tensor &u = n.inputs[0], &w = n.inputs[1];
  const GeluApprox approx = n.args<GeluLinearArgs>().approx;
  const int64_t out_f = w.size(0), in = w.size(1), R = u.numel() / in;
  const Tensor g2 = g.reshape({R, out_f});
  if (n.needs_grad(2)) gi[2] = sum(g2, {0});
  if (n.needs_grad(0) && n.needs_grad(1) && u.is_contiguous()) {  // the training step: one pass over u
    Tensor gu = matmul(g2, w);
    const Tensor h = gelu_and_grad_into(u, gu, approx);
    gi[1] = matmul(g2.transpose(0, 1), h.reshape({R, in}));
    gi[0] = gu.view(u.shape());
    return;
  }
  if (n.needs_grad(1)) gi[1] = matmul(g2.transpose(0, 1), gelu_of(u, approx).reshape({R, in}));
  if (n.needs_grad(0)) {
    const Tensor gh = matmul(g2, w).view(u.shape());
    gi[0] =
        approx == GeluApprox::Tanh
            ? detail::map_binary("gelu_linear", gh, u, [](float d, float x) { return d * detail::gelu_tanh_grad(x); })
            : detail::map_binary("gelu_linear", gh, u, [](float d, float x) { return d * detail::gelu_exact_grad(x); });
  }
}

}  // namespace

Tensor gelu_linear(const Tensor& u, const Tensor& weight, const Tensor& bias, GeluApprox approx) {
  Tensor out;
  {
    NoGradGuard no_grad;  // linear checks the shapes and names them in its errors
    out = linear(gelu(u, approx), weight, bias);
  }
  if (Node* n = record(out, "gelu_linear", EMBER_BACKWARD(gelu_linear_backward), {u, weight, bias}))
    n->set_args(GeluLinearArgs{.approx = approx});
  return out;
}

}  // namespace ember
