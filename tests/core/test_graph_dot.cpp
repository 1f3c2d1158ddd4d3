// graph_dot: the DOT text of a small graph has the expected boxes (op, seq,
// backward, shape, hand-computed value and gradient summaries) and edges, a
// graph freed by backward shows as such, and Graphviz renders the text.
#include <fmt/format.h>

#include <set>
#include <sstream>

#include "core/graph_dot.h"
#include "tests/core/test_helpers.h"
#include "tests/external_tools.h"

using namespace ember;

namespace {

struct Edge {
  std::string from, to, label;
  auto operator<=>(const Edge&) const = default;
};

// "  a -> b [label="1"];" lines, and the label of each box by its id.
std::multiset<Edge> edges_of(const std::string& dot) {
  std::multiset<Edge> edges;
  std::istringstream in(dot);
  for (std::string line; std::getline(in, line);) {
    const size_t arrow = line.find(" -> ");
    if (arrow == std::string::npos) continue;
    Edge e{line.substr(2, arrow - 2), "", ""};
    const size_t end = line.find_first_of(" ;", arrow + 4);
    e.to = line.substr(arrow + 4, end - arrow - 4);
    if (const size_t l = line.find("label=\""); l != std::string::npos)
      e.label = line.substr(l + 7, line.find('"', l + 7) - l - 7);
    edges.insert(e);
  }
  return edges;
}

std::string label_of(const std::string& dot, const std::string& id) {
  const size_t at = dot.find("  " + id + " [");
  if (at == std::string::npos) return "";
  const size_t l = dot.find("label=\"", at) + 7;
  return dot.substr(l, dot.find("\"];", l) - l);
}

std::string id_of(const Tensor& t) { return fmt::format("n{}", t.grad_fn()->seq); }

}  // namespace

TEST_CASE("graph_dot: one box per op and per leaf, edges in forward order, summaries computed by hand") {
  Tensor a = tensor({2, 3}, {1, 2, 3, 4, 5, 6}).requires_grad_().set_name("a");
  Tensor b = tensor({3}, {10, 20, 30}).requires_grad_().set_name("b");
  const Tensor y = add(a, b);  // [[11, 22, 33], [14, 25, 36]]
  const Tensor z = mul(y, y);  // mul keeps y's values: add's box shows them
  const Tensor loss = sum(z);  // 121 + 484 + 1089 + 196 + 625 + 1296 = 3811
  loss.backward(/*retain_graph=*/true);
  const std::string dot = graph_dot(loss);
  CAPTURE(dot);
  CHECK(dot.starts_with("digraph ember {"));
  CHECK(dot.ends_with("}\n"));
  // y: mean 141/6 = 23.5, population std sqrt(497.5 / 6) = 9.106, max 36.
  CHECK(label_of(dot, id_of(y)) ==
        fmt::format("#{} add\\nadd_backward\\nout [2, 3]\\nvalue mean 23.5  std 9.11  max|x| 36", y.grad_fn()->seq));
  CHECK(label_of(dot, id_of(z)).starts_with(fmt::format("#{} mul\\nmul_backward\\nout [2, 3]", z.grad_fn()->seq)));
  CHECK(label_of(dot, id_of(loss)).ends_with("sum_backward\\nout []\\nvalue mean 3.81e+03  std 0  max|x| 3.81e+03"));
  // Leaves in order of first use: a then b. a.grad = 2y (mean 47, std 18.2, max 72);
  // b.grad sums 2y over the broadcast rows: [50, 94, 138] (mean 94, std sqrt(3872 / 3) = 35.9).
  CHECK(label_of(dot, "leaf0") ==
        "a\\n[2, 3]\\nvalue mean 3.5  std 1.71  max|x| 6\\ngrad mean 47  std 18.2  max|x| 72");
  CHECK(label_of(dot, "leaf1") == "b\\n[3]\\nvalue mean 20  std 8.16  max|x| 30\\ngrad mean 94  std 35.9  max|x| 138");
  const std::multiset<Edge> expected = {{"leaf0", id_of(y), "0"},
                                        {"leaf1", id_of(y), "1"},
                                        {id_of(y), id_of(z), "0"},
                                        {id_of(y), id_of(z), "1"},
                                        {id_of(z), id_of(loss), ""}};
  CHECK(edges_of(dot) == expected);
  CHECK(dot.find("peripheries=2") != std::string::npos);  // the root is marked

  // Without retain_graph the nodes let go of their inputs: the root alone, marked freed;
  // a.grad is now 2y + 2.
  const Tensor again = sum(mul(add(a, b), 2.0f));
  again.backward();
  const std::string freed = graph_dot(again);
  CHECK(freed.find("(freed)") != std::string::npos);
  CHECK(edges_of(freed).empty());
  CHECK(graph_dot(a) ==
        "digraph ember {\n  rankdir=BT;\n  node [fontname=\"Helvetica\", fontsize=10];\n"
        "  edge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n"
        "  leaf0 [shape=box, style=filled, fillcolor=\"#d6e8f7\", label=\"a\\n[2, 3]\\nvalue mean 3.5  "
        "std 1.71  max|x| 6\\ngrad mean 49  std 18.2  max|x| 74\"];\n}\n");
}

TEST_CASE("graph_dot: names with quotes are escaped and dot -Tsvg renders the text as XML") {
  Tensor w = ember::testing::leaf({4, 3}, 1).set_name("w \"quoted\" \\ name");
  const Tensor loss = mean(tanh(matmul(ember::testing::leaf({2, 4}, 2), w)));
  loss.backward(true);
  const std::string dot = graph_dot(loss);
  CHECK(dot.find("w \\\"quoted\\\" \\\\ name") != std::string::npos);
  if (!ember::testing::have_program("dot") || !ember::testing::have_program("xmllint")) {
    MESSAGE("skipped: dot (graphviz) or xmllint (libxml2-utils) is not installed; make test installs them");
    return;
  }
  ember::testing::ScratchDir dir("graph_dot");
  std::ofstream(dir / "g.dot") << dot;
  const ember::testing::Result r = ember::testing::run("dot -Tsvg " + (dir / "g.dot") + " -o " + (dir / "g.svg"));
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(ember::testing::xml_problem(dir / "g.svg") == "");
  const std::string svg = ember::testing::read_file(dir / "g.svg");
  CHECK(svg.find("tanh_backward") != std::string::npos);  // the boxes' text made it into the picture
  CHECK(svg.find("matmul_backward") != std::string::npos);
}
