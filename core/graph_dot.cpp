// graph_dot: walks the nodes reachable from a tensor (iteratively, like the
// engine) and writes them in creation order, so the same graph always gives
// the same text.
#include "core/graph_dot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "core/autograd.h"

namespace ember {
namespace {

// Every node reachable from root, by increasing sequence number.
std::vector<Node*> nodes_of(Node* root) {
  std::vector<Node*> all{root}, stack{root};
  std::unordered_set<Node*> seen{root};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Tensor& in : n->inputs) {
      Node* child = in.grad_fn().get();
      if (child && seen.insert(child).second) {
        all.push_back(child);
        stack.push_back(child);
      }
    }
  }
  std::sort(all.begin(), all.end(), [](const Node* a, const Node* b) { return a->seq < b->seq; });
  return all;
}

// A DOT string literal's contents: quotes and backslashes escaped, lines
// joined with DOT's \n.
std::string dot_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string label_lines(const std::vector<std::string>& lines) {
  std::string label;
  for (const std::string& l : lines)
    if (!l.empty()) label += (label.empty() ? "" : "\\n") + dot_escape(l);
  return label;
}

// The DOT id of a leaf or constant input, one per tensor (a weight used twice
// is one box with two edges).
class InputIds {
 public:
  // Returns the id and whether it is new (its box still has to be written).
  std::pair<std::string, bool> id(const Tensor& t) {
    auto [it, added] = ids_.try_emplace(t.impl(), "");
    if (added) it->second = fmt::format("{}{}", t.requires_grad() ? "leaf" : "const", count_++);
    return {it->second, added};
  }

 private:
  std::unordered_map<const TensorImpl*, std::string> ids_;
  int count_ = 0;
};

std::string input_box(const std::string& id, const Tensor& t) {
  std::vector<std::string> lines;
  if (!t.requires_grad()) {
    lines = {t.name().empty() ? "constant" : t.name(), shape_str(t.shape()), "value " + value_summary(t)};
    return fmt::format("  {} [shape=box, style=dashed, label=\"{}\"];\n", id, label_lines(lines));
  }
  lines = {t.name().empty() ? "leaf" : t.name(), shape_str(t.shape())};
  if (const std::string v = value_summary(t); !v.empty()) lines.push_back("value " + v);
  if (const std::string g = value_summary(t.grad()); !g.empty()) lines.push_back("grad " + g);
  return fmt::format("  {} [shape=box, style=filled, fillcolor=\"#d6e8f7\", label=\"{}\"];\n", id, label_lines(lines));
}

}  // namespace

std::string value_summary(const Tensor& t) {
  if (!t.defined() || !t.impl()->storage || t.numel() == 0) return "";
  const std::vector<float> v = t.to_vector();
  double sum = 0.0, sum_sq = 0.0, max_abs = 0.0;
  for (float x : v) {
    sum += x;
    max_abs = std::max(max_abs, std::abs(static_cast<double>(x)));
  }
  const double mean = sum / static_cast<double>(v.size());
  for (float x : v) sum_sq += (x - mean) * (x - mean);
  const double std_dev = std::sqrt(sum_sq / static_cast<double>(v.size()));  // population std
  return fmt::format("mean {:.3g}  std {:.3g}  max|x| {:.3g}", mean, std_dev, max_abs);
}

std::string graph_dot(const Tensor& t) {
  std::string dot =
      "digraph ember {\n  rankdir=BT;\n  node [fontname=\"Helvetica\", fontsize=10];\n"
      "  edge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n";
  if (!t.defined() || !t.grad_fn()) {
    if (t.defined()) dot += input_box("leaf0", t);
    return dot + "}\n";
  }
  const std::vector<Node*> nodes = nodes_of(t.grad_fn().get());
  // An op's output value, where some consumer kept a handle with data.
  std::unordered_map<const Node*, Tensor> values{{t.grad_fn().get(), t}};
  for (const Node* n : nodes)
    for (const Tensor& in : n->inputs)
      if (in.grad_fn() && in.impl()->storage) values.try_emplace(in.grad_fn().get(), in);
  InputIds input_ids;
  std::string edges;
  for (const Node* n : nodes) {
    std::vector<std::string> lines = {fmt::format("#{} {}", n->seq, n->op), n->backward_name,
                                      "out " + shape_str(n->out_shape)};
    if (auto it = values.find(n); it != values.end()) lines.push_back("value " + value_summary(it->second));
    if (const auto out = n->output.lock()) lines.push_back("grad " + value_summary(out->grad));
    if (n->released) lines.push_back("(freed)");
    const bool root = n == t.grad_fn().get();
    dot += fmt::format("  n{} [shape=box, style=\"rounded,filled\", fillcolor=\"{}\"{}, label=\"{}\"];\n", n->seq,
                       root ? "#f9d5c4" : "#fdf1d6", root ? ", peripheries=2" : "", label_lines(lines));
    for (size_t i = 0; i < n->inputs.size(); ++i) {
      const Tensor& in = n->inputs[i];
      if (!in.defined()) continue;
      std::string from;
      if (in.grad_fn()) {
        from = fmt::format("n{}", in.grad_fn()->seq);
      } else {
        const auto [id, added] = input_ids.id(in);
        if (added) dot += input_box(id, in);
        from = id;
      }
      const std::string label = n->inputs.size() > 1 ? fmt::format(" [label=\"{}\"]", i) : "";
      edges += fmt::format("  {} -> n{}{};\n", from, n->seq, label);
    }
  }
  return dot + edges + "}\n";
}

}  // namespace ember
