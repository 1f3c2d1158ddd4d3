// Reductions: sum, mean and max over one or several dims with and without
// keepdim, sum()/mean() of everything, and sum_to. Hand-computed forwards,
// finite-difference gradients, max's tie rule, and the error messages.
#include <cmath>
#include <limits>

#include "tests/core/test_helpers.h"

using namespace ember;
using ember::testing::check_values;
using ember::testing::leaf;

namespace {

using Inputs = std::vector<Tensor>;

// x[b, j, c] = 12 b + 4 j + c for b < 2, j < 3, c < 4; sums by hand:
//   over j:       36 b + 12 + 3 c
//   over b and c: 60 + 32 j       (total 276)
Tensor ramp() { return arange(24).view({2, 3, 4}); }

}  // namespace

TEST_CASE("sum: forward over one dim, several dims and everything, with and without keepdim") {
  const Tensor x = ramp();
  const Tensor s1 = sum(x, {1});
  CHECK(s1.shape() == Shape{2, 4});
  check_values(s1, {12, 15, 18, 21, 48, 51, 54, 57});
  CHECK(sum(x, {1}, true).shape() == Shape{2, 1, 4});
  check_values(sum(x, {1}, true), {12, 15, 18, 21, 48, 51, 54, 57});
  const Tensor s02 = sum(x, {0, 2});
  CHECK(s02.shape() == Shape{3});
  check_values(s02, {60, 92, 124});
  CHECK(sum(x, {2, 0}, true).shape() == Shape{1, 3, 1});  // order of dims does not matter
  check_values(sum(x, {2, 0}, true), {60, 92, 124});
  check_values(sum(x, {-1}), {6, 22, 38, 54, 70, 86});  // negative dims count from the end
  const Tensor all = sum(x);
  CHECK(all.shape() == Shape{});
  CHECK(all.item() == 276.0f);
  CHECK(sum(x, {0, 1, 2}, true).shape() == Shape{1, 1, 1});
  CHECK(sum(x, {0, 1, 2}).item() == 276.0f);
  CHECK(sum(scalar_tensor(3.5f)).item() == 3.5f);
}

TEST_CASE("sum: reads non-contiguous inputs and sums long rows accurately") {
  const Tensor t = ramp().transpose(0, 2);  // [4, 3, 2]: t[c, j, b] = 12 b + 4 j + c
  REQUIRE_FALSE(t.is_contiguous());
  check_values(sum(t, {2}), {12, 20, 28, 14, 22, 30, 16, 24, 32, 18, 26, 34});  // 12 + 8 j + 2 c
  check_values(sum(t, {0, 2}), {60, 92, 124});
  // 1e6 values of 0.1f: a running float sum drifts to about 100958 (1%); the exact sum
  // is 100000.0015 (0.1f = 0.100000001490116), which float32 holds to within 0.004.
  CHECK(sum(full({1000000}, 0.1f)).item() == doctest::Approx(100000.0).epsilon(1e-6));
}

TEST_CASE("mean: forward over one dim, several dims and everything") {
  const Tensor x = ramp();
  check_values(mean(x, {1}), {4, 5, 6, 7, 16, 17, 18, 19});
  check_values(mean(x, {0, 2}), {7.5f, 11.5f, 15.5f});
  CHECK(mean(x, {0, 2}, true).shape() == Shape{1, 3, 1});
  const Tensor m = mean(x);
  CHECK(m.shape() == Shape{});
  CHECK(m.item() == 11.5f);
}

TEST_CASE("max: forward over one dim, several dims, with and without keepdim") {
  const Tensor x = tensor({2, 3}, {1, 5, -2, 7, 0, 3});
  check_values(max(x, {1}), {5, 7});
  CHECK(max(x, {1}).shape() == Shape{2});
  check_values(max(x, {0}), {7, 5, 3});
  CHECK(max(x, {0}, true).shape() == Shape{1, 3});
  CHECK(max(x, {0, 1}).shape() == Shape{});
  CHECK(max(x, {0, 1}).item() == 7.0f);
  const Tensor y = ramp();
  check_values(max(y, {0, 2}), {15, 19, 23});
  check_values(max(y.transpose(0, 2), {1}), {8, 20, 9, 21, 10, 22, 11, 23});  // [4, 2]: 12 b + 8 + c
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(max(full({3}, -inf), {0}).item() == -inf);               // an all -inf row keeps -inf (and its index)
  CHECK(std::isnan(max(tensor({3}, {1, NAN, 2}), {0}).item()));  // NaN propagates, as in PyTorch
}

TEST_CASE("max: the gradient goes to the first maximal element on ties") {
  Tensor x = tensor({2, 3}, {1, 3, 3, 2, 2, 0});
  x.requires_grad_();
  max(x, {1}).backward(tensor({2}, {10, 20}));
  check_values(x.grad(), {0, 10, 0, 20, 0, 0});

  Tensor y = tensor({2, 2}, {1, 4, 4, 4});
  y.requires_grad_();
  sum(max(y, {0})).backward();  // along dim 0 the first is the upper row
  check_values(y.grad(), {0, 1, 1, 0});

  Tensor z = tensor({2, 2}, {5, 1, 5, 5});
  z.requires_grad_();
  max(z, {0, 1}).backward();  // over both dims: first in row-major order
  check_values(z.grad(), {1, 0, 0, 0});

  Tensor w = tensor({2, 2}, {2, 2, 1, 1}).transpose(0, 1);  // [[2, 1], [2, 1]], non-contiguous
  w = w.detach();
  w.requires_grad_();
  sum(max(w, {0}, true)).backward();
  check_values(w.grad(), {1, 1, 0, 0});
}

