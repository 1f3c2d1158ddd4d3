// The autograd graph as a Graphviz picture. graph_dot(t) writes DOT text with
// one box per op (sequence number, op, backward function, output shape) and one
// per leaf (parameter name, shape), edges in the forward direction, and the
// values and gradients a tensor holds summarised as mean, std and max |x|.
// Render it with `dot -Tsvg graph.dot -o graph.svg`.
#pragma once

#include <string>

#include "core/tensor.h"

namespace ember {

// Summary of a tensor's values: "mean 0.0123  std 0.456  max|x| 1.23" (%.3g),
// or "" for an undefined or data-free tensor.
std::string value_summary(const Tensor& t);

// DOT text for the graph that produced `t`, read after a backward that kept
// the graph (backward(true)) to see gradients on the leaves. An op's output
// value appears when a consumer kept it (ops whose backward reads their inputs)
// or the op is `t` itself; its gradient when the output called retain_grad().
// A node freed by a backward without retain_graph shows as "(freed)", without
// inputs. Out of line, so gdb can call it: `print ember::graph_dot(loss)`.
std::string graph_dot(const Tensor& t);

}  // namespace ember
