// Names in the autograd graph: every op's node names its backward op +
// "_backward" (checked over a graph that touches all 42 recorded ops) and
// graph_str prints both; EMBER_BACKWARD takes the name from the function
// itself; an op's named arguments come back as stored and are freed with
// the rest of the node's saved state.
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <unordered_set>

#include "tests/core/test_helpers.h"

using namespace ember;
using ember::testing::leaf;

namespace {

// Every op that records a node, by its op name, grouped by file: the graph
// below must reach each.
std::set<std::string> all_ops() {
  std::istringstream words(
      "add sub mul div add_scalar sub_scalar mul_scalar div_scalar rsub_scalar rdiv_scalar neg "
      "pow exp log sqrt tanh relu gelu  sum mean max  view transpose permute narrow unsqueeze squeeze expand clone cat "
      "softmax log_softmax cross_entropy  matmul linear  gelu_linear  layer_norm  embedding  masked_fill dropout "
      "causal_attention  rope");
  std::set<std::string> ops;
  for (std::string w; words >> w;) ops.insert(w);
  return ops;
}

// One scalar that depends on every op in kAllOps.
Tensor every_op_loss() {
  const Tensor x = leaf({2, 3, 4}, 1), y = leaf({2, 3, 4}, 2);
  const Tensor w = leaf({5, 4}, 3), b = leaf({5}, 4), table = leaf({10, 4}, 5);
  const Tensor qkv = leaf({2, 3, 12}, 6), slopes = leaf({2}, 7);
  const Tensor ln_w = leaf({4}, 8), ln_b = leaf({4}, 9);
  Generator gen(10);
  const std::vector<Tensor> parts = {
      // elementwise (the denominators are exp(.) + 1 > 1)
      x + y, x - y, x * y, x / (exp(y) + 1.0f), x - 1.0f, x * 2.0f, x / 2.0f, 1.0f - x, 1.0f / (exp(x) + 1.0f), -x,
      // unary
      pow(exp(x), 2.0f), log(exp(x) + 1.0f), sqrt(exp(x)), tanh(x), relu(x), gelu(x, GeluApprox::Tanh),
      // reductions (sum_to records a "sum")
      mean(x), mean(x, {1}), max(x, {2}), sum_to(x, {3, 1}),
      // views, copies, cat and stack (unsqueeze + cat)
      x.reshape({6, 4}), x.transpose(0, 2), x.permute({2, 0, 1}), x.narrow(1, 1, 2), x.unsqueeze(0).squeeze(0),
      x.narrow(2, 0, 1).expand({2, 3, 5}), x.transpose(0, 1).contiguous(), cat({x, y}, 1), stack({x, y}, 0),
      // softmax and the loss
      softmax(x, -1), log_softmax(x, 1), cross_entropy(x.view({6, 4}), IntTensor({6}, {0, 1, 2, 3, 0, -1}), -1),
      // products, norm, lookups, masks, attention, rotary
      matmul(x, y.transpose(1, 2)), linear(x, w, b), gelu_linear(x, w, b), layer_norm(x, ln_w, ln_b),
      embedding(table, IntTensor({2, 3}, {0, 9, 4, 4, 1, 7})), masked_fill(x.narrow(2, 0, 3), causal_mask(3), -1.0f),
      dropout(x, 0.5f, true, &gen), causal_attention(qkv, 2, slopes), rope(x.view({2, 3, 2, 2}))};
  Tensor total = sum(parts[0]);
  for (size_t i = 1; i < parts.size(); ++i) total = total + sum(parts[i]);
  return total;
}

// Every node reachable from t, once each.
std::vector<const Node*> nodes_of(const Tensor& t) {
  std::vector<const Node*> out, stack{t.grad_fn().get()};
  std::unordered_set<const Node*> seen{stack[0]};
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    out.push_back(n);
    for (const Tensor& in : n->inputs)
      if (in.defined() && in.grad_fn() && seen.insert(in.grad_fn().get()).second) stack.push_back(in.grad_fn().get());
  }
  return out;
}

void named_op_backward(Node&, const Tensor& g, std::vector<Tensor>& gi) { gi[0] = g; }

struct NamedOpArgs {
  int64_t dim;
  double scale;
  std::vector<float> weights;
};

}  // namespace

TEST_CASE("graph names: every op's backward is named op + \"_backward\"") {
  const Tensor loss = every_op_loss();
  std::set<std::string> seen;
  for (const Node* n : nodes_of(loss)) {
    seen.insert(n->op);
    CHECK_MESSAGE(std::string(n->backward_name) == std::string(n->op) + "_backward", "op ", std::string(n->op),
                  " has backward ", std::string(n->backward_name));
  }
  CHECK(seen.size() == 42);
  CHECK(seen == all_ops());  // the graph reached every op and nothing unexpected
}

TEST_CASE("graph names: graph_str shows each node's op and backward, one line per node") {
  const Tensor loss = every_op_loss();
  const std::string g = graph_str(loss);
  std::istringstream lines(g);
  std::map<uint64_t, std::string> shown;  // seq -> the line up to its inputs
  for (std::string s; std::getline(lines, s);) {
    REQUIRE_MESSAGE((s.size() > 1 && s[0] == '#' && s.find(" <-") != std::string::npos), s);
    shown[std::stoull(s.substr(1))] = s.substr(0, s.find(" <-"));
  }
  const std::vector<const Node*> nodes = nodes_of(loss);
  CHECK(shown.size() == nodes.size());
  for (const Node* n : nodes)
    CHECK(shown[n->seq] == fmt::format("#{} {} ({}_backward) -> {}", n->seq, n->op, n->op, shape_str(n->out_shape)));
  CHECK(g.find(fmt::format("#{} add (add_backward) -> [] <-", loss.grad_fn()->seq)) == 0);  // the root first
}

TEST_CASE("graph names: EMBER_BACKWARD records the function and its own spelling") {
  const Tensor x = leaf({2}, 11);
  Tensor out = x.detach().clone();
  Node* n = record(out, "named_op", EMBER_BACKWARD(named_op_backward), {x});
  REQUIRE(n != nullptr);
  const bool same_function = n->backward == &named_op_backward;
  CHECK(same_function);
  CHECK(std::string(n->backward_name) == "named_op_backward");
  CHECK(std::string(n->op) == "named_op");
}

TEST_CASE("graph names: an op's named arguments read back as stored and are freed with the graph") {
  const Tensor x = leaf({2}, 12);
  Tensor out = x.detach().clone();
  Node* n = record(out, "named_op", EMBER_BACKWARD(named_op_backward), {x});
  REQUIRE(n != nullptr);
  CHECK(n->op_args == nullptr);  // an op without arguments stores none
  n->set_args(NamedOpArgs{.dim = -2, .scale = 0.125, .weights = {1.5f, -3.0f}});
  const NamedOpArgs& a = n->args<NamedOpArgs>();
  CHECK(a.dim == -2);
  CHECK(a.scale == 0.125);
  CHECK(a.weights == std::vector<float>{1.5f, -3.0f});
  const Tensor loss = sum(out);
  loss.backward(/*retain_graph=*/true);
  CHECK(n->args<NamedOpArgs>().dim == -2);  // a retained graph keeps them for the next backward
  loss.backward();
  CHECK(n->op_args == nullptr);  // freed with inputs and saved tensors
  CHECK(x.grad().to_vector() == std::vector<float>{2.0f, 2.0f});
}
