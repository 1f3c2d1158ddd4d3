// The run's pictures: cosine similarities against hand values, round axis
// ticks, the colour scale's ends, metrics read past a torn line, and a real
// run's loss.svg and positions.svg: well-formed XML (xmllint), one point per
// logged loss, and a heatmap whose cells, rebuilt from the SVG, are symmetric
// with the top colour on the diagonal.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "tests/core/test_helpers.h"
#include "tests/external_tools.h"
#include "train/checkpoint.h"
#include "train/plots.h"
#include "train/safetensors.h"
#include "train/svg.h"
#include "train/trainer.h"

using namespace ember;
namespace fs = std::filesystem;

namespace {

// Every occurrence of `attr="..."` in the text, in order.
std::vector<std::string> attribute_values(const std::string& text, const std::string& attr) {
  std::vector<std::string> out;
  const std::string key = " " + attr + "=\"";
  for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + 1)) {
    const size_t start = at + key.size();
    out.push_back(text.substr(start, text.find('"', start) - start));
  }
  return out;
}

// The heatmap cells of one panel group, rebuilt from its paths ("M{j} {i}h{n}v1h-{n}z"): colour by (i, j).
std::map<std::pair<int, int>, std::string> cells_of(const std::string& group) {
  std::map<std::pair<int, int>, std::string> cells;
  for (size_t at = group.find("<path fill=\""); at != std::string::npos; at = group.find("<path fill=\"", at + 1)) {
    const std::string colour = group.substr(at + 12, 7);
    const size_t d = group.find(" d=\"", at) + 4;
    std::istringstream runs(group.substr(d, group.find('"', d) - d));
    char m, h, v, h2, z;
    int j, i, n, one, back;
    while (runs >> m >> j >> i >> h >> n >> v >> one >> h2 >> back >> z)
      for (int k = 0; k < n; ++k) cells[{i, j + k}] = colour;
  }
  return cells;
}

}  // namespace

TEST_CASE("plots: cosine similarity of rows matches hand values") {
  // Rows (1, 0), (0, 2), (1, 1), (0, 0): orthogonal, 45 degrees, and a zero row (0 by convention).
  const auto m = cosine_similarity_rows(tensor({4, 2}, {1, 0, 0, 2, 1, 1, 0, 0}));
  REQUIRE(m.size() == 4);
  CHECK(m[0][0] == doctest::Approx(1.0));
  CHECK(m[1][1] == doctest::Approx(1.0));
  CHECK(m[0][1] == doctest::Approx(0.0));
  CHECK(m[0][2] == doctest::Approx(1.0 / std::sqrt(2.0)));
  CHECK(m[2][1] == doctest::Approx(1.0 / std::sqrt(2.0)));
  CHECK(m[3][0] == 0.0);
  CHECK(m[3][3] == 0.0);
  CHECK(cosine_similarity_rows(tensor({2, 2}, {1, 2, -1, -2}))[0][1] == doctest::Approx(-1.0));
  CHECK_THROWS_WITH_AS(cosine_similarity_rows(zeros({2, 2, 2})),
                       "plot: a positional table must be [T, C], got [2, 2, 2]", Error);
}

TEST_CASE("plots: axis ticks are round numbers covering the range, colours run blue-white-red") {
  CHECK(linear_ticks(0, 2000) == std::vector<double>{0, 500, 1000, 1500, 2000});
  CHECK(linear_ticks(0, 60) == std::vector<double>{0, 10, 20, 30, 40, 50, 60});
  CHECK(log_ticks(1.4, 4.3) == std::vector<double>{2, 3, 4});     // within a decade: every integer
  CHECK(log_ticks(0.26, 4.2) == std::vector<double>{0.5, 1, 2});  // wider: 1, 2, 5 times powers of ten
  const std::vector<double> fine = log_ticks(3.08, 3.27);         // no integer inside: steps of 0.05
  REQUIRE(fine.size() == 4);
  CHECK(fine[0] == doctest::Approx(3.1));
  CHECK(fine[3] == doctest::Approx(3.25));
  CHECK(tick_label(0.0001234567) == "0.0001235");
  CHECK(diverging_colour(-1) == "#3b4cc0");
  CHECK(diverging_colour(0) == "#f7f7f7");
  CHECK(diverging_colour(1) == "#b40426");
  CHECK(diverging_colour(5) == "#b40426");    // clamped
  CHECK(diverging_colour(0.5) == "#d67e8f");  // halfway from (247, 247, 247) to (180, 4, 38): 213.5, 125.5, 142.5
  CHECK(xml_escape("a<b & \"c\"") == "a&lt;b &amp; &quot;c&quot;");
}

