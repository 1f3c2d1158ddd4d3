// The backward engine, graph recording, grad mode and the Tensor members that
// deal with gradients.
#include "core/autograd.h"

#include <fmt/format.h>

#include <atomic>
#include <new>
#include <unordered_set>

#include "core/ops.h"
#include "core/ops/strided.h"

namespace ember {
namespace {

thread_local bool grad_mode = true;
std::atomic<uint64_t> next_seq{0};

// The node behind `t` when dropping `t` would destroy it (t is the last handle
// to its impl, and the impl the last owner of its node), else null.
std::shared_ptr<Node> take_history(Tensor& t) {
  TensorImpl* impl = t.impl();
  if (impl && t.use_count() == 1 && impl->grad_fn.use_count() == 1) return std::move(impl->grad_fn);
  return nullptr;
}

// Topological order of the nodes reachable from root, consumers before
// producers, built with an explicit stack (a 10,000-op chain must not recurse).
// It holds owning pointers: releasing a node during backward drops its inputs,
// which may be the last owners of nodes still waiting their turn.
std::vector<std::shared_ptr<Node>> topological_order(const std::shared_ptr<Node>& root) {
  std::vector<std::shared_ptr<Node>> post_order;
  std::unordered_set<Node*> visited{root.get()};
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const std::shared_ptr<Node>& child = node->inputs[next++].grad_fn();
      if (child && visited.insert(child.get()).second) stack.emplace_back(child, 0);
    } else {
      post_order.push_back(node);
      stack.pop_back();
    }
  }
  return {post_order.rbegin(), post_order.rend()};
}

// Adds g into a leaf's .grad. The first gradient is copied, because g may
// alias another tensor (add's backward hands grad_out to both inputs), unless
// the engine made it and nothing else can see it (`may_adopt`: one handle, its
// own whole buffer); adopting it saves, for a 50257 x 256 embedding, a 49 MiB copy.
void accumulate_leaf(TensorImpl& leaf, const Tensor& g, bool may_adopt = false) {
  const bool exclusive = may_adopt && g.use_count() == 1 && g.impl()->storage.use_count() == 1 && g.offset() == 0 &&
                         g.is_contiguous() && g.shape() == leaf.shape && !g.requires_grad();
  if (!leaf.grad.defined() && exclusive) {
    leaf.grad = g;
  } else if (!leaf.grad.defined()) {
    leaf.grad = empty(leaf.shape);
    detail::copy_into(leaf.grad, g);
  } else {
    detail::add_into(leaf.grad, g);
  }
}

void accumulate_node(Node& node, const Tensor& g) {
  if (!node.grad_out_sum.defined()) {
    node.grad_out_sum = g;
  } else {
    NoGradGuard no_grad;
    node.grad_out_sum = add(node.grad_out_sum, g);  // not in place: either side may alias
  }
}

void release(Node& node) {
  node.released = true;
  node.inputs.clear();
  node.saved.clear();
  node.op_args.reset();
}

}  // namespace

Node::~Node() {
  // Destroying a chain node by node would recurse once per node. Instead each
  // dying node moves its tensors onto a thread-local list, and the outermost
  // destructor drains it in a loop. A tensor whose release would destroy its
  // node hands the node over to be destroyed here, where it only adds its own
  // tensors to the list. Tensors shared by several nodes (x * x, a residual
  // stream) are simply dropped until the last of their handles comes round.
  thread_local std::vector<Tensor> pending;
  thread_local bool draining = false;
  // Out of memory the list cannot grow, and a destructor must not throw: a
  // tensor that cannot be parked stays in this node and is released the
  // ordinary, recursive way when the member vectors die.
  auto park = [](Tensor& t) {
    try {
      pending.push_back(std::move(t));
    } catch (const std::bad_alloc&) {
    }
  };
  for (Tensor& t : inputs) park(t);
  for (Tensor& t : saved) park(t);
  if (draining) return;
  draining = true;
  while (!pending.empty()) {
    Tensor t = std::move(pending.back());
    pending.pop_back();
    std::shared_ptr<Node> node = take_history(t);
    t = Tensor();  // the impl dies here, no longer owning its node
    node.reset();  // a nested ~Node: pushes its tensors and returns
  }
  draining = false;
}

bool grad_mode_enabled() { return grad_mode; }
NoGradGuard::NoGradGuard() : previous_(grad_mode) { grad_mode = false; }
NoGradGuard::~NoGradGuard() { grad_mode = previous_; }

namespace {

// A handle with t's shape, grad_fn and requires_grad but no data. Leaves keep
// their real handle: the engine accumulates into that very impl's .grad.
Tensor without_values(const Tensor& t) {
  if (!t.defined() || !t.grad_fn()) return t.defined() && t.requires_grad() ? t : Tensor();
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = t.shape();
  impl->strides = t.strides();
  impl->offset = t.offset();
  impl->requires_grad = true;
  impl->grad_fn = t.grad_fn();
  return Tensor(std::move(impl));
}

}  // namespace

Node* record(Tensor& out, const char* op, Backward backward, std::vector<Tensor> inputs, InputValues values) {
  if (!grad_mode) return nullptr;
  bool any = false;
  for (const Tensor& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) return nullptr;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->backward_name = backward.name;
  node->seq = next_seq++;
  node->backward = backward.fn;
  if (values == InputValues::Unused)
    for (Tensor& t : inputs) t = without_values(t);
  node->inputs = std::move(inputs);
  node->out_shape = out.shape();
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = node;
  return node.get();
}

