// softmax, log_softmax and cross_entropy: hand-computed values, stability on
// large and -inf inputs, every dim and layout against the last-dim path,
// gradient checks, ignore_index and the error messages.
#include <cmath>
#include <functional>
#include <limits>

#include "tests/core/test_helpers.h"

using namespace ember;
using ember::testing::check_values;
using ember::testing::leaf;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;
constexpr float kInf = std::numeric_limits<float>::infinity();

// exp(1), exp(2), exp(3) sum to 30.19287485; log of that is 3.40760596.
const std::vector<float> kSoftmax123{0.09003057f, 0.24472847f, 0.66524096f};
const std::vector<float> kLogSoftmax123{-2.40760596f, -1.40760596f, -0.40760596f};

}  // namespace

TEST_CASE("softmax: forward matches hand-computed values") {
  // Float32 results of magnitude <= 1 are within a few ulps (1e-7) of the exact values.
  check_values(softmax(tensor({3}, {1, 2, 3}), 0), kSoftmax123, 1e-6f);
  // A constant shift changes nothing, and large values do not overflow (the max is subtracted).
  check_values(softmax(tensor({1, 3}, {1001, 1002, 1003}), -1), kSoftmax123, 1e-6f);
  // Over dim 0 of [[1, 2], [3, 4]]: each column is softmax([v, v + 2]) = [1/(1+e^2), e^2/(1+e^2)].
  check_values(softmax(tensor({2, 2}, {1, 2, 3, 4}), 0), {0.11920292f, 0.11920292f, 0.88079708f, 0.88079708f}, 1e-6f);
  // -inf entries (masked positions) get exactly 0, and the rest renormalise.
  check_values(softmax(tensor({3}, {-kInf, 0.0f, 0.0f}), 0), {0.0f, 0.5f, 0.5f}, 0.0f);
}

TEST_CASE("log_softmax: forward matches hand-computed values") {
  check_values(log_softmax(tensor({3}, {1, 2, 3}), -1), kLogSoftmax123, 1e-6f);
  check_values(log_softmax(tensor({3}, {101, 102, 103}), 0), kLogSoftmax123, 1e-5f);  // ulp(100) is 7.6e-6
  const Tensor y = log_softmax(tensor({2}, {-kInf, 5.0f}), 0);
  CHECK(y.at({0}) == -kInf);
  CHECK(y.at({1}) == 0.0f);
}

TEST_CASE("softmax: a row containing NaN comes out all NaN, like PyTorch") {
  for (const Tensor& y : {softmax(tensor({3}, {1.0f, NAN, 2.0f}), 0), log_softmax(tensor({2, 2}, {NAN, 1, 2, 3}), 0)})
    CHECK(std::isnan(y.to_vector()[0]));
  // Only the NaN's column is poisoned when the softmax runs down columns.
  CHECK_FALSE(std::isnan(log_softmax(tensor({2, 2}, {NAN, 1, 2, 3}), 0).at({0, 1})));
}

TEST_CASE("softmax: every dim and layout agrees with the last-dim path") {
  // The inner-dim kernels (blocks of columns, 300 > one 256-column block) must give what
  // moving the dim last and using the row kernel gives; both round the same few
  // operations, so 1e-6 on values <= 1 (log: magnitude <= ~10) is a couple of ulps.
  Generator gen(1);
  const Tensor x = normal({3, 7, 300}, 0.0f, 3.0f, &gen);
  for (int64_t dim : {0, 1}) {
    CAPTURE(dim);
    const Tensor moved = x.transpose(dim, 2);  // non-contiguous
    check_values(softmax(x, dim), softmax(moved, -1).transpose(dim, 2).contiguous().to_vector(), 1e-6f);
    check_values(log_softmax(x, dim), log_softmax(moved, -1).transpose(dim, 2).contiguous().to_vector(), 1e-5f);
  }
  // Every softmax sums to 1 (37 is not a multiple of the 16 accumulator lanes, so the tail runs too).
  const Tensor s = sum(softmax(normal({5, 37}, 0.0f, 4.0f, &gen), 1), {1});
  check_values(s, std::vector<float>(5, 1.0f), 1e-6f);
}

