// The autograd engine: leaves and requires_grad, seeding and accumulation,
// shared inputs and diamonds, deep chains (backward and destruction without
// recursion), freed graphs, NoGradGuard, detach, retain_grad, graph dumps.
// (The storage cache and parallel_for are in test_parallel.cpp.)
#include <pthread.h>

#include <cmath>
#include <utility>

#include "tests/core/test_helpers.h"

using namespace ember;
using ember::testing::check_values;

namespace {

// Runs fn on a thread with a 512 KiB stack and reports whether it finished.
// A recursion of one level per node through 10,000 nodes needs several MiB
// (each level is a few frames of shared_ptr release, ~TensorImpl and ~Node),
// so an accidental recursion crashes here instead of passing on a roomy main stack.
template <typename F>
bool run_on_small_stack(F fn) {
  struct Ctx {
    F* fn;
    bool done = false;
  } ctx{&fn};
  auto entry = [](void* p) -> void* {
    auto* c = static_cast<Ctx*>(p);
    (*c->fn)();
    c->done = true;
    return nullptr;
  };
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 512 * 1024);
  pthread_t thread;
  const bool started = pthread_create(&thread, &attr, entry, &ctx) == 0;
  pthread_attr_destroy(&attr);
  if (started) pthread_join(thread, nullptr);
  return started && ctx.done;
}

constexpr int kChain = 10000;

// A deliberately broken op: its backward hands back a gradient of the wrong
// shape ([1] for a [2] input), which the engine must refuse.
void broken_backward(Node&, const Tensor&, std::vector<Tensor>& gi) { gi[0] = ones({1}); }
Tensor broken_op(const Tensor& a) {
  Tensor out = a.detach().clone();
  record(out, "broken", EMBER_BACKWARD(broken_backward), {a});
  return out;
}

// x -> x * 1.0001, kChain times: one unary node per step.
Tensor unary_chain(const Tensor& x) {
  Tensor h = x;
  for (int i = 0; i < kChain; ++i) h = h * 1.0001f;
  return h;
}

// h -> h + 0.0001 * h, kChain times: each h feeds two nodes, as in a residual
// stream, so no single node owns the tensor that carries the chain on.
Tensor residual_chain(const Tensor& x) {
  Tensor h = x;
  for (int i = 0; i < kChain; ++i) h = h + h * 1e-4f;
  return h;
}

}  // namespace

TEST_CASE("autograd: factories make leaves that do not require grad until asked") {
  Tensor x = ones({2});
  CHECK_FALSE(x.requires_grad());
  CHECK(x.is_leaf());
  CHECK(x.grad_fn() == nullptr);
  x.requires_grad_();
  CHECK(x.requires_grad());
  CHECK(x.is_leaf());
  CHECK_FALSE(x.grad().defined());  // allocated lazily by the first backward
  x.requires_grad_(false);
  CHECK_FALSE(x.requires_grad());

  const Tensor c = ones({2}) * ones({2});  // no input needs grad: nothing recorded
  CHECK_FALSE(c.requires_grad());
  CHECK(c.grad_fn() == nullptr);

  x.requires_grad_();
  const Tensor y = x * 3.0f;  // one input needs grad: a non-leaf with a node
  CHECK(y.requires_grad());
  CHECK_FALSE(y.is_leaf());
  REQUIRE(y.grad_fn() != nullptr);
  CHECK(std::string(y.grad_fn()->op) == "mul_scalar");
  CHECK(y.grad_fn()->inputs.size() == 1);
  CHECK(y.grad_fn()->inputs[0].is_same(x));
}

TEST_CASE("autograd: requires_grad_ on a non-leaf throws naming the op that made it") {
  Tensor x = ones({2});
  x.requires_grad_();
  Tensor y = x * 2.0f;
  CHECK_THROWS_WITH_AS(y.requires_grad_(false),
                       "requires_grad_: only leaf tensors can change requires_grad (this one comes from 'mul_scalar')",
                       Error);
  CHECK(y.requires_grad());  // unchanged by the failed call
  Tensor undefined;
  CHECK_THROWS_WITH_AS(undefined.requires_grad_(), "requires_grad_: undefined tensor", Error);
}

TEST_CASE("autograd: backward from a scalar fills leaf gradients") {
  Tensor x = tensor({3}, {1, 2, 3});
  x.requires_grad_();
  const Tensor loss = sum(x * x * 0.5f);  // d/dx = x
  loss.backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().shape() == Shape{3});
  check_values(x.grad(), {1, 2, 3});
  Tensor s = scalar_tensor(2.0f);  // a leaf as its own root receives the seed
  s.requires_grad_();
  s.backward();
  check_values(s.grad(), {1});
}