TEST_CASE("plots: metrics.jsonl is read line by line, skipping a torn line") {
  const fs::path dir = fs::temp_directory_path() / "ember_test_plots_metrics";
  fs::create_directories(dir);
  std::ofstream(dir / "metrics.jsonl") << "{\"step\": 0, \"val_loss\": 4.2, \"train_loss_estimate\": 4.3}\n"
                                          "{\"step\": 10, \"train_loss\": 3.5, \"lr\": 0.001}\n"
                                          "{\"step\": 20, \"train_lo";
  const LossCurves c = read_metrics((dir / "metrics.jsonl").string());
  CHECK(c.train == std::vector<std::pair<double, double>>{{10, 3.5}});
  CHECK(c.val == std::vector<std::pair<double, double>>{{0, 4.2}});
  CHECK(c.train_estimate == std::vector<std::pair<double, double>>{{0, 4.3}});
  fs::remove_all(dir);
  CHECK_THROWS_WITH_AS(read_metrics((dir / "metrics.jsonl").string()), doctest::Contains("plot: cannot read '"), Error);
}

TEST_CASE("plots: a run draws loss.svg and positions.svg, valid XML with the data they promise") {
  const fs::path dir = fs::temp_directory_path() / "ember_test_plots_run";
  fs::remove_all(dir);
  TrainConfig c;
  c.out = dir.string();
  c.model.n_layer = 1;
  c.model.n_head = 2;
  c.model.n_embd = 16;
  c.model.block_size = 12;
  c.batch_size = 4;
  c.max_iters = 6;
  c.eval_interval = 3;
  c.eval_iters = 2;
  c.log_interval = 2;
  c.rng = RngKind::Ember;
  c.quiet = true;
  train(c);
  // The step-0 table is GPT(config, seed)'s, as a fresh model builds it.
  GPTConfig mc = c.model;
  mc.vocab_size = load_model(c.out).model->config().vocab_size;
  const Tensor initial = GPT(mc, c.seed).transformer->wpe->weight;
  const Tensor saved = load_safetensors((dir / "wpe_init.safetensors").string()).tensor("transformer.wpe.weight");
  CHECK(saved.to_vector() == initial.to_vector());

  const RunPlots p = write_run_plots(c.out);
  CHECK(p.note == "");
  CHECK(p.written == std::vector<std::string>{(dir / "loss.svg").string(), (dir / "positions.svg").string()});
  const std::string loss = ember::testing::read_file(dir / "loss.svg");
  const std::string positions = ember::testing::read_file(dir / "positions.svg");
  // Loss: axis labels, and the train curve has a point per logged step (2, 4, 6), val one per eval (3, 6).
  CHECK(loss.find(">step</text>") != std::string::npos);
  CHECK(loss.find(">loss (log scale)</text>") != std::string::npos);
  const std::vector<std::string> curves = attribute_values(loss, "points");
  REQUIRE(curves.size() >= 2);
  CHECK(std::count(curves[0].begin(), curves[0].end(), ',') == 3);
  CHECK(std::count(curves[1].begin(), curves[1].end(), ',') == 2);
  // Positions: two 12 x 12 panels (step 0 and step 6) and a colour scale.
  CHECK(positions.find(">step 0 (initial table)</text>") != std::string::npos);
  CHECK(positions.find(">step 6</text>") != std::string::npos);
  CHECK(positions.find(">cosine similarity of rows i and j</text>") != std::string::npos);
  const size_t second = positions.find("<g transform", positions.find("<g transform") + 1);
  REQUIRE(second != std::string::npos);
  for (const std::string& group : {positions.substr(0, second), positions.substr(second)}) {
    const auto cells = cells_of(group);
    CHECK(cells.size() == 144);  // every cell drawn once
    for (int i = 0; i < 12; ++i) {
      CHECK(cells.at({i, i}) == diverging_colour(0.975));  // cos = 1: the top step of the 0.05-wide scale
      for (int j = 0; j < i; ++j) CHECK(cells.at({i, j}) == cells.at({j, i}));
    }
  }
  if (!ember::testing::have_program("xmllint")) {
    MESSAGE("skipped the XML parse: xmllint (libxml2-utils) is not installed; make test installs it");
  } else {
    CHECK(ember::testing::xml_problem((dir / "loss.svg").string()) == "");
    CHECK(ember::testing::xml_problem((dir / "positions.svg").string()) == "");
  }
  // A fresh run in the same directory starts over: old plots go, a new step-0 table is kept.
  c.overwrite = true;
  c.model.pos = PosKind::Rope;
  train(c);
  CHECK(!fs::exists(dir / "wpe_init.safetensors"));
  CHECK(!fs::exists(dir / "loss.svg"));
  const RunPlots rope = write_run_plots(c.out);
  CHECK(rope.note == "positions.svg not drawn: the model has no learned positional table");
  CHECK(!fs::exists(dir / "positions.svg"));
  fs::remove_all(dir);
}