TEST_CASE("softmax: backward matches finite differences on every dim and on strided input") {
  const std::vector<Tensor> x{leaf({3, 4, 37}, 11)};
  for (int64_t dim : {0, 1, 2, -1}) {
    CAPTURE(dim);
    CHECK_GRADCHECK("softmax", (Fn([dim](const std::vector<Tensor>& v) { return softmax(v[0], dim); })), x);
    CHECK_GRADCHECK("log_softmax", (Fn([dim](const std::vector<Tensor>& v) { return log_softmax(v[0], dim); })), x);
  }
  // Transposed input, softmax over its (strided) last dim.
  CHECK_GRADCHECK("softmax", Fn([](const std::vector<Tensor>& v) { return softmax(v[0].transpose(0, 2), -1); }), x);
  CHECK_GRADCHECK("log_softmax", Fn([](const std::vector<Tensor>& v) { return log_softmax(v[0].transpose(1, 2), 1); }),
                  x);
  // More than one column block (inner 260 > 256).
  CHECK_GRADCHECK("softmax", Fn([](const std::vector<Tensor>& v) { return softmax(v[0], 0); }),
                  std::vector<Tensor>{leaf({3, 260}, 12)});
}

TEST_CASE("softmax: backward matches the closed forms y (g - sum g y) and g - exp(y) sum g") {
  Tensor x = tensor({3}, {1, 2, 3}).requires_grad_();
  const Tensor g = tensor({3}, {1, 0, 0});
  softmax(x, 0).backward(g);
  // sum(g y) = y0 = 0.09003057, so gx = y * (g - y0).
  const float y0 = kSoftmax123[0];
  check_values(x.grad(), {y0 * (1 - y0), -kSoftmax123[1] * y0, -kSoftmax123[2] * y0}, 1e-6f);
  Tensor z = tensor({3}, {1, 2, 3}).requires_grad_();
  log_softmax(z, 0).backward(g);
  check_values(z.grad(), {1 - kSoftmax123[0], -kSoftmax123[1], -kSoftmax123[2]}, 1e-6f);
}

TEST_CASE("softmax: errors name the op and the dim") {
  CHECK_THROWS_WITH_AS(softmax(zeros({2, 3}), 2), "softmax: dim 2 is out of range for a tensor with 2 dims", Error);
  CHECK_THROWS_WITH_AS(log_softmax(zeros({2, 3}), -3), "log_softmax: dim -3 is out of range for a tensor with 2 dims",
                       Error);
  CHECK_THROWS_WITH_AS(softmax(scalar_tensor(1.0f), 0), "softmax: dim 0 is out of range for a tensor with 0 dims",
                       Error);
}

TEST_CASE("cross_entropy: forward and gradient match a hand computation with an ignored row") {
  // Row 0: lse([1, 2, 3]) - 3 = 0.40760596.  Row 1: lse([0, 0, 0]) - 0 = log 3 = 1.09861229.
  // Row 2 is ignored, so the mean is over 2 rows: 0.75310912.
  Tensor x = tensor({3, 3}, {1, 2, 3, 0, 0, 0, 5, 1, 1}).requires_grad_();
  const Tensor loss = cross_entropy(x, IntTensor({3}, {2, 0, -100}));
  CHECK(loss.dim() == 0);
  CHECK(loss.item() == doctest::Approx(0.75310912).epsilon(1e-6));
  loss.backward();
  // (softmax - onehot) / 2 per counted row; zero for the ignored one.
  check_values(
      x.grad(),
      {kSoftmax123[0] / 2, kSoftmax123[1] / 2, (kSoftmax123[2] - 1) / 2, -1.0f / 3, 1.0f / 6, 1.0f / 6, 0, 0, 0},
      1e-6f);
}