TEST_CASE("autograd: backward with a given output gradient seeds the chain rule with it") {
  Tensor x = tensor({2, 2}, {1, 2, 3, 4});
  x.requires_grad_();
  const Tensor y = x * x;  // dy/dx = 2x, so x.grad = 2 x g
  y.backward(tensor({2, 2}, {1, -1, 0.5f, 2}));
  check_values(x.grad(), {2, -4, 3, 16});
}

TEST_CASE("autograd: backward errors name the rule: non-scalar without a gradient; wrong shape; no grad") {
  Tensor x = ones({2, 3});
  x.requires_grad_();
  const Tensor y = x * 2.0f;
  CHECK_THROWS_WITH_AS(y.backward(),
                       "backward: called without a gradient on a tensor of shape [2, 3]; only a single-element "
                       "tensor can be its own seed (pass grad_output otherwise)",
                       Error);
  CHECK_THROWS_WITH_AS(y.backward(ones({3})), "backward: gradient shape [3] differs from the tensor's shape [2, 3]",
                       Error);
  CHECK_THROWS_WITH_AS(sum(ones({2})).backward(), "backward: tensor [] does not require grad and has no grad_fn",
                       Error);
  CHECK_FALSE(x.grad().defined());  // no failed call touched the leaf
}

TEST_CASE("autograd: a backward that returns a gradient of the wrong shape is reported, not broadcast") {
  Tensor x = ones({2});
  x.requires_grad_();
  const Tensor y = broken_op(x);
  const std::string expected = fmt::format(
      "backward: 'broken' (node #{}) returned a gradient of shape [1] for its input 0 of shape [2]", y.grad_fn()->seq);
  CHECK_THROWS_WITH_AS(sum(y).backward(), expected.c_str(), Error);
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("autograd: gradients accumulate into leaves across backward calls") {
  Tensor x = tensor({2}, {1, -2});
  x.requires_grad_();
  sum(x * 3.0f).backward();
  check_values(x.grad(), {3, 3});
  sum(x * x).backward();  // adds 2x on top of the 3 already there
  check_values(x.grad(), {5, -1});
}

TEST_CASE("autograd: a tensor used twice receives the sum of both gradients") {
  Tensor x = tensor({3}, {1, -2, 0.5f});
  x.requires_grad_();
  sum(x * x).backward();  // both mul inputs are x: 2x
  check_values(x.grad(), {2, -4, 1});
  Tensor y = tensor({2}, {2, 3});
  y.requires_grad_();
  sum(y + y + y).backward();  // three paths of 1
  check_values(y.grad(), {3, 3});
}

TEST_CASE("autograd: a diamond graph sums the gradients of both branches") {
  // x -> t = tanh(x) -> a = 2t, b = t^2 -> z = sum(a * b) = sum(2 t^3);
  // dz/dx = 6 t^2 (1 - t^2), reached through two branches that meet at t.
  Tensor x = tensor({3}, {0.5f, -1.0f, 2.0f});
  x.requires_grad_();
  const Tensor t = tanh(x);
  const Tensor a = t * 2.0f;
  const Tensor b = t * t;
  sum(a * b).backward();
  std::vector<float> expected;
  for (float v : {0.5f, -1.0f, 2.0f}) {
    const double th = std::tanh(static_cast<double>(v));
    expected.push_back(static_cast<float>(6 * th * th * (1 - th * th)));
  }
  check_values(x.grad(), expected, 1e-6f);  // float32 rounding of values below 2
}

TEST_CASE("autograd: a 10000-op chain backs up and is destroyed without recursion") {
  // Each step multiplies the gradient by 1.0001 (the residual one through two paths
  // that rejoin), so x.grad = 1.0001^10000 ~ 2.71815. Float32 rounds each of the
  // 10,000 products by at most 6e-8 relative and 1.0001f is 1.7e-8 off: under 1e-3 in all.
  const double expected = std::pow(1.0001, kChain);
  for (Tensor (*chain)(const Tensor&) : {unary_chain, residual_chain}) {
    float grad = 0.0f;
    const bool finished = run_on_small_stack([&] {
      Tensor x = ones({1});
      x.requires_grad_();
      sum(chain(x)).backward();
      grad = x.grad().item();
    });
    CHECK(finished);
    CHECK(grad == doctest::Approx(expected).epsilon(1e-3));
  }
}

TEST_CASE("autograd: a long chain that was never backpropagated is destroyed without recursion") {
  std::weak_ptr<Node> first;
  const bool finished = run_on_small_stack([&] {
    Tensor x = ones({4});
    x.requires_grad_();
    {
      Tensor h = unary_chain(x);
      Tensor r = residual_chain(x);
      // The first node of the unary chain is owned through 10,000 others.
      std::shared_ptr<Node> n = h.grad_fn();
      while (!n->inputs[0].is_leaf()) n = n->inputs[0].grad_fn();
      first = n;
    }  // h and r go out of scope here: the graphs must unwind iteratively
  });
  CHECK(finished);
  CHECK(first.expired());  // and nothing leaked
}

TEST_CASE("autograd: a second backward through a freed graph throws; retain_graph keeps it") {
  Tensor x = tensor({2}, {1, 2});
  x.requires_grad_();
  {
    const Tensor loss = sum(x * x);
    loss.backward();
    check_values(x.grad(), {2, 4});
    const std::string freed = fmt::format(
        "backward: the graph through 'sum' (node #{}) was already freed by an earlier backward; pass "
        "retain_graph=true to the first backward to go through it twice",
        loss.grad_fn()->seq);
    CHECK_THROWS_WITH_AS(loss.backward(), freed.c_str(), Error);
    check_values(x.grad(), {2, 4});  // the failed call added nothing
  }
  x.set_grad(Tensor());
  const Tensor loss = sum(x * x);
  loss.backward(/*retain_graph=*/true);
  check_values(x.grad(), {2, 4});
  loss.backward();
  check_values(x.grad(), {4, 8});  // the same graph run twice doubles the gradient
}

TEST_CASE("autograd: a graph freed through a shared subgraph is reported rather than skipped") {
  Tensor x = tensor({2}, {1, 2});
  x.requires_grad_();
  const Tensor y = exp(x);
  const Tensor a = sum(y), b = sum(y * 2.0f);
  a.backward();  // frees y's node too
  CHECK_THROWS_AS(b.backward(), Error);
}

TEST_CASE("autograd: NoGradGuard records nothing and restores the previous mode") {
  Tensor x = ones({2});
  x.requires_grad_();
  CHECK(grad_mode_enabled());
  {
    NoGradGuard guard;
    CHECK_FALSE(grad_mode_enabled());
    const Tensor y = exp(x * 2.0f) + x;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
    {
      NoGradGuard inner;
      CHECK_FALSE(grad_mode_enabled());
    }
    CHECK_FALSE(grad_mode_enabled());  // the inner guard restores "off", not "on"
  }
  CHECK(grad_mode_enabled());
  const Tensor z = x * 2.0f;
  CHECK(z.grad_fn() != nullptr);
}

TEST_CASE("autograd: detach shares data but has no history") {
  Tensor x = tensor({2}, {1, 2});
  x.requires_grad_();
  const Tensor y = x * 3.0f;
  const Tensor d = y.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.grad_fn() == nullptr);
  CHECK(d.data() == y.data());
  d.data()[0] = 10.0f;
  CHECK(y.at({0}) == 10.0f);
  // Gradient stops at the detach: only the direct x term reaches x.
  sum(d * x + x).backward();
  check_values(x.grad(), {11, 7});
}

