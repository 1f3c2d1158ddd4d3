// masked_fill, causal_mask and dropout: values, broadcasting of the mask,
// gradients that stop at filled or dropped elements, dropout's statistics and
// reproducibility from a seed, and the error messages.
#include <cmath>
#include <functional>
#include <limits>

#include "tests/core/test_helpers.h"

using namespace ember;
using ember::testing::check_values;
using ember::testing::leaf;

namespace {
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;
}  // namespace

TEST_CASE("masked_fill: nonzero mask entries take the value, broadcasting over rows") {
  const Tensor a = tensor({2, 3}, {1, 2, 3, 4, 5, 6});
  check_values(masked_fill(a, tensor({3}, {1, 0, 0.5f}), -9.0f), {-9, 2, -9, -9, 5, -9}, 0.0f);
  check_values(masked_fill(a, tensor({2, 1}, {0, 1}), 0.0f), {1, 2, 3, 0, 0, 0}, 0.0f);
  check_values(masked_fill(a, zeros({2, 3}), 7.0f), {1, 2, 3, 4, 5, 6}, 0.0f);
  // Strided input: the mask lines up with the transposed view, not the storage.
  check_values(masked_fill(a.transpose(0, 1), tensor({3, 2}, {1, 0, 0, 0, 0, 1}), 0.0f), {0, 4, 2, 5, 3, 0}, 0.0f);
}

TEST_CASE("masked_fill: gradient is zero where filled and passes through elsewhere") {
  Tensor a = leaf({2, 3}, 1);
  sum(masked_fill(a, tensor({3}, {0, 1, 0}), 5.0f)).backward();
  check_values(a.grad(), {1, 0, 1, 1, 0, 1}, 0.0f);
  const Tensor mask = tensor({3, 1}, {1, 0, 1});
  CHECK_GRADCHECK("masked_fill", Fn([&](const std::vector<Tensor>& v) { return masked_fill(v[0], mask, -2.0f); }),
                  std::vector<Tensor>{leaf({2, 3, 4}, 2)});
  CHECK_GRADCHECK("masked_fill",
                  Fn([&](const std::vector<Tensor>& v) { return masked_fill(v[0].transpose(0, 1), mask, 0.0f); }),
                  std::vector<Tensor>{leaf({3, 3, 2}, 3)});
}

TEST_CASE("causal_mask: ones strictly above the diagonal, where key j > query i") {
  check_values(causal_mask(3), {0, 1, 1, 0, 0, 1, 0, 0, 0}, 0.0f);
  CHECK(causal_mask(1).to_vector() == std::vector<float>{0});
  CHECK(causal_mask(0).shape() == Shape{0, 0});
  // With -inf filled in, softmax over keys puts no weight on the future.
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor p = softmax(masked_fill(zeros({3, 3}), causal_mask(3), -inf), -1);
  check_values(p, {1, 0, 0, 0.5f, 0.5f, 0, 1.0f / 3, 1.0f / 3, 1.0f / 3}, 1e-7f);
}

TEST_CASE("masked_fill and causal_mask: errors name the shapes") {
  CHECK_THROWS_WITH_AS(masked_fill(zeros({2, 3}), zeros({2}), 0.0f),
                       "masked_fill: mask [2] does not broadcast to the input's shape [2, 3] (the result keeps the "
                       "input's shape)",
                       Error);
  // Broadcastable together, but the result would be [4, 2, 3], not the input's [2, 3].
  CHECK_THROWS_WITH_AS(masked_fill(zeros({2, 3}), zeros({4, 1, 3}), 0.0f),
                       "masked_fill: mask [4, 1, 3] does not broadcast to the input's shape [2, 3] (the result keeps "
                       "the input's shape)",
                       Error);
  CHECK_THROWS_WITH_AS(causal_mask(-1), "causal_mask: T must be >= 0, got -1", Error);
}

TEST_CASE("dropout: kept values are scaled by 1/(1-p) and about p of them are dropped") {
  Generator gen(123);
  const float p = 0.25f;
  const std::vector<float> y = dropout(ones({10001}), p, true, &gen).to_vector();  // odd: the last draw is single
  int64_t dropped = 0;
  for (float v : y) {
    if (v == 0.0f)
      ++dropped;
    else
      CHECK(v == 1.0f / (1.0f - p));
  }
  // The dropped count is Binomial(10001, 0.25): sd of the fraction sqrt(p(1-p)/n) = 0.0043,
  // so 0.02 is 4.6 sd (and the seed is fixed, so the test is deterministic).
  CHECK(std::abs(static_cast<double>(dropped) / static_cast<double>(y.size()) - p) < 0.02);
}

