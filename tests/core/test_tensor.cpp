// Tensor basics: factories, views sharing storage, contiguity, printing, errors.
#include <fmt/format.h>

#include "tests/core/test_helpers.h"

using namespace ember;
using ember::testing::check_values;

TEST_CASE("tensor: factories fill the values they promise") {
  check_values(zeros({2, 2}), {0, 0, 0, 0});
  check_values(ones({3}), {1, 1, 1});
  check_values(full({2}, 2.5f), {2.5f, 2.5f});
  check_values(arange(4), {0, 1, 2, 3});
  check_values(arange(1, 2, 0.25f), {1, 1.25f, 1.5f, 1.75f});
  const Tensor t = tensor({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t.at({1, 2}) == 6.0f);
  CHECK(scalar_tensor(3.0f).dim() == 0);
}

TEST_CASE("tensor: seeded generators make random factories reproducible") {
  Generator g1(7), g2(7), g3(8);
  CHECK(randn({5}, &g1).to_vector() == randn({5}, &g2).to_vector());
  CHECK(randn({5}, &g3).to_vector() != randn({5}, &g1).to_vector());
  Generator g(1);
  const std::vector<float> u = rand({10000}, &g).to_vector();
  double mean = 0;
  for (float x : u) {
    CHECK(x >= 0.0f);
    CHECK(x < 1.0f);
    mean += x / u.size();
  }
  CHECK(mean == doctest::Approx(0.5).epsilon(0.02));  // 4 sigma of the mean of 10,000 uniforms is 0.012
  const std::vector<float> n = normal({20000}, 3.0f, 2.0f, &g).to_vector();
  double m = 0, var = 0;
  for (float x : n) m += x / n.size();
  for (float x : n) var += (x - m) * (x - m) / n.size();
  CHECK(m == doctest::Approx(3.0).epsilon(0.02));    // std error of the mean 0.014
  CHECK(var == doctest::Approx(4.0).epsilon(0.05));  // std error of the variance ~0.04
}

TEST_CASE("tensor: copies of a handle share data; clone does not") {
  Tensor a = zeros({2});
  Tensor b = a;
  b.data()[0] = 5.0f;
  CHECK(a.at({0}) == 5.0f);
  Tensor c = a.clone();
  c.data()[1] = 7.0f;
  CHECK(a.at({1}) == 0.0f);
}

TEST_CASE("tensor: views share storage and index correctly") {
  const Tensor t = arange(24).view({2, 3, 4});
  const Tensor tr = t.transpose(0, 2);  // [4, 3, 2]
  CHECK(tr.shape() == Shape{4, 3, 2});
  CHECK(tr.at({3, 1, 1}) == t.at({1, 1, 3}));
  CHECK_FALSE(tr.is_contiguous());
  CHECK(tr.contiguous().is_contiguous());
  CHECK(tr.contiguous().at({3, 1, 1}) == 19.0f);
  const Tensor p = t.permute({1, 2, 0});
  CHECK(p.shape() == Shape{3, 4, 2});
  CHECK(p.at({2, 1, 1}) == t.at({1, 2, 1}));
  const Tensor n = t.narrow(2, 1, 2);
  check_values(n.contiguous(), {1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22});
  n.data()[0] = 100.0f;  // writes through to t
  CHECK(t.at({0, 0, 1}) == 100.0f);
  CHECK(t.unsqueeze(0).shape() == Shape{1, 2, 3, 4});
  CHECK(t.unsqueeze(-1).shape() == Shape{2, 3, 4, 1});
  CHECK(t.unsqueeze(1).squeeze(1).shape() == Shape{2, 3, 4});
  const Tensor e = tensor({3, 1}, {1, 2, 3}).expand({2, 3, 4});
  CHECK(e.shape() == Shape{2, 3, 4});
  CHECK(e.at({1, 2, 3}) == 3.0f);
  CHECK(t.view({6, -1}).shape() == Shape{6, 4});
  CHECK(t.reshape({-1}).shape() == Shape{24});
}

TEST_CASE("tensor: reshape of a non-contiguous tensor copies, view refuses") {
  const Tensor t = arange(6).view({2, 3}).transpose(0, 1);  // [3, 2]
  check_values(t.reshape({6}), {0, 3, 1, 4, 2, 5});
  CHECK_THROWS_WITH_AS(t.view({6}),
                       "view: a tensor of shape [3, 2] with strides [1, 3] cannot be viewed as [6] without a copy; "
                       "use reshape()",
                       Error);
  // A transposed tensor can still be viewed where the merged dims stay contiguous.
  CHECK(arange(24).view({2, 3, 4}).transpose(0, 1).view({3, 2, 2, 2}).shape() == Shape{3, 2, 2, 2});
}

TEST_CASE("tensor: bad shapes and indices throw clear errors") {
  CHECK_THROWS_WITH_AS(tensor({2, 2}, {1, 2, 3}), "tensor: shape [2, 2] needs 4 values but 3 were given", Error);
  CHECK_THROWS_WITH_AS(arange(6).view({4, -1}), "view: cannot infer the -1 in [4, -1] for 6 elements of shape [6]",
                       Error);
  CHECK_THROWS_WITH_AS(arange(6).transpose(0, 1), "transpose: dim 1 is out of range for a tensor with 1 dims", Error);
  CHECK_THROWS_WITH_AS(arange(6).narrow(0, 4, 3), "narrow: start 4 + length 3 exceeds size 6 of dim 0 (shape [6])",
                       Error);
  CHECK_THROWS_WITH_AS(tensor({2}, {1, 2}).expand({3}),
                       "expand: cannot expand shape [2] to [3] (dim 0: 2 is neither 3 nor 1)", Error);
  CHECK_THROWS_WITH_AS(zeros({2}).item(), "item: tensor of shape [2] has 2 elements, not 1", Error);
  CHECK_THROWS_WITH_AS(zeros({2}).at({2}), "at: index 2 is out of range for dim 0 of shape [2]", Error);
  CHECK_THROWS_WITH_AS(Tensor().shape(), "tensor: use of an undefined tensor", Error);
  CHECK_THROWS_WITH_AS(IntTensor({2}, {1}), "IntTensor: shape [2] holds 2 ids but 1 were given", Error);
}

TEST_CASE("tensor: fmt prints shape and values, abbreviating large tensors") {
  const std::string s = fmt::format("{}", tensor({2, 2}, {1, 2, 3, 4.5f}));
  CHECK(s == "tensor([[1, 2],\n [3, 4.5]], shape=[2, 2])");
  const std::string big = fmt::format("{}", arange(5000));
  CHECK(big.find("...") != std::string::npos);
  CHECK(big.size() < 200);
  CHECK(fmt::format("{}", IntTensor({3}, {4, 5, 6})) == "IntTensor[3] [4, 5, 6]");
}

TEST_CASE("tensor: str() keeps small values, names the op, and never throws on a data-free handle") {
  // %.4g: a gradient of 2.4e-05 must not print as 0.0000 (what {:.4f} did).
  CHECK(tensor({3}, {2.4e-05f, -1234567.0f, 0.5f}).str() == "tensor([2.4e-05, -1.235e+06, 0.5], shape=[3])");
  // add keeps shape-only handles of its non-leaf inputs: the positional path after the forward.
  const Tensor w = ember::testing::leaf({2, 3}, 1), x = w * 2.0f, y = x + w;
  const Tensor data_free = y.grad_fn()->inputs[0];
  REQUIRE(data_free.grad_fn() == x.grad_fn());
  std::string s;
  CHECK_NOTHROW(s = data_free.str());
  CHECK(s ==
        fmt::format("tensor(<no data: freed after forward>, shape=[2, 3], grad_fn=mul_scalar #{})", x.grad_fn()->seq));
  CHECK(Tensor().str() == "Tensor(undefined)");
}

TEST_CASE("tensor: at(i, j, ...) overloads read the element at({i, j, ...}) reads, with the same checks") {
  const Tensor t = arange(24).view({2, 3, 4});
  CHECK(t.at(1, 2, 3) == 23.0f);  // 1*12 + 2*4 + 3
  CHECK(t.transpose(0, 2).at(3, 2, 1) == 23.0f);
  CHECK(t.narrow(1, 1, 2).at(1, 0, 2) == 18.0f);  // 1*12 + (1+0)*4 + 2: views keep their offset
  CHECK(arange(5).at(4) == 4.0f);
  CHECK_THROWS_WITH_AS(t.at(0, 0), "at: 2 indices for a tensor of shape [2, 3, 4]", Error);
  CHECK_THROWS_WITH_AS(t.at(0, 3, 0), "at: index 3 is out of range for dim 1 of shape [2, 3, 4]", Error);
}

TEST_CASE("cat and stack: forward joins along a dim, backward splits the gradient") {
  const Tensor a = tensor({2, 1}, {1, 2}), b = tensor({2, 2}, {3, 4, 5, 6});
  check_values(cat({a, b}, 1), {1, 3, 4, 2, 5, 6});
  check_values(stack({a, a}, 0), {1, 2, 1, 2});
  CHECK(stack({a, a}, 2).shape() == Shape{2, 1, 2});
  CHECK_GRADCHECK(
      "cat",
      [](const std::vector<Tensor>& x) {
        return cat({x[0], x[1]}, -1);
      },
      (std::vector<Tensor>{ember::testing::leaf({2, 3}, 1), ember::testing::leaf({2, 2}, 2)}));
  CHECK_GRADCHECK(
      "stack",
      [](const std::vector<Tensor>& x) {
        return stack({x[0], x[1]}, 1);
      },
      (std::vector<Tensor>{ember::testing::leaf({2, 3}, 1), ember::testing::leaf({2, 3}, 2)}));
  CHECK_THROWS_WITH_AS(
      cat({a, b}, 0), "cat: tensor 1 has shape [2, 2] but tensor 0 has [2, 1] (all sizes but dim 0 must match)", Error);
  CHECK_THROWS_WITH_AS(stack({a, b}, 0), "stack: tensor 1 has shape [2, 2] but tensor 0 has [2, 1]", Error);
}

TEST_CASE("views: gradients flow back through every view op") {
  using ember::testing::leaf;
  const std::vector<Tensor> x{leaf({2, 3, 4}, 3)};
  CHECK_GRADCHECK(
      "view",
      [](const std::vector<Tensor>& v) {
        return v[0].view({6, 4});
      },
      x);
  CHECK_GRADCHECK(
      "transpose", [](const std::vector<Tensor>& v) { return v[0].transpose(0, 2); }, x);
  CHECK_GRADCHECK(
      "permute",
      [](const std::vector<Tensor>& v) {
        return v[0].permute({2, 0, 1});
      },
      x);
  CHECK_GRADCHECK(
      "narrow", [](const std::vector<Tensor>& v) { return v[0].narrow(1, 1, 2); }, x);
  CHECK_GRADCHECK(
      "unsqueeze", [](const std::vector<Tensor>& v) { return v[0].unsqueeze(1).squeeze(1); }, x);
  CHECK_GRADCHECK(
      "reshape", [](const std::vector<Tensor>& v) { return v[0].transpose(0, 1).reshape({-1}); }, x);
  CHECK_GRADCHECK(
      "expand",
      [](const std::vector<Tensor>& v) {
        return v[0].narrow(1, 0, 1).expand({5, 2, 3, 4});
      },
      x);
}