TEST_CASE("autograd: retain_grad keeps .grad on a non-leaf; other non-leaves keep none") {
  Tensor x = tensor({2}, {1, 2});
  x.requires_grad_();
  Tensor y = x * 2.0f;
  y.retain_grad();
  const Tensor z = y * y;  // not retained
  Tensor loss = sum(z);
  loss.retain_grad();
  loss.backward(/*retain_graph=*/true);
  REQUIRE(y.grad().defined());
  check_values(y.grad(), {4, 8});  // d sum(y^2)/dy = 2y
  check_values(loss.grad(), {1});
  CHECK_FALSE(z.grad().defined());
  check_values(x.grad(), {8, 16});
  loss.backward();
  check_values(y.grad(), {8, 16});  // accumulates like a leaf's
  Tensor c = ones({1});
  CHECK_THROWS_WITH_AS(c.retain_grad(), "retain_grad: the tensor does not require grad", Error);
}

TEST_CASE("autograd: graph_str lists every op with its inputs; Node seq numbers increase") {
  Tensor w = ones({2});
  w.requires_grad_();
  w.set_name("w");
  const Tensor a = w * 2.0f;
  const Tensor b = exp(a);
  const Tensor c = sum(b + w);
  const std::string g = graph_str(c);
  for (const char* op : {"sum", "add", "exp", "mul_scalar"}) CHECK_MESSAGE(g.find(op) != std::string::npos, g);
  CHECK(g.find("leaf w") != std::string::npos);
  CHECK(std::count(g.begin(), g.end(), '\n') == 4);              // one line per node
  CHECK(g.find(fmt::format("#{} sum", c.grad_fn()->seq)) == 0);  // the root first, by its seq
  CHECK(a.grad_fn()->seq < b.grad_fn()->seq);
  CHECK(b.grad_fn()->seq < c.grad_fn()->inputs[0].grad_fn()->seq);
  CHECK(c.grad_fn()->inputs[0].grad_fn()->seq < c.grad_fn()->seq);
  c.backward();
  CHECK(graph_str(c).find("(freed)") != std::string::npos);
}