TEST_CASE("dropout: one seed gives one mask; eval mode and p = 0 return the input itself") {
  const Tensor x = arange(1, 101).view({10, 10});
  Generator g1(7), g2(7), g3(8);
  const std::vector<float> a = dropout(x, 0.5f, true, &g1).to_vector();
  CHECK(a == dropout(x, 0.5f, true, &g2).to_vector());
  CHECK(a != dropout(x, 0.5f, true, &g3).to_vector());
  manual_seed(99);
  const std::vector<float> d1 = dropout(x, 0.5f, true).to_vector();  // default generator
  manual_seed(99);
  CHECK(d1 == dropout(x, 0.5f, true).to_vector());
  CHECK(dropout(x, 0.5f, false).is_same(x));
  CHECK(dropout(x, 0.0f, true).is_same(x));
  // p = 1 drops everything (allowed, as in PyTorch).
  check_values(dropout(x, 1.0f, true, &g1), std::vector<float>(100, 0.0f), 0.0f);
  // Strided input: each output is 0 or twice the input element at the same index.
  const Tensor xt = x.transpose(0, 1);
  const std::vector<float> yt = dropout(xt, 0.5f, true, &g1).to_vector(), vt = xt.contiguous().to_vector();
  for (size_t i = 0; i < yt.size(); ++i) CHECK((yt[i] == 0.0f || yt[i] == 2.0f * vt[i]));
}

TEST_CASE("dropout: backward multiplies by the same scaled mask") {
  Tensor x = leaf({4, 8}, 9);
  Generator gen(11);
  const Tensor y = dropout(x, 0.3f, true, &gen);
  sum(y).backward();
  const std::vector<float> g = x.grad().to_vector(), yv = y.to_vector(), xv = x.to_vector();
  for (size_t i = 0; i < g.size(); ++i) CHECK(g[i] * xv[i] == doctest::Approx(yv[i]).epsilon(1e-6));
  // A fresh generator with the same seed per call keeps the mask fixed across finite differences.
  CHECK_GRADCHECK("dropout", Fn([](const std::vector<Tensor>& v) {
                    Generator g(5);
                    return dropout(v[0], 0.4f, true, &g);
                  }),
                  std::vector<Tensor>{leaf({3, 7}, 10)});
}

TEST_CASE("dropout: p outside [0, 1] is an error, in training and eval alike") {
  CHECK_THROWS_WITH_AS(dropout(ones({2}), 1.5f, true), "dropout: p must be in [0, 1], got 1.5", Error);
  CHECK_THROWS_WITH_AS(dropout(ones({2}), -0.1f, false), "dropout: p must be in [0, 1], got -0.1", Error);
  CHECK_THROWS_WITH_AS(dropout(ones({2}), std::nanf(""), true), "dropout: p must be in [0, 1], got nan", Error);
}

TEST_CASE("dropout: an element is dropped exactly when its uniform draw u = bits / 2^24 is below p") {
  // Each 64-bit draw gives two elements their 24-bit draws: bits 40-63 for the
  // first, 8-31 for the second. Setting p to exactly one of them (p = bits /
  // 2^24 is a float: 24 bits fit its mantissa) must keep that element (u < p
  // is false) and drop it at the next float above p.
  Generator peek(2024);
  const uint64_t r = peek.next_u64();
  for (const uint64_t bits : {r >> 40, (r >> 8) & 0xFFFFFFu}) {
    CAPTURE(bits);
    const int64_t index = bits == r >> 40 ? 0 : 1;
    const float p = static_cast<float>(static_cast<double>(bits) / 16777216.0);
    REQUIRE(static_cast<double>(p) * 16777216.0 == static_cast<double>(bits));
    Generator at(2024), above(2024);
    CHECK(dropout(ones({2}), p, true, &at).to_vector()[index] != 0.0f);
    CHECK(dropout(ones({2}), std::nextafter(p, 1.0f), true, &above).to_vector()[index] == 0.0f);
  }
}
