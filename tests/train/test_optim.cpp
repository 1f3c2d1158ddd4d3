// Optimizers, gradient clipping and the LR schedule against PyTorch's numbers.
// Expected values come from torch 1.13 (torch.optim.*) run on the same
// weights and gradients: w0 = [0.5, -1.25, 2.0], then three steps with the
// gradients below. Tolerance 1e-6: float32 results of the same formulas, where
// only the order of a few roundings may differ (~1e-7 at these magnitudes).
#include "tests/core/test_helpers.h"
#include "train/optim.h"

using namespace ember;

namespace {

const std::vector<std::vector<float>> kGrads = {{0.1f, -0.2f, 0.3f}, {-0.4f, 0.05f, 0.2f}, {0.25f, 0.25f, -0.6f}};

template <typename MakeOpt>
std::vector<float> three_steps(MakeOpt make) {
  Tensor w = tensor({3}, {0.5f, -1.25f, 2.0f});
  w.requires_grad_();
  auto opt = make(std::vector<ParamGroup>{{{w}, 0.0}});
  for (const auto& g : kGrads) {
    w.set_grad(tensor({3}, g));
    opt.step();
  }
  return w.to_vector();
}

std::vector<ParamGroup> with_decay(std::vector<ParamGroup> groups, double wd) {
  groups[0].weight_decay = wd;
  return groups;
}

}  // namespace

TEST_CASE("SGD: three steps match torch.optim.SGD, plain and with momentum and weight decay") {
  ember::testing::check_values(tensor({3}, three_steps([](auto g) { return SGD(g, 0.1); })),
                               {0.505000055f, -1.25999999f, 2.00999999f}, 1e-6f);
  ember::testing::check_values(tensor({3}, three_steps([](auto g) { return SGD(with_decay(g, 0.01), 0.1, 0.9); })),
                               {0.521095395f, -1.22336447f, 1.9296236f}, 1e-6f);
}

TEST_CASE("Adam and AdamW: three steps match torch.optim (bias correction, eps placement, decay)") {
  // Adam adds wd * w to the gradient (L2); AdamW multiplies w by (1 - lr wd).
  ember::testing::check_values(
      tensor({3}, three_steps([](auto g) { return Adam(with_decay(g, 0.1), 0.01, 0.9, 0.99, 1e-8); })),
      {0.492823064f, -1.22814572f, 1.97705007f}, 1e-6f);
  ember::testing::check_values(
      tensor({3}, three_steps([](auto g) { return AdamW(with_decay(g, 0.1), 0.01, 0.9, 0.95, 1e-8); })),
      {0.494432271f, -1.23413944f, 1.97587848f}, 1e-6f);
}

TEST_CASE("optimizers: parameters without a gradient are left alone; bad settings are errors") {
  Tensor a = ones({2}), b = ones({2});
  a.requires_grad_();
  b.requires_grad_();
  AdamW opt({{{a, b}, 0.1}}, 0.1);
  a.set_grad(ones({2}));
  opt.step();
  CHECK(a.at({0}) != 1.0f);
  CHECK(b.at({0}) == 1.0f);
  CHECK_THROWS_WITH_AS(AdamW({{{a}, 0.0}}, 0.1, 1.0, 0.9), "adam: betas must be in [0, 1), got (1, 0.9)", Error);
  CHECK_THROWS_WITH_AS(SGD({{{a}, 0.0}}, -1.0), "optimizer: learning rate must be >= 0, got -1", Error);
}

TEST_CASE("decay_groups: 2-D weights decay, biases and LayerNorm parameters do not") {
  const std::vector<NamedTensor> params = {
      {"w", zeros({3, 2})}, {"b", zeros({3})}, {"ln.weight", ones({2})}, {"emb", zeros({5, 2})}};
  const auto groups = decay_groups(params, 0.1);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].weight_decay == 0.1);
  CHECK(groups[0].params.size() == 2);
  CHECK(groups[1].weight_decay == 0.0);
  CHECK(groups[1].params.size() == 2);
  CHECK(groups[1].params[0].is_same(params[1].second));
}

TEST_CASE("clip_grad_norm: returns the norm before clipping and scales to max_norm") {
  Tensor w = zeros({3});
  w.requires_grad_();
  w.set_grad(tensor({3}, {3.0f, 4.0f, 12.0f}));
  CHECK(clip_grad_norm({w}, 1.0f) == doctest::Approx(13.0f));
  ember::testing::check_values(w.grad(), {0.230769217f, 0.307692289f, 0.923076868f}, 1e-7f);  // torch's result
  w.set_grad(tensor({3}, {0.3f, 0.4f, 0.0f}));
  CHECK(clip_grad_norm({w}, 1.0f) == doctest::Approx(0.5f));
  ember::testing::check_values(w.grad(), {0.3f, 0.4f, 0.0f}, 0.0f);  // below max_norm: untouched
}

TEST_CASE("cosine_lr: linear warmup, cosine midpoint, floor at min_lr") {
  const double max_lr = 1e-3, min_lr = 1e-4;
  auto lr = [&](int64_t it) { return cosine_lr(it, max_lr, min_lr, 100, 2000); };
  CHECK(lr(0) == doctest::Approx(1e-3 / 101));
  CHECK(lr(99) == doctest::Approx(1e-3 * 100 / 101));
  CHECK(lr(100) == doctest::Approx(1e-3));
  CHECK(lr(1050) == doctest::Approx(5.5e-4));  // halfway through the decay: (max + min) / 2
  CHECK(lr(2000) == doctest::Approx(1e-4));
  CHECK(lr(5000) == doctest::Approx(1e-4));
  CHECK(lr(500) > lr(1500));
}
