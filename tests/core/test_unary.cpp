// Pointwise functions: pow, exp, log, sqrt, tanh, relu and gelu (exact and
// tanh forms). Known values, finite-difference gradients with inputs kept in
// each function's domain, and the nodes' ownership and error behaviour.
#include <limits>

#include "tests/core/test_helpers.h"

using namespace ember;
using ember::testing::check_values;
using ember::testing::leaf;

namespace {

using Inputs = std::vector<Tensor>;

// A leaf with values in [low, high), for log and sqrt (positive) and fractional powers.
Tensor uniform_leaf(const Shape& shape, uint64_t seed, float low, float high) {
  Generator g(seed);
  Tensor t = rand(shape, &g) * (high - low) + low;
  t = t.detach();
  t.requires_grad_();
  return t;
}

// A leaf with |values| in [0.2, 1.2): relu's kink at 0 stays far outside the
// finite-difference step of 1e-3.
Tensor away_from_zero(const Shape& shape, uint64_t seed) {
  Generator g(seed);
  Tensor t = empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = (g.uniform() < 0.5f ? -1.0f : 1.0f) * (0.2f + g.uniform());
  t.requires_grad_();
  return t;
}

}  // namespace

// Expected values come from Python's math module in double precision, rounded to
// float; 1e-6 absolute allows one float32 ulp (2.4e-7 near 2) of libm error and rounding.
TEST_CASE("pow: forward matches known values for integer, fractional and negative exponents") {
  check_values(pow(tensor({3}, {1, 2, 3}), 2.0f), {1, 4, 9});
  check_values(pow(tensor({2}, {4, 9}), 0.5f), {2, 3});
  check_values(pow(tensor({2}, {2, -4}), -1.0f), {0.5f, -0.25f});
  check_values(pow(tensor({2}, {-2, 3}), 3.0f), {-8, 27});
  check_values(pow(tensor({2}, {0, 5}), 0.0f), {1, 1});
}

TEST_CASE("exp, log, sqrt, tanh: forwards match known values") {
  check_values(exp(tensor({3}, {0, 1, -1})), {1, 2.7182817f, 0.36787945f});
  check_values(log(tensor({3}, {1, 2.7182817f, 0.5f})), {0, 1, -0.6931472f});
  CHECK(log(tensor({1}, {0})).item() == -std::numeric_limits<float>::infinity());
  check_values(sqrt(tensor({3}, {0, 4, 2})), {0, 2, 1.4142135f});
  check_values(tanh(tensor({4}, {0, 1, -0.5f, 20})), {0, 0.7615942f, -0.46211716f, 1});
}

TEST_CASE("relu: forward zeroes negatives and keeps positives") {
  check_values(relu(tensor({5}, {-1, 0, 2.5f, -0.001f, 3})), {0, 0, 2.5f, 0, 3});
}

TEST_CASE("gelu: exact and tanh forms match known values") {
  // gelu(1) = Phi(1) = 0.8413447; the tanh form gives 0.8411920 (GPT-2's approximation).
  check_values(gelu(tensor({4}, {0, 1, -1, 2})), {0, 0.8413447f, -0.1586553f, 1.9544997f});
  check_values(gelu(tensor({4}, {0, 1, -1, 2}), GeluApprox::None), {0, 0.8413447f, -0.1586553f, 1.9544997f});
  check_values(gelu(tensor({4}, {0, 1, -1, 2}), GeluApprox::Tanh), {0, 0.8411920f, -0.1588080f, 1.9545977f});
  // The two forms differ by about 1.5e-4 at 1: the test above could not pass with the wrong form.
  CHECK(gelu(scalar_tensor(1.0f)).item() != gelu(scalar_tensor(1.0f), GeluApprox::Tanh).item());
}

TEST_CASE("unary: forwards read non-contiguous inputs correctly") {
  const Tensor t = tensor({2, 3}, {0, 1, 4, 9, 16, 25}).transpose(0, 1);  // [[0, 9], [1, 16], [4, 25]]
  REQUIRE_FALSE(t.is_contiguous());
  check_values(sqrt(t), {0, 3, 1, 4, 2, 5});
  check_values(relu(t - 5.0f), {0, 4, 0, 11, 0, 20});
  check_values(pow(t, 0.5f), {0, 3, 1, 4, 2, 5});
}

TEST_CASE("pow: backward matches finite differences") {
  CHECK_GRADCHECK(
      "pow", [](const Inputs& x) { return pow(x[0], 2.0f); }, (Inputs{leaf({2, 3}, 1)}));
  CHECK_GRADCHECK(
      "pow", [](const Inputs& x) { return pow(x[0], 3.0f); }, (Inputs{leaf({2, 3}, 2)}));
  CHECK_GRADCHECK(
      "pow", [](const Inputs& x) { return pow(x[0], 0.5f); }, (Inputs{uniform_leaf({2, 3}, 3, 0.5f, 2)}));
  CHECK_GRADCHECK(
      "pow", [](const Inputs& x) { return pow(x[0], -1.5f); }, (Inputs{uniform_leaf({2, 3}, 4, 0.5f, 2)}));
  CHECK_GRADCHECK(
      "pow", [](const Inputs& x) { return pow(x[0].transpose(0, 1), 2.0f); }, (Inputs{leaf({2, 3}, 5)}));
}

