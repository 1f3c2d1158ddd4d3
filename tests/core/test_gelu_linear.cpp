// gelu_linear: the fused MLP output projection equals linear(gelu(u)) in
// value and gradient, for both GELU forms, with and without bias.
#include "tests/core/test_helpers.h"

using namespace ember;
using ember::testing::check_values;
using ember::testing::leaf;

TEST_CASE("gelu_linear: forward by hand and equal to linear(gelu(u))") {
  // u = [1, -1], W = [[1, 2]], b = [0.5]: gelu(1) = 0.8413447, gelu(-1) = -0.1586553,
  // so y = 0.8413447 - 2 * 0.1586553 + 0.5 = 1.0240341.
  const Tensor y = gelu_linear(tensor({1, 2}, {1.0f, -1.0f}), tensor({1, 2}, {1.0f, 2.0f}), tensor({1}, {0.5f}));
  check_values(y, {1.0240341f}, 1e-6f);
  for (GeluApprox approx : {GeluApprox::None, GeluApprox::Tanh}) {
    const Tensor u = leaf({2, 3, 8}, 1), w = leaf({5, 8}, 2), b = leaf({5}, 3);
    const Tensor fused = gelu_linear(u, w, b, approx), plain = linear(gelu(u, approx), w, b);
    check_values(fused, plain.to_vector(), 0.0f);  // the same kernels in the same order
  }
}

TEST_CASE("gelu_linear: backward matches finite differences and the unfused gradients") {
  for (GeluApprox approx : {GeluApprox::None, GeluApprox::Tanh}) {
    CAPTURE(static_cast<int>(approx));
    CHECK_GRADCHECK(
        "gelu_linear", [approx](const std::vector<Tensor>& v) { return gelu_linear(v[0], v[1], v[2], approx); },
        (std::vector<Tensor>{leaf({2, 3, 4}, 4), leaf({3, 4}, 5), leaf({3}, 6)}));
    CHECK_GRADCHECK(
        "gelu_linear", [approx](const std::vector<Tensor>& v) { return gelu_linear(v[0], v[1], Tensor(), approx); },
        (std::vector<Tensor>{leaf({5, 4}, 7), leaf({2, 4}, 8)}));
    Tensor u1 = leaf({4, 6}, 9), w1 = leaf({3, 6}, 10), u2 = u1.detach().clone(), w2 = w1.detach().clone();
    u2.requires_grad_();
    w2.requires_grad_();
    const Tensor g = randn({4, 3});
    gelu_linear(u1, w1, Tensor(), approx).backward(g);
    linear(gelu(u2, approx), w2, Tensor()).backward(g);
    check_values(u1.grad(), u2.grad().to_vector(), 1e-6f);  // same maths, rounding in a different order
    check_values(w1.grad(), w2.grad().to_vector(), 1e-6f);
  }
}

TEST_CASE("gelu_linear: one-sided and non-contiguous backward equals the unfused gradients") {
  // The training step takes one fused pass (u contiguous, u and W both need
  // gradients); these cases take the separate passes. `which`: 0 only u
  // needs a gradient, 1 only W, 2 both with u a transposed view of a leaf p.
  const Tensor g = randn({4, 3});
  for (int which : {0, 1, 2}) {
    CAPTURE(which);
    Tensor p1 = which == 2 ? leaf({6, 4}, 11) : leaf({4, 6}, 11), w1 = leaf({3, 6}, 12);
    Tensor p2 = p1.detach().clone(), w2 = w1.detach().clone();
    p2.requires_grad_();
    w2.requires_grad_();
    if (which == 1) p1 = p1.detach();
    if (which == 0) w1 = w1.detach();
    auto u = [which](const Tensor& p) { return which == 2 ? p.transpose(0, 1) : p; };
    gelu_linear(u(p1), w1, Tensor()).backward(g);
    linear(gelu(u(p2)), w2, Tensor()).backward(g);
    if (which != 1) check_values(p1.grad(), p2.grad().to_vector(), 1e-6f);
    if (which != 0) check_values(w1.grad(), w2.grad().to_vector(), 1e-6f);
  }
}

TEST_CASE("gelu_linear: shape errors name both shapes") {
  CHECK_THROWS_WITH_AS(gelu_linear(zeros({2, 4}), zeros({3, 5}), Tensor()),
                       doctest::Contains("linear: in_features differ: x [2, 4] vs weight [3, 5]"), Error);
}
