// Broadcasting arithmetic: add, sub, mul, div, neg, the scalar forms and the
// operators. Hand-computed forwards (same shape, broadcast, scalar-shaped,
// transposed), finite-difference gradients, and the broadcast error message.
#include "tests/core/test_helpers.h"

using namespace ember;
using ember::testing::check_values;
using ember::testing::leaf;

namespace {

using Inputs = std::vector<Tensor>;

// A leaf whose values keep a distance of at least `low` from zero, for divisors.
Tensor away_from_zero(const Shape& shape, uint64_t seed, float low = 0.5f) {
  Generator g(seed);
  Tensor t = empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float mag = low + g.uniform();
    t.data()[i] = g.uniform() < 0.5f ? -mag : mag;
  }
  t.requires_grad_();
  return t;
}

}  // namespace

TEST_CASE("elementwise: same-shape forwards match hand-computed values") {
  const Tensor a = tensor({2, 2}, {1, 2, 3, 4}), b = tensor({2, 2}, {0.5f, -1, 2, 8});
  check_values(add(a, b), {1.5f, 1, 5, 12});
  check_values(sub(a, b), {0.5f, 3, 1, -4});
  check_values(mul(a, b), {0.5f, -2, 6, 32});
  check_values(div(a, b), {2, -2, 1.5f, 0.5f});
  check_values(neg(a), {-1, -2, -3, -4});
  CHECK(add(a, b).shape() == Shape{2, 2});
  // The operators are the same functions.
  check_values(a + b, {1.5f, 1, 5, 12});
  check_values(a - b, {0.5f, 3, 1, -4});
  check_values(a * b, {0.5f, -2, 6, 32});
  check_values(a / b, {2, -2, 1.5f, 0.5f});
  check_values(-a, {-1, -2, -3, -4});
}

TEST_CASE("elementwise: scalar forms and operators, including s - t and s / t") {
  const Tensor a = tensor({3}, {1, 2, 4});
  check_values(add(a, 1.5f), {2.5f, 3.5f, 5.5f});
  check_values(sub(a, 1.0f), {0, 1, 3});
  check_values(mul(a, -2.0f), {-2, -4, -8});
  check_values(div(a, 4.0f), {0.25f, 0.5f, 1});
  check_values(rsub(10.0f, a), {9, 8, 6});
  check_values(rdiv(8.0f, a), {8, 4, 2});
  check_values(a + 1.5f, {2.5f, 3.5f, 5.5f});
  check_values(1.5f + a, {2.5f, 3.5f, 5.5f});
  check_values(a - 1.0f, {0, 1, 3});
  check_values(10.0f - a, {9, 8, 6});
  check_values(a * -2.0f, {-2, -4, -8});
  check_values(-2.0f * a, {-2, -4, -8});
  check_values(a / 4.0f, {0.25f, 0.5f, 1});
  check_values(8.0f / a, {8, 4, 2});
  // a / s is a true division, as PyTorch's: 5 * (1/3) rounds twice and lands one ulp
  // above 5/3 in float32 (1.66666675 vs 1.66666663).
  const volatile float five = 5.0f, three = 3.0f;
  CHECK(div(tensor({1}, {5}), 3.0f).item() == five / three);
  CHECK((tensor({1}, {5}) / 3.0f).item() == five / three);
}

