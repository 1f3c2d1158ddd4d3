// layer_norm: a row normalised by hand, optional weight and bias, gradient
// checks (also over many rows, split into chunks, and on strided input),
// thread-count independence of the weight/bias gradients, and the errors.
#include <functional>

#include "core/parallel.h"
#include "tests/core/test_helpers.h"

using namespace ember;
using ember::testing::check_values;
using ember::testing::leaf;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// x = [1, 2, 3, 4]: mean 2.5, biased variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25.
// With eps = 0.75, var + eps = 2, so xhat = (x - 2.5) / sqrt(2).
const std::vector<float> kXhat{-1.06066017f, -0.35355339f, 0.35355339f, 1.06066017f};

}  // namespace

TEST_CASE("layer_norm: forward matches a row normalised by hand") {
  const Tensor x = tensor({1, 4}, {1, 2, 3, 4});
  // Values of magnitude ~1 in float32: a few ulps are under 1e-6.
  check_values(layer_norm(x, Tensor(), Tensor(), 0.75f), kXhat, 1e-6f);
  const Tensor w = tensor({4}, {1, 2, 1, 0.5f}), b = tensor({4}, {0, 0, 1, -1});
  check_values(layer_norm(x, w, b, 0.75f), {-1.06066017f, -0.70710678f, 1.35355339f, -0.46966991f}, 1e-6f);
  check_values(layer_norm(x, w, Tensor(), 0.75f), {-1.06066017f, -0.70710678f, 0.35355339f, 0.53033009f}, 1e-6f);
  check_values(layer_norm(x, Tensor(), b, 0.75f), {-1.06066017f, -0.35355339f, 1.35355339f, 0.06066017f}, 1e-6f);
  // Each row of a batch is normalised on its own: a shifted and scaled copy gives the same xhat
  // (eps 0 so the scale cancels exactly; 2e-6 allows for the rounding of the larger inputs).
  const Tensor two = tensor({2, 4}, {1, 2, 3, 4, 10, 30, 50, 70});
  check_values(layer_norm(two, Tensor(), Tensor(), 0.0f),
               {-1.34164079f, -0.4472136f, 0.4472136f, 1.34164079f, -1.34164079f, -0.4472136f, 0.4472136f, 1.34164079f},
               2e-6f);
  // A constant row has zero variance: xhat is 0, not NaN, thanks to eps.
  check_values(layer_norm(full({1, 3}, 7.0f), Tensor(), Tensor()), {0, 0, 0}, 0.0f);
}

TEST_CASE("layer_norm: backward matches finite differences for x, weight and bias") {
  Generator g(5);
  Tensor w = add(normal({20}, 0.0f, 0.3f, &g), 1.0f).requires_grad_(), b = normal({20}, 0.0f, 0.3f, &g);
  b.requires_grad_();
  const std::vector<Tensor> in{leaf({2, 3, 20}, 31), w, b};
  CHECK_GRADCHECK("layer_norm", Fn([](const std::vector<Tensor>& v) { return layer_norm(v[0], v[1], v[2]); }), in);
  CHECK_GRADCHECK("layer_norm", Fn([](const std::vector<Tensor>& v) { return layer_norm(v[0], Tensor(), Tensor()); }),
                  std::vector<Tensor>{leaf({3, 20}, 32)});
  CHECK_GRADCHECK("layer_norm", Fn([](const std::vector<Tensor>& v) { return layer_norm(v[0], v[1], Tensor()); }),
                  (std::vector<Tensor>{leaf({3, 20}, 33), w}));
  // 100 rows of 5: more rows than backward's 64 chunks, so chunks hold 1 or 2 rows.
  CHECK_GRADCHECK("layer_norm", Fn([](const std::vector<Tensor>& v) { return layer_norm(v[0], v[1], v[2]); }),
                  (std::vector<Tensor>{leaf({100, 5}, 34), leaf({5}, 35), leaf({5}, 36)}));
  // Strided input: normalise over a dim that is not contiguous in memory.
  CHECK_GRADCHECK("layer_norm",
                  Fn([](const std::vector<Tensor>& v) { return layer_norm(v[0].transpose(0, 1), v[1], v[2]); }),
                  (std::vector<Tensor>{leaf({20, 6}, 37), w, b}));
}

TEST_CASE("layer_norm: gradients only for the inputs that need them") {
  Tensor x = leaf({4, 8}, 41);
  const Tensor w = ones({8}), b = zeros({8});  // constants
  sum(mul(layer_norm(x, w, b), arange(32).view({4, 8}))).backward();
  CHECK(x.grad().defined());
  CHECK_FALSE(w.grad().defined());
  // Only the weight requires grad: its gradient is sum over rows of g * xhat.
  const Tensor xc = leaf({2, 3}, 42).detach();
  Tensor w2 = ones({3}).requires_grad_();
  const Tensor gout = tensor({2, 3}, {1, 2, 3, 4, 5, 6});
  layer_norm(xc, w2, Tensor()).backward(gout);
  const std::vector<float> xhat = layer_norm(xc, Tensor(), Tensor()).to_vector();
  check_values(w2.grad(), {xhat[0] + 4 * xhat[3], 2 * xhat[1] + 5 * xhat[4], 3 * xhat[2] + 6 * xhat[5]}, 1e-5f);
}

TEST_CASE("layer_norm: weight and bias gradients do not depend on the thread count") {
  // Partials are per fixed row chunk and added in chunk order, so 1 and 4 threads give the
  // same bits. [640, 512] is large enough that backward really splits the chunks across threads.
  const Tensor x = leaf({640, 512}, 51).detach(), gout = leaf({640, 512}, 52).detach();
  std::vector<std::vector<float>> grads;
  const int saved = num_threads();
  for (int threads : {1, 4}) {
    set_num_threads(threads);
    Tensor w = ones({512}), b = zeros({512});
    w.requires_grad_();
    b.requires_grad_();
    layer_norm(x, w, b).backward(gout);
    grads.push_back(w.grad().to_vector());
    grads.push_back(b.grad().to_vector());
  }
  set_num_threads(saved);
  CHECK(grads[0] == grads[2]);
  CHECK(grads[1] == grads[3]);
}

TEST_CASE("layer_norm: errors name the parameter, its shape and the input's") {
  const Tensor x = zeros({2, 3, 8});
  CHECK_THROWS_WITH_AS(layer_norm(x, ones({7}), Tensor()),
                       "layer_norm: weight has shape [7] but must be [C] = [8] for input [2, 3, 8]", Error);
  CHECK_THROWS_WITH_AS(layer_norm(x, ones({8}), zeros({1, 8})),
                       "layer_norm: bias has shape [1, 8] but must be [C] = [8] for input [2, 3, 8]", Error);
  CHECK_THROWS_WITH_AS(layer_norm(scalar_tensor(1.0f), Tensor(), Tensor()),
                       "layer_norm: input must have a last dim to normalise over, got shape []", Error);
  CHECK_THROWS_WITH_AS(layer_norm(x, Tensor(), Tensor(), -1.0f), "layer_norm: eps must be >= 0, got -1", Error);
}
