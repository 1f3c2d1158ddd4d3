// The autograd engine. Every differentiable op that sees an input requiring
// grad records a Node on its output: the op's name, a creation sequence
// number, its ordered inputs, what forward saved, and a plain backward
// function. backward() orders the nodes topologically without recursion,
// runs each backward once, and accumulates into the leaves' .grad.
//
// Ownership runs output -> node -> inputs only. A node never holds its own
// output (ops that need their result save a detached handle), so there are no
// cycles and nothing leaks.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace ember {

struct Node;

// grad_in[i] receives d(loss)/d(inputs[i]) with inputs[i]'s shape, or stays
// undefined when inputs[i] needs no gradient (check node.needs_grad(i)).
using BackwardFn = void (*)(Node& node, const Tensor& grad_out, std::vector<Tensor>& grad_in);

struct Node {
  const char* op = "";  // the op's name, e.g. "matmul"
  uint64_t seq = 0;     // creation order: `break matmul_backward if node.seq == 42`
  BackwardFn backward = nullptr;
  std::vector<Tensor> inputs;  // in the op's argument order
  std::vector<Tensor> saved;   // extra tensors forward kept (detached)
  std::vector<int64_t> ints;   // dims, sizes, flags
  std::vector<double> reals;   // scalar arguments
  IntTensor ids;               // integer inputs (embedding ids, loss targets)
  Shape out_shape;             // shape of the output, checked against grad_out

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

// Records a node on `out` when grad mode is on and any input requires grad.
// Returns the node (to fill `saved`, `ints`, ...) or nullptr when nothing was recorded.
Node* record(Tensor& out, const char* op, BackwardFn backward, std::vector<Tensor> inputs,
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

// A readable listing of the graph that produced `t`, one node a line:
// "#12 matmul <- [#9 transpose, leaf transformer.wte.weight]". Out of line for gdb.
std::string graph_str(const Tensor& t);

}  // namespace ember