TEST_CASE("elementwise: broadcasting forwards match hand-computed values") {
  // [2,3] + [3]: the row is added to each row.
  const Tensor m = tensor({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor r = tensor({3}, {10, 20, 30});
  Tensor s = m + r;
  CHECK(s.shape() == Shape{2, 3});
  check_values(s, {11, 22, 33, 14, 25, 36});
  check_values(r + m, {11, 22, 33, 14, 25, 36});
  // [2,1] * [1,3]: an outer product.
  const Tensor col = tensor({2, 1}, {2, 3}), row = tensor({1, 3}, {1, 10, 100});
  Tensor o = col * row;
  CHECK(o.shape() == Shape{2, 3});
  check_values(o, {2, 20, 200, 3, 30, 300});
  // [4,1,3] - [2,1] -> [4,2,3]: out[i, j, k] = a[i, 0, k] - b[j, 0].
  const Tensor a = arange(12).view({4, 1, 3}), b = tensor({2, 1}, {100, 200});
  Tensor d = a - b;
  CHECK(d.shape() == Shape{4, 2, 3});
  std::vector<float> expected;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j)
      for (int k = 0; k < 3; ++k) expected.push_back(static_cast<float>(3 * i + k) - (j == 0 ? 100.0f : 200.0f));
  check_values(d, expected);
  // Scalar-shaped []: broadcasts against anything, and [] op [] stays [].
  const Tensor half = scalar_tensor(0.5f);
  check_values(m / half, {2, 4, 6, 8, 10, 12});
  check_values(half - m, {-0.5f, -1.5f, -2.5f, -3.5f, -4.5f, -5.5f});
  const Tensor both = half * scalar_tensor(4.0f);
  CHECK(both.shape() == Shape{});
  CHECK(both.item() == 2.0f);
}

TEST_CASE("elementwise: forwards read non-contiguous (transposed and expanded) inputs correctly") {
  const Tensor t = arange(6).view({2, 3}).transpose(0, 1);  // [3, 2]: [[0, 3], [1, 4], [2, 5]]
  REQUIRE_FALSE(t.is_contiguous());
  check_values(t + ones({3, 2}), {1, 4, 2, 5, 3, 6});
  check_values(t * t, {0, 9, 1, 16, 4, 25});
  check_values(neg(t), {-0.0f, -3, -1, -4, -2, -5});
  check_values(t - 1.0f, {-1, 2, 0, 3, 1, 4});
  check_values(t * tensor({2}, {1, -1}), {0, -3, 1, -4, 2, -5});
  const Tensor e = tensor({3, 1}, {1, 2, 3}).expand({3, 2});  // stride 0 along dim 1
  check_values(e * t, {0, 3, 2, 8, 6, 15});
  check_values(t.narrow(0, 1, 2) - tensor({2, 1}, {1, 2}), {0, 3, 0, 3});  // a view with an offset
}

TEST_CASE("add: backward matches finite differences, with broadcasting on both sides") {
  CHECK_GRADCHECK(
      "add", [](const Inputs& x) { return add(x[0], x[1]); }, (Inputs{leaf({2, 3}, 1), leaf({2, 3}, 2)}));
  CHECK_GRADCHECK(
      "add", [](const Inputs& x) { return add(x[0], x[1]); }, (Inputs{leaf({4, 1, 3}, 3), leaf({2, 1}, 4)}));
  CHECK_GRADCHECK(
      "add", [](const Inputs& x) { return add(x[0], x[1]); }, (Inputs{leaf({2, 3}, 5), leaf({}, 6)}));
  CHECK_GRADCHECK(
      "add", [](const Inputs& x) { return x[0] + 1.5f; }, (Inputs{leaf({2, 3}, 7)}));
  CHECK_GRADCHECK(
      "add", [](const Inputs& x) { return 1.5f + x[0]; }, (Inputs{leaf({2, 3}, 7)}));
}

TEST_CASE("sub: backward matches finite differences, with broadcasting on both sides") {
  CHECK_GRADCHECK(
      "sub", [](const Inputs& x) { return sub(x[0], x[1]); }, (Inputs{leaf({2, 3}, 1), leaf({2, 3}, 2)}));
  CHECK_GRADCHECK(
      "sub", [](const Inputs& x) { return sub(x[0], x[1]); }, (Inputs{leaf({4, 1, 3}, 3), leaf({2, 1}, 4)}));
  CHECK_GRADCHECK(
      "sub", [](const Inputs& x) { return sub(x[0], x[1]); }, (Inputs{leaf({3}, 5), leaf({2, 3}, 6)}));
  CHECK_GRADCHECK(
      "sub_scalar", [](const Inputs& x) { return x[0] - 2.0f; }, (Inputs{leaf({2, 3}, 7)}));
  CHECK_GRADCHECK(
      "rsub", [](const Inputs& x) { return 2.0f - x[0]; }, (Inputs{leaf({2, 3}, 8)}));
}

TEST_CASE("mul: backward matches finite differences, with broadcasting on both sides") {
  CHECK_GRADCHECK(
      "mul", [](const Inputs& x) { return mul(x[0], x[1]); }, (Inputs{leaf({2, 3}, 1), leaf({2, 3}, 2)}));
  CHECK_GRADCHECK(
      "mul", [](const Inputs& x) { return mul(x[0], x[1]); }, (Inputs{leaf({2, 1}, 3), leaf({1, 3}, 4)}));
  CHECK_GRADCHECK(
      "mul", [](const Inputs& x) { return mul(x[0], x[1]); }, (Inputs{leaf({4, 1, 3}, 5), leaf({2, 1}, 6)}));
  CHECK_GRADCHECK(
      "mul", [](const Inputs& x) { return mul(x[0], x[0]); }, (Inputs{leaf({5}, 7)}));  // same input twice
  CHECK_GRADCHECK(
      "mul_scalar", [](const Inputs& x) { return x[0] * -3.0f; }, (Inputs{leaf({2, 3}, 8)}));
  CHECK_GRADCHECK(
      "mul_scalar", [](const Inputs& x) { return -3.0f * x[0]; }, (Inputs{leaf({2, 3}, 8)}));
}

TEST_CASE("div: backward matches finite differences, with broadcasting on both sides") {
  CHECK_GRADCHECK(
      "div", [](const Inputs& x) { return div(x[0], x[1]); }, (Inputs{leaf({2, 3}, 1), away_from_zero({2, 3}, 2)}));
  CHECK_GRADCHECK(
      "div", [](const Inputs& x) { return div(x[0], x[1]); }, (Inputs{leaf({4, 1, 3}, 3), away_from_zero({2, 1}, 4)}));
  CHECK_GRADCHECK(
      "div", [](const Inputs& x) { return div(x[0], x[1]); }, (Inputs{leaf({3}, 5), away_from_zero({2, 1}, 6)}));
  CHECK_GRADCHECK(
      "div_scalar", [](const Inputs& x) { return x[0] / 4.0f; }, (Inputs{leaf({2, 3}, 7)}));
  CHECK_GRADCHECK(
      "rdiv", [](const Inputs& x) { return 2.0f / x[0]; }, (Inputs{away_from_zero({2, 3}, 8)}));
}

TEST_CASE("neg: backward matches finite differences") {
  CHECK_GRADCHECK(
      "neg", [](const Inputs& x) { return neg(x[0]); }, (Inputs{leaf({2, 3}, 1)}));
  CHECK_GRADCHECK(
      "neg", [](const Inputs& x) { return -x[0]; }, (Inputs{leaf({}, 2)}));
}

TEST_CASE("elementwise: backward through non-contiguous (transposed) inputs matches finite differences") {
  // gradcheck hands fn contiguous leaves; the transposes inside make the ops see strided memory.
  auto t = [](const Tensor& x) { return x.transpose(0, 1); };
  CHECK_GRADCHECK(
      "add", [&](const Inputs& x) { return add(t(x[0]), x[1]); }, (Inputs{leaf({3, 2}, 1), leaf({2, 3}, 2)}));
  CHECK_GRADCHECK(
      "sub", [&](const Inputs& x) { return sub(t(x[0]), t(x[1])); }, (Inputs{leaf({3, 2}, 3), leaf({3, 2}, 4)}));
  CHECK_GRADCHECK(
      "mul", [&](const Inputs& x) { return mul(t(x[0]), x[1]); }, (Inputs{leaf({4, 2}, 5), leaf({2, 1}, 6)}));
  CHECK_GRADCHECK(
      "div", [&](const Inputs& x) { return div(x[0], t(x[1])); }, (Inputs{leaf({2, 3}, 7), away_from_zero({3, 2}, 8)}));
  CHECK_GRADCHECK(
      "neg", [&](const Inputs& x) { return neg(t(x[0])); }, (Inputs{leaf({3, 2}, 9)}));
  CHECK_GRADCHECK(
      "mul_scalar", [&](const Inputs& x) { return t(x[0]) * 0.5f; }, (Inputs{leaf({3, 2}, 10)}));
  CHECK_GRADCHECK(
      "rdiv", [&](const Inputs& x) { return 1.0f / t(x[0]); }, (Inputs{away_from_zero({3, 2}, 11)}));
}

TEST_CASE("elementwise: gradients of a broadcast input are summed back to its shape (hand-checked)") {
  Tensor m = tensor({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor r = tensor({3}, {1, 1, 2});
  m.requires_grad_();
  r.requires_grad_();
  sum(m * r).backward();
  check_values(m.grad(), {1, 1, 2, 1, 1, 2});  // r broadcast down the rows
  check_values(r.grad(), {5, 7, 9});           // column sums of m
  CHECK(r.grad().shape() == Shape{3});
}

TEST_CASE("elementwise: shapes that cannot broadcast throw naming the op, both shapes and the dim") {
  const Tensor a = zeros({2, 3}), b = zeros({4});
  CHECK_THROWS_WITH_AS(
      add(a, b), "add: shapes [2, 3] and [4] cannot be broadcast (dim 1: 3 vs 4; sizes must match or be 1)", Error);
  CHECK_THROWS_WITH_AS(
      a - b, "sub: shapes [2, 3] and [4] cannot be broadcast (dim 1: 3 vs 4; sizes must match or be 1)", Error);
  CHECK_THROWS_WITH_AS(mul(zeros({2, 3}), zeros({3, 3})),
                       "mul: shapes [2, 3] and [3, 3] cannot be broadcast (dim 0: 2 vs 3; sizes must match or be 1)",
                       Error);
  CHECK_THROWS_WITH_AS(div(zeros({5, 1, 2}), zeros({4, 3})),
                       "div: shapes [5, 1, 2] and [4, 3] cannot be broadcast (dim 2: 2 vs 3; sizes must match or be 1)",
                       Error);
  CHECK_THROWS_WITH_AS(add(Tensor(), a), "tensor: use of an undefined tensor", Error);
  CHECK_THROWS_WITH_AS(neg(Tensor()), "tensor: use of an undefined tensor", Error);
}