TEST_CASE("sum_to: sums a broadcast result back down to a shape") {
  const Tensor x = ramp();  // [2, 3, 4]
  check_values(sum_to(x, {3, 1}), {60, 92, 124});
  CHECK(sum_to(x, {3, 1}).shape() == Shape{3, 1});
  check_values(sum_to(x, {4}), {60, 66, 72, 78});
  check_values(sum_to(x, {2, 1, 1}), {66, 210});
  CHECK(sum_to(x, {}).item() == 276.0f);
  CHECK(sum_to(x, {2, 3, 4}).is_same(x));  // nothing to sum: the same tensor
}

TEST_CASE("sum: backward matches finite differences") {
  CHECK_GRADCHECK(
      "sum", [](const Inputs& x) { return sum(x[0]); }, (Inputs{leaf({2, 3, 4}, 1)}));
  CHECK_GRADCHECK(
      "sum", [](const Inputs& x) { return sum(x[0], {1}); }, (Inputs{leaf({2, 3, 4}, 2)}));
  CHECK_GRADCHECK(
      "sum",
      [](const Inputs& x) {
        return sum(x[0], {0, 2}, true);
      },
      (Inputs{leaf({2, 3, 4}, 3)}));
  CHECK_GRADCHECK(
      "sum", [](const Inputs& x) { return sum(x[0].transpose(0, 2), {-1}); }, (Inputs{leaf({2, 3, 4}, 4)}));
}

TEST_CASE("mean: backward matches finite differences") {
  CHECK_GRADCHECK(
      "mean", [](const Inputs& x) { return mean(x[0]); }, (Inputs{leaf({2, 3, 4}, 1)}));
  CHECK_GRADCHECK(
      "mean", [](const Inputs& x) { return mean(x[0], {2}); }, (Inputs{leaf({2, 3, 4}, 2)}));
  CHECK_GRADCHECK(
      "mean",
      [](const Inputs& x) {
        return mean(x[0], {0, 1}, true);
      },
      (Inputs{leaf({2, 3, 4}, 3)}));
  Tensor x = ones({2, 4});
  x.requires_grad_();
  mean(x).backward();
  check_values(x.grad(), std::vector<float>(8, 0.125f));  // 1 / count
}

TEST_CASE("max: backward matches finite differences") {
  // Normal draws are distinct by far more than the 1e-3 step, so no max switches inside a difference.
  CHECK_GRADCHECK(
      "max", [](const Inputs& x) { return max(x[0], {1}); }, (Inputs{leaf({3, 4}, 1)}));
  CHECK_GRADCHECK(
      "max",
      [](const Inputs& x) {
        return max(x[0], {0, 2}, true);
      },
      (Inputs{leaf({2, 3, 4}, 2)}));
  CHECK_GRADCHECK(
      "max", [](const Inputs& x) { return max(x[0].transpose(0, 1), {-1}); }, (Inputs{leaf({3, 4}, 3)}));
}

TEST_CASE("sum_to: backward matches finite differences") {
  CHECK_GRADCHECK(
      "sum_to",
      [](const Inputs& x) {
        return sum_to(x[0], {3, 1});
      },
      (Inputs{leaf({2, 3, 4}, 1)}));
  CHECK_GRADCHECK(
      "sum_to",
      [](const Inputs& x) {
        return sum_to(x[0], {1, 4});
      },
      (Inputs{leaf({2, 3, 4}, 2)}));
  CHECK_GRADCHECK(
      "sum_to", [](const Inputs& x) { return sum_to(x[0], {}); }, (Inputs{leaf({2, 3}, 3)}));
}

TEST_CASE("reduce: a dim out of range throws naming the op, the dim and the rank") {
  const Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH_AS(sum(x, {2}), "sum: dim 2 is out of range for a tensor with 2 dims", Error);
  CHECK_THROWS_WITH_AS(mean(x, {-3}), "mean: dim -3 is out of range for a tensor with 2 dims", Error);
  CHECK_THROWS_WITH_AS(max(x, {0, 5}), "max: dim 5 is out of range for a tensor with 2 dims", Error);
}

TEST_CASE("reduce: a duplicated dim throws naming it and the list") {
  const Tensor x = zeros({2, 3, 4});
  CHECK_THROWS_WITH_AS(sum(x, {1, 1}), "sum: dim 1 appears twice in [1, 1]", Error);
  CHECK_THROWS_WITH_AS(mean(x, {2, -1}), "mean: dim -1 appears twice in [2, -1]", Error);
  CHECK_THROWS_WITH_AS(max(x, {0, -3}), "max: dim -3 appears twice in [0, -3]", Error);
}

TEST_CASE("reduce: an empty dim list throws rather than reducing nothing or everything") {
  const Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH_AS(sum(x, {}), "sum: empty dim list (call sum(t) to reduce every dim)", Error);
  CHECK_THROWS_WITH_AS(mean(x, std::vector<int64_t>{}), "mean: empty dim list (call mean(t) to reduce every dim)",
                       Error);
  CHECK_THROWS_WITH_AS(max(x, {}), "max: empty dim list", Error);
}

TEST_CASE("max: reducing a dim of size 0 throws; sum of it is 0") {
  const Tensor e = zeros({2, 0});
  CHECK_THROWS_WITH_AS(max(e, {1}), "max: cannot reduce dim 1 of size 0 (shape [2, 0])", Error);
  check_values(sum(e, {1}), {0, 0});
}

TEST_CASE("sum_to: shapes it cannot reach throw naming both shapes") {
  const Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH_AS(sum_to(x, {1, 2, 3}), "sum_to: cannot reduce shape [2, 3] to [1, 2, 3] (more dims)", Error);
  CHECK_THROWS_WITH_AS(sum_to(x, {2}), "sum_to: cannot reduce shape [2, 3] to [2] (dim 1: 3 vs 2)", Error);
}