TEST_CASE("pow: hand-checked gradients, including exponent 0 at x = 0") {
  Tensor x = tensor({3}, {0, 2, -3});
  x.requires_grad_();
  sum(pow(x, 3.0f)).backward();
  check_values(x.grad(), {0, 12, 27});  // 3 x^2
  Tensor z = tensor({2}, {0, 2});
  z.requires_grad_();
  sum(pow(z, 0.0f)).backward();  // x^0 = 1 is constant: 0 everywhere, not 0 * inf = NaN at 0
  check_values(z.grad(), {0, 0});
}

TEST_CASE("exp: backward matches finite differences") {
  CHECK_GRADCHECK(
      "exp", [](const Inputs& x) { return exp(x[0]); }, (Inputs{leaf({2, 3}, 1)}));
  CHECK_GRADCHECK(
      "exp", [](const Inputs& x) { return exp(x[0].transpose(0, 1)); }, (Inputs{leaf({2, 3}, 2)}));
}

TEST_CASE("log: backward matches finite differences on positive inputs") {
  CHECK_GRADCHECK(
      "log", [](const Inputs& x) { return log(x[0]); }, (Inputs{uniform_leaf({2, 3}, 1, 0.3f, 3)}));
}

TEST_CASE("sqrt: backward matches finite differences on positive inputs") {
  CHECK_GRADCHECK(
      "sqrt", [](const Inputs& x) { return sqrt(x[0]); }, (Inputs{uniform_leaf({2, 3}, 1, 0.3f, 3)}));
}

TEST_CASE("tanh: backward matches finite differences") {
  CHECK_GRADCHECK(
      "tanh", [](const Inputs& x) { return tanh(x[0]); }, (Inputs{leaf({2, 3}, 1)}));
  CHECK_GRADCHECK(
      "tanh", [](const Inputs& x) { return tanh(x[0] * 2.0f); }, (Inputs{leaf({3, 4}, 2)}));
}

TEST_CASE("relu: backward matches finite differences away from 0, and is 0 at 0") {
  CHECK_GRADCHECK(
      "relu", [](const Inputs& x) { return relu(x[0]); }, (Inputs{away_from_zero({3, 4}, 1)}));
  Tensor x = tensor({4}, {-1, 0, 2, 0.5f});
  x.requires_grad_();
  sum(relu(x)).backward();
  check_values(x.grad(), {0, 0, 1, 1});  // PyTorch's convention: the gradient at the kink is 0
}

TEST_CASE("gelu: backward matches finite differences in both forms") {
  CHECK_GRADCHECK(
      "gelu", [](const Inputs& x) { return gelu(x[0]); }, (Inputs{leaf({3, 4}, 1, 2.0f)}));
  CHECK_GRADCHECK(
      "gelu", [](const Inputs& x) { return gelu(x[0], GeluApprox::Tanh); }, (Inputs{leaf({3, 4}, 2, 2.0f)}));
  // Hand-checked slope at 0: Phi(0) + 0 * phi(0) = 0.5 in both forms.
  Tensor z = scalar_tensor(0.0f);
  z.requires_grad_();
  gelu(z).backward();
  gelu(z, GeluApprox::Tanh).backward();
  CHECK(z.grad().item() == doctest::Approx(1.0));
}

TEST_CASE("unary: ops that save their output do not own it (no reference cycle)") {
  Tensor x = tensor({2}, {0.5f, 1});
  x.requires_grad_();
  for (Tensor (*op)(const Tensor&) :
       {static_cast<Tensor (*)(const Tensor&)>(exp), static_cast<Tensor (*)(const Tensor&)>(sqrt),
        static_cast<Tensor (*)(const Tensor&)>(tanh)}) {
    std::weak_ptr<Node> node;
    {
      const Tensor y = op(x);
      node = y.grad_fn();
      CHECK(y.use_count() == 1);  // no hidden handle to y inside its own node
    }
    CHECK(node.expired());
  }
}

TEST_CASE("unary: an undefined input throws instead of crashing") {
  CHECK_THROWS_WITH_AS(exp(Tensor()), "tensor: use of an undefined tensor", Error);
  CHECK_THROWS_WITH_AS(pow(Tensor(), 2.0f), "tensor: use of an undefined tensor", Error);
  CHECK_THROWS_WITH_AS(gelu(Tensor(), GeluApprox::Tanh), "tensor: use of an undefined tensor", Error);
}
