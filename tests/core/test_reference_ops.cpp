// softmax, log_softmax, cross_entropy, layer_norm and gelu against PyTorch's
// golden values in tests/reference/data/ops.safetensors (made by
// tests/reference/generate.py; see tests/reference/README.md): outputs, and
// gradients of sum(out * gout), or of the loss itself for cross_entropy.
#include <string>

#include "tests/core/test_helpers.h"
#include "train/safetensors.h"

using namespace ember;
using ember::testing::check_values;

namespace {

const SafetensorsFile& ops_file() {
  static const SafetensorsFile f = load_safetensors("tests/reference/data/ops.safetensors");
  return f;
}

// A fresh leaf holding the golden tensor's values.
Tensor golden_leaf(const std::string& name) {
  Tensor t = ops_file().tensor(name).clone().detach();
  t.requires_grad_();
  return t;
}

const Tensor& golden(const std::string& name) { return ops_file().tensor(name); }

// Checks fn's output and input gradient against <prefix>{out, grad_x}, for input <prefix>x.
template <typename Fn>
void check_unary_case(const std::string& prefix, Fn fn, float tol) {
  CAPTURE(prefix);
  Tensor x = golden_leaf(prefix + "x");
  const Tensor out = fn(x);
  REQUIRE(out.shape() == golden(prefix + "out").shape());
  check_values(out, golden(prefix + "out").to_vector(), tol);
  out.backward(golden(prefix + "gout"));
  check_values(x.grad(), golden(prefix + "grad_x").to_vector(), tol);
}

}  // namespace

// Tolerances: the inputs are N(0, 1) (logits 2 N(0, 1)); PyTorch and ember
// round the same formulas in a different order, and ember's exp is within
// 1.5 ulp, so values of magnitude up to ~10 agree to a few float32 ulps,
// under 1e-5. GELU's erf and tanh come from the same libm, hence 1e-6.

TEST_CASE("softmax and log_softmax: match PyTorch on the last dim and on dim 1") {
  for (const char* c : {"last", "dim1"}) {
    const int64_t dim = std::string(c) == "last" ? -1 : 1;
    check_unary_case(
        std::string("softmax.") + c + ".", [dim](const Tensor& x) { return softmax(x, dim); }, 1e-6f);
    check_unary_case(
        std::string("log_softmax.") + c + ".", [dim](const Tensor& x) { return log_softmax(x, dim); }, 1e-5f);
  }
}

TEST_CASE("cross_entropy: matches PyTorch for [N, V] and [B, T, V] with ignored targets") {
  for (const char* c : {"cross_entropy.flat.", "cross_entropy.btv."}) {
    CAPTURE(c);
    const std::string p = c;
    Tensor logits = golden_leaf(p + "logits");
    const Tensor loss = cross_entropy(logits, ops_file().ints(p + "targets"), -1);
    CHECK(loss.item() == doctest::Approx(golden(p + "loss").item()).epsilon(1e-6));
    loss.backward();
    check_values(logits.grad(), golden(p + "grad_logits").to_vector(), 1e-6f);  // grads are <= 1/count
  }
}

TEST_CASE("layer_norm: matches PyTorch for the output and the x, weight and bias gradients") {
  const std::string p = "layer_norm.last.";
  Tensor x = golden_leaf(p + "x"), w = golden_leaf(p + "weight"), b = golden_leaf(p + "bias");
  const Tensor out = layer_norm(x, w, b, 1e-5f);
  check_values(out, golden(p + "out").to_vector(), 1e-5f);
  out.backward(golden(p + "gout"));
  check_values(x.grad(), golden(p + "grad_x").to_vector(), 1e-5f);
  check_values(w.grad(), golden(p + "grad_weight").to_vector(), 1e-5f);
  check_values(b.grad(), golden(p + "grad_bias").to_vector(), 1e-5f);
}

TEST_CASE("gelu: exact and tanh forms match PyTorch, including x = 0 and the tails at +-6") {
  check_unary_case(
      "gelu.erf.", [](const Tensor& x) { return gelu(x, GeluApprox::None); }, 1e-6f);
  check_unary_case(
      "gelu.tanh.", [](const Tensor& x) { return gelu(x, GeluApprox::Tanh); }, 1e-6f);
}