void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
  EMBER_CHECK(root.requires_grad(), "backward: tensor {} does not require grad and has no grad_fn",
              shape_str(root.shape()));
  EMBER_CHECK(grad.shape() == root.shape(), "backward: gradient shape {} differs from the tensor's shape {}",
              shape_str(grad.shape()), shape_str(root.shape()));
  if (root.is_leaf()) {
    accumulate_leaf(*root.impl(), grad);
    return;
  }
  std::vector<std::shared_ptr<Node>> order = topological_order(root.grad_fn());
  for (const auto& node : order)
    EMBER_CHECK(!node->released,
                "backward: the graph through '{}' (node #{}) was already freed by an earlier backward; "
                "pass retain_graph=true to the first backward to go through it twice",
                node->op, node->seq);
  root.grad_fn()->grad_out_sum = grad;
  std::vector<Tensor> grad_in;
  for (const auto& node : order) {
    Tensor g = std::move(node->grad_out_sum);
    node->grad_out_sum = Tensor();
    if (!g.defined()) continue;  // no consumer on the path from root needed this node
    if (auto out = node->output.lock()) accumulate_leaf(*out, g);
    grad_in.assign(node->inputs.size(), Tensor());
    {
      NoGradGuard no_grad;  // no higher-order graphs
      node->backward(*node, g, grad_in);
    }
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      const Tensor& input = node->inputs[i];
      if (!input.defined() || !input.requires_grad() || !grad_in[i].defined()) continue;
      // A wrong shape here would otherwise broadcast silently into the sums below.
      EMBER_CHECK(grad_in[i].shape() == input.shape(),
                  "backward: '{}' (node #{}) returned a gradient of shape {} for its input {} of shape {}", node->op,
                  node->seq, shape_str(grad_in[i].shape()), i, shape_str(input.shape()));
      if (input.grad_fn())
        accumulate_node(*input.grad_fn(), grad_in[i]);
      else
        accumulate_leaf(*input.impl(), grad_in[i], true);
    }
    if (!retain_graph) release(*node);
  }
}

std::string graph_str(const Tensor& t) {
  if (!t.defined() || !t.grad_fn()) return t.defined() && t.requires_grad() ? "leaf " + t.name() + "\n" : "";
  std::string s;
  for (const auto& node : topological_order(t.grad_fn())) {
    s += fmt::format("#{} {} ({}) -> {} <-", node->seq, node->op, node->backward_name, shape_str(node->out_shape));
    for (const Tensor& in : node->inputs) {
      if (!in.defined()) continue;
      if (in.grad_fn())
        s += fmt::format(" #{}", in.grad_fn()->seq);
      else
        s += fmt::format(" {}{}", in.requires_grad() ? "leaf " : "const ",
                         in.name().empty() ? shape_str(in.shape()) : in.name());
    }
    s += node->released ? " (freed)\n" : "\n";
  }
  return s;
}

// ---- Tensor members that deal with gradients ----

bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }

Tensor& Tensor::requires_grad_(bool on) {
  EMBER_CHECK(defined(), "requires_grad_: undefined tensor");
  EMBER_CHECK(is_leaf(), "requires_grad_: only leaf tensors can change requires_grad (this one comes from '{}')",
              grad_fn()->op);
  impl_->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return impl_ ? impl_->grad : Tensor(); }

void Tensor::set_grad(const Tensor& g) {
  EMBER_CHECK(defined(), "set_grad: undefined tensor");
  EMBER_CHECK(!g.defined() || g.shape() == shape(), "set_grad: gradient shape {} differs from the tensor's shape {}",
              shape_str(g.shape()), shape_str(shape()));
  impl_->grad = g;
}

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> none;
  return impl_ ? impl_->grad_fn : none;
}

bool Tensor::is_leaf() const { return !grad_fn(); }

void Tensor::retain_grad() {
  EMBER_CHECK(requires_grad(), "retain_grad: the tensor does not require grad");
  if (grad_fn()) grad_fn()->output = impl_;
}

void Tensor::backward(bool retain_graph) const {
  EMBER_CHECK(defined() && numel() == 1,
              "backward: called without a gradient on a tensor of shape {}; only a single-element "
              "tensor can be its own seed (pass grad_output otherwise)",
              defined() ? shape_str(shape()) : std::string("(undefined)"));
  run_backward(*this, ones(shape()), retain_graph);
}

void Tensor::backward(const Tensor& grad_output, bool retain_graph) const {
  run_backward(*this, grad_output, retain_graph);
}

Tensor& Tensor::set_(const Tensor& source) {
  EMBER_CHECK(defined() && source.defined(), "set_: undefined tensor");
  EMBER_CHECK(is_leaf(), "set_: '{}' is the output of an op; only a leaf can view another tensor's storage", name());
  impl_->storage = source.impl_->storage;
  impl_->shape = source.shape();
  impl_->strides = source.strides();
  impl_->offset = source.offset();
  return *this;
}

Tensor Tensor::detach() const {
  EMBER_CHECK(defined(), "detach: undefined tensor");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->shape = shape();
  impl->strides = strides();
  impl->offset = offset();
  return Tensor(std::move(impl));
}

}  // namespace ember
