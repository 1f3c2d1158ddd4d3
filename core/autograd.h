// The autograd engine. Every differentiable op that sees an input requiring
// grad records a Node on its output: the op's name, a creation sequence
// number, its ordered inputs, what forward saved (tensors, and its other
// arguments as a named struct), and a plain backward function with its name.
// backward() orders the nodes topologically without recursion, runs each
// backward once, and accumulates into the leaves' .grad.
//
// Ownership runs output -> node -> inputs only. A node never holds its own
// output (ops that need their result save a detached handle), so there are no
// cycles and nothing leaks.
#pragma once

#include <cassert>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace ember {

struct Node;

// grad_in[i] receives d(loss)/d(inputs[i]) with inputs[i]'s shape, or stays
// undefined when inputs[i] needs no gradient (check node.needs_grad(i)).
using BackwardFn = void (*)(Node& node, const Tensor& grad_out, std::vector<Tensor>& grad_in);

// A backward function and its name. Make one with EMBER_BACKWARD(narrow_backward):
// the name is the function's own spelling, so the two cannot drift apart.
struct Backward {
  BackwardFn fn;
  const char* name;
};
#define EMBER_BACKWARD(fn) (::ember::Backward{&(fn), #fn})

// What an op keeps besides tensors (dims, flags, scalars, integer ids) is a
// plain struct declared beside the op, e.g. `struct NarrowArgs { int64_t dim,
// start; };`, stored in the node through this base. Each op owns its struct,
// so no list of all ops exists anywhere. In gdb, `set print object on` makes
// `print *n.op_args` show the struct by its type and field names.
struct OpArgs {
  virtual ~OpArgs() = default;
};
template <class A>
struct OpArgsOf final : OpArgs {
  explicit OpArgsOf(A a) : value(std::move(a)) {}
  A value;
};

struct Node {
  const char* op = "";             // the op's name, e.g. "matmul"
  const char* backward_name = "";  // its backward's, "matmul_backward" (op + "_backward")
  uint64_t seq = 0;                // creation order: `break matmul_backward if n.seq == 42`
  BackwardFn backward = nullptr;
  std::vector<Tensor> inputs;       // in the op's argument order
  std::vector<Tensor> saved;        // extra tensors forward kept (detached)
  std::unique_ptr<OpArgs> op_args;  // the op's other arguments (set_args / args), or null
  Shape out_shape;                  // shape of the output, checked against grad_out

  // Forward stores its arguments: n->set_args(NarrowArgs{.dim = d, .start = start}).
  template <class A>
  void set_args(A a) {
    op_args = std::make_unique<OpArgsOf<A>>(std::move(a));
  }
  // Backward reads them as the same type: const auto& a = n.args<NarrowArgs>().
  template <class A>
  const A& args() const {
    const auto* held = dynamic_cast<const OpArgsOf<A>*>(op_args.get());
    assert(held != nullptr && "Node::args: the op stored no arguments of this type");
    return held->value;
  }

  // Engine state.
  Tensor grad_out_sum;               // gradient arriving from consumers during backward
  std::weak_ptr<TensorImpl> output;  // set only when the output called retain_grad()
  bool released = false;             // saved state freed by a backward without retain_graph

  bool needs_grad(size_t i) const { return i < inputs.size() && inputs[i].requires_grad(); }
  ~Node();  // unlinks long chains iteratively, so destroying them cannot overflow the stack
};

// Whether an op's backward reads its inputs' values, or only their shapes
// (add, sub, neg, sums). With Unused the node keeps data-free handles to
// non-leaf inputs, so an intermediate only this op consumed (a residual
// branch's output) is freed right after the forward instead of at backward.
enum class InputValues { Used, Unused };

// Records a node on `out` when grad mode is on and any input requires grad:
// record(out, "narrow", EMBER_BACKWARD(narrow_backward), {x}). Returns the node
// (to fill `saved` and set_args) or nullptr when nothing was recorded.
Node* record(Tensor& out, const char* op, Backward backward, std::vector<Tensor> inputs,
             InputValues values = InputValues::Used);

// Runs backward from `root` seeded with `grad` (same shape as root).
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

// Graph recording switch, as in PyTorch's torch.no_grad() / libtorch's NoGradGuard.
bool grad_mode_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// A readable listing of the graph that produced `t`, one node a line, with the
// op, its backward, the output's shape and the inputs (nodes by seq, leaves by name):
// "#12 matmul (matmul_backward) -> [4, 65] <- #9 leaf lm_head.weight". Out of line for gdb.
std::string graph_str(const Tensor& t);

}  // namespace ember