TEST_CASE("cross_entropy: equals the mean of -log_softmax at the targets, for [N, V] and [B, T, V]") {
  // Large V with a tail past the 16 lanes, logits of scale 5; both sides are float32
  // sums of ~1000 terms of size <= 1, so 1e-5 covers their different rounding.
  Generator g(3);
  const Tensor x = normal({2, 4, 1001}, 0.0f, 5.0f, &g);
  std::vector<int64_t> t(8);
  for (int64_t& v : t) v = g.randint(0, 1001);
  t[5] = -1;
  const IntTensor targets({2, 4}, t);
  const std::vector<float> lp = log_softmax(x, -1).to_vector();
  double expected = 0;
  for (size_t r = 0; r < t.size(); ++r)
    if (t[r] != -1) expected -= lp[r * 1001 + t[r]] / 7.0;
  CHECK(cross_entropy(x, targets, -1).item() == doctest::Approx(expected).epsilon(1e-5));
  CHECK(cross_entropy(x.view({8, 1001}), IntTensor({8}, t), -1).item() == doctest::Approx(expected).epsilon(1e-5));
}

TEST_CASE("cross_entropy: backward matches finite differences, 2-D, 3-D and strided") {
  const IntTensor t2({4}, {3, -100, 0, 6});
  CHECK_GRADCHECK("cross_entropy", Fn([&](const std::vector<Tensor>& v) { return cross_entropy(v[0], t2); }),
                  std::vector<Tensor>{leaf({4, 37}, 21, 2.0f)});
  const IntTensor t3({2, 3}, {1, 4, 0, 2, 2, -1});
  CHECK_GRADCHECK("cross_entropy", Fn([&](const std::vector<Tensor>& v) { return cross_entropy(v[0], t3, -1); }),
                  std::vector<Tensor>{leaf({2, 3, 5}, 22, 2.0f)});
  // logits [N, V] read through a transpose of a [V, N] tensor.
  CHECK_GRADCHECK("cross_entropy",
                  Fn([&](const std::vector<Tensor>& v) { return cross_entropy(v[0].transpose(0, 1), t2); }),
                  std::vector<Tensor>{leaf({37, 4}, 23, 2.0f)});
  // Scaling the upstream gradient scales every logit gradient.
  Tensor x = leaf({4, 37}, 24);
  mul(cross_entropy(x, t2), 3.0f).backward();
  const std::vector<float> g3 = x.grad().to_vector();
  Tensor y = leaf({4, 37}, 24);
  cross_entropy(y, t2).backward();
  const std::vector<float> g1 = y.grad().to_vector();
  for (size_t i = 0; i < g1.size(); ++i) CHECK(g3[i] == doctest::Approx(3 * g1[i]).epsilon(1e-6));
}

TEST_CASE("cross_entropy: all targets ignored gives NaN, as PyTorch, and a zero gradient") {
  Tensor x = leaf({2, 4}, 5);
  const Tensor loss = cross_entropy(x, IntTensor({2}, {-100, -100}));
  CHECK(std::isnan(loss.item()));
  loss.backward();
  check_values(x.grad(), std::vector<float>(8, 0.0f), 0.0f);
}

TEST_CASE("cross_entropy: errors name the shapes, or the bad target's position and value") {
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({4, 5}), IntTensor({3}, {0, 1, 2})),
                       "cross_entropy: targets [3] must have the shape of logits [4, 5] without its class dim, [4]",
                       Error);
  CHECK_THROWS_WITH_AS(
      cross_entropy(zeros({2, 3, 5}), IntTensor({6}, {0, 1, 2, 3, 4, 0})),
      "cross_entropy: targets [6] must have the shape of logits [2, 3, 5] without its class dim, [2, 3]", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({2, 3, 5}), IntTensor({2, 3}, {0, 1, 2, 3, 5, 0})),
                       "cross_entropy: target 5 at position [1, 1] is outside [0, 5) and is not ignore_index -100",
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({2, 5}), IntTensor({2}, {-100, 0}), -1),
                       "cross_entropy: target -100 at position [0] is outside [0, 5) and is not ignore_index -1",
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(scalar_tensor(1.0f), IntTensor({}, {0})),
                       "cross_entropy: logits must have a class dim, got shape []", Error);
}
