// A program outside ember's tree, built by tools/check_install.sh against an
// installed ember with nothing but `pkg-config --cflags --libs ember`: a 2-8-1
// MLP (tanh hidden layer) learns XOR with plain SGD, then prints its loss and
// its rounded predictions for the four inputs.
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/ember.h"

using namespace ember;

int main() {
  try {
    Generator gen(1234);
    Tensor w1 = normal({2, 8}, 0.0f, 1.0f / std::sqrt(2.0f), &gen), b1 = zeros({8});
    Tensor w2 = normal({8, 1}, 0.0f, 1.0f / std::sqrt(8.0f), &gen), b2 = zeros({1});
    const std::vector<Tensor*> params = {&w1, &b1, &w2, &b2};
    for (Tensor* p : params) p->requires_grad_();
    const Tensor x = tensor({4, 2}, {0, 0, 0, 1, 1, 0, 1, 1});
    const Tensor y = tensor({4, 1}, {0, 1, 1, 0});
    auto forward = [&] { return matmul(tanh(matmul(x, w1) + b1), w2) + b2; };  // [4, 2] -> [4, 1]

    for (int step = 0; step < 2000; ++step) {
      mean(pow(forward() - y, 2.0f)).backward();
      NoGradGuard no_grad;  // p -= 0.2 p.grad, then clear the grad
      for (Tensor* p : params) {
        float* data = p->data();
        float* grad = p->grad().data();
        for (int64_t i = 0; i < p->numel(); ++i) data[i] -= 0.2f * grad[i], grad[i] = 0.0f;
      }
    }
    const Tensor out = forward();
    std::printf("loss %g\npredictions", mean(pow(out - y, 2.0f)).item());
    for (float v : out.to_vector()) std::printf(" %d", v > 0.5f ? 1 : 0);
    std::printf("\n");
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
