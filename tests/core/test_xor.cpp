// End to end: a 2-8-1 MLP (tanh hidden layer, linear output) learns XOR with a
// plain SGD loop written here: forward, mean squared error, backward, then an
// in-place update of each parameter's data under NoGradGuard and zeroed grads.
#include <cmath>

#include "tests/core/test_helpers.h"

using namespace ember;

namespace {

struct Mlp {
  Tensor w1, b1, w2, b2;  // [2, 8], [8], [8, 1], [1]

  explicit Mlp(Generator& gen) {
    // Scaled as PyTorch's default Linear init would (1/sqrt(fan_in)), keeping tanh out of saturation.
    w1 = normal({2, 8}, 0.0f, 1.0f / std::sqrt(2.0f), &gen);
    b1 = zeros({8});
    w2 = normal({8, 1}, 0.0f, 1.0f / std::sqrt(8.0f), &gen);
    b2 = zeros({1});
    for (Tensor* p : params()) p->requires_grad_();
  }
  std::vector<Tensor*> params() { return {&w1, &b1, &w2, &b2}; }

  // x [4, 2] -> [4, 1]
  Tensor forward(const Tensor& x) const { return matmul(tanh(matmul(x, w1) + b1), w2) + b2; }
};

// p -= lr * p.grad, then p.grad = 0, straight on the buffers: no graph is recorded.
void sgd_step(std::vector<Tensor*> params, float lr) {
  NoGradGuard no_grad;
  for (Tensor* p : params) {
    float* data = p->data();  // leaves made by factories: contiguous, like their grads
    float* grad = p->grad().data();
    for (int64_t i = 0; i < p->numel(); ++i) {
      data[i] -= lr * grad[i];
      grad[i] = 0.0f;
    }
  }
}

}  // namespace

TEST_CASE("xor: a 2-8-1 MLP learns XOR with plain SGD") {
  Generator gen(1234);
  Mlp net(gen);
  const Tensor x = tensor({4, 2}, {0, 0, 0, 1, 1, 0, 1, 1});
  const Tensor y = tensor({4, 1}, {0, 1, 1, 0});
  auto loss_of = [&](const Tensor& out) { return mean(pow(out - y, 2.0f)); };

  const float initial = loss_of(net.forward(x)).item();
  for (int step = 0; step < 2000; ++step) {
    loss_of(net.forward(x)).backward();
    sgd_step(net.params(), 0.2f);
  }
  CHECK(initial > 0.1f);  // it starts out wrong: chance level for XOR is a loss of 0.25
  for (Tensor* p : net.params()) CHECK(sum(pow(p->grad(), 2.0f)).item() == 0.0f);  // zeroed by the step
  const Tensor out = net.forward(x);
  CHECK(loss_of(out).item() < 0.01f);
  const std::vector<float> pred = out.to_vector();
  CHECK(pred[0] < 0.5f);
  CHECK(pred[1] > 0.5f);
  CHECK(pred[2] > 0.5f);
  CHECK(pred[3] < 0.5f);
  // The update ran without recording: parameters are still leaves.
  for (Tensor* p : net.params()) CHECK(p->is_leaf());
}
