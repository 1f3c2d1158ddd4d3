// `gpt ablate` as a user runs it: a tiny model of every positional encoding,
// the markdown table on stdout and in ablation.md (a row per kind, a column per
// length, the learned row's longer cells marked, every other cell a finite
// loss), ablation.svg and .json, and run directories that `gpt eval` (also at
// another --block-size) and `gpt sample` load.
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/examples/process.h"
#include "tests/external_tools.h"

using namespace ember::testing;

namespace {

std::vector<std::string> cells_of(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream in(line.substr(1));  // after the leading '|'
  for (std::string cell; std::getline(in, cell, '|');) cells.push_back(cell.substr(1, cell.size() - 2));
  return cells;
}

// "1.2345" or "1.2345 ± 0.0100": true with the mean when the cell is a finite loss.
bool finite_loss(const std::string& cell, double& mean) {
  size_t used = 0;
  try {
    mean = std::stod(cell, &used);
  } catch (const std::exception&) {
    return false;
  }
  const std::string rest = cell.substr(used);
  if (!rest.empty() && !rest.starts_with(" ± ")) return false;
  if (!rest.empty() && !std::isfinite(std::stod(rest.substr(std::string(" ± ").size())))) return false;
  return std::isfinite(mean);
}

}  // namespace

TEST_CASE("gpt ablate: a table row per kind, marked cells past the learned table, loadable runs") {
  ScratchDir dir("ablate");
  const std::string gpt = program("gpt"), out = dir / "abl", text = write_small_text(dir / "text.txt");
  const std::string tiny = "--data " + text +
                           " --n-layer 1 --n-head 2 --n-embd 16 --block-size 8 --batch-size 2 --threads 1 "
                           "--max-iters 6 --eval-interval 3 --eval-iters 1 --log-interval 3";
  const Result r = run(gpt + " ablate " + tiny + " --seeds 2 --out " + out);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out.find("== ablation run 10/10: pos none, seed 1338") != std::string::npos);  // progress
  const std::string md = read_file(out + "/ablation.md");
  REQUIRE(!md.empty());
  CHECK(r.out.find(md) != std::string::npos);  // the same table on stdout
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(md);
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with("| ")) rows.push_back(cells_of(line));
  REQUIRE(rows.size() == 7);  // the header and six rows
  CHECK(rows[0] == std::vector<std::string>{"positions", "parameters", "val loss at 8 (1x)", "at 16 (2x)", "at 32 (4x)",
                                            "table zeroed (8)", "rows shuffled (8)", "training time"});
  const std::vector<std::string> labels = {"learned", "learned, stretched table", "sinusoidal", "rope", "alibi",
                                           "none"};
  for (size_t i = 1; i < rows.size(); ++i) {
    const std::vector<std::string>& row = rows[i];
    CAPTURE(row[0]);
    REQUIRE(row.size() == 8);
    CHECK(row[0] == labels[i - 1]);
    CHECK(std::stoll(row[1]) > 0);
    double loss = 0;
    for (size_t col = 2; col <= 4; ++col) {
      if (row[0] == "learned" && col > 2)
        CHECK(row[col] == "no rows past 8");
      else
        CHECK_MESSAGE(finite_loss(row[col], loss), row[col]);
    }
    CHECK(row[2].find(" ± ") != std::string::npos);  // two seeds: a spread
    for (size_t col = 5; col <= 6; ++col) {
      if (row[0] == "learned" || row[0] == "sinusoidal")
        CHECK_MESSAGE(finite_loss(row[col], loss), row[col]);
      else
        CHECK(row[col] == (row[0] == "learned, stretched table" ? "as learned" : "no table"));
    }
    CHECK((row[7].ends_with(" s") || row[7] == "as learned"));
  }
  CHECK(md.find("The runs of each seed trained on identical batches (6 batches; ") != std::string::npos);
  CHECK(read_file(out + "/ablation.svg").find("learned (no rows past 8)") != std::string::npos);
  if (have_program("xmllint"))
    CHECK(xml_problem(out + "/ablation.svg") == "");
  else
    MESSAGE("xmllint not installed: ablation.svg not checked as XML");

  // --redraw rebuilds the table and the plot from ablation.json alone.
  const std::string svg = read_file(out + "/ablation.svg");
  std::filesystem::remove(out + "/ablation.md");
  std::filesystem::remove(out + "/ablation.svg");
  const Result redraw = run(gpt + " ablate --redraw --out " + out);
  CHECK_MESSAGE(redraw.exit_code == 0, redraw.err);
  CHECK(read_file(out + "/ablation.md") == md);
  CHECK(read_file(out + "/ablation.svg") == svg);

  // Each run is a normal run directory: gpt eval gives the loss ablation.json holds for it, at each length.
  const nlohmann::json j = nlohmann::json::parse(read_file(out + "/ablation.json"));
  REQUIRE(j.at("runs").size() == 10);
  int checked = 0;
  for (const nlohmann::json& run_json : j.at("runs")) {
    const std::string pos = run_json.at("pos"), ckpt = run_json.at("dir");
    if (pos != "rope" && pos != "learned") continue;
    CAPTURE(ckpt);
    CHECK(ckpt == out + "/" + pos + "-seed" + std::to_string(run_json.at("seed").get<int>()));
    for (auto [flag, index] : {std::pair{"", 0}, std::pair{" --block-size 32", 2}}) {
      const Result e = run(gpt + " eval --ckpt " + ckpt + flag);
      if (pos == "learned" && index == 2) {
        CHECK(e.exit_code == 2);
        CHECK(e.err ==
              "error: eval: --block-size 32 is longer than the context length 8 the learned positional table was "
              "trained at (it has 8 rows); only sinusoidal, rope, alibi and none positions go past it\n");
        continue;
      }
      REQUIRE_MESSAGE(e.exit_code == 0, e.err);
      REQUIRE(e.out.starts_with("val_loss "));
      // gpt eval prints 6 decimals of the same computation.
      CHECK(std::stod(e.out.substr(9)) == doctest::Approx(run_json.at("val_loss")[index].get<double>()).epsilon(2e-6));
      ++checked;
    }
  }
  CHECK(checked == 6);  // two learned runs at 1x, two rope runs at 1x and 4x
  const Result shorter = run(gpt + " eval --ckpt " + out + "/learned-seed1337 --block-size 4");
  CHECK_MESSAGE(shorter.exit_code == 0, shorter.err);  // fewer positions than the table: its first rows
  const Result sample = run(gpt + " sample --ckpt " + out + "/alibi-seed1338 --tokens 20 --prompt 'the '");
  CHECK_MESSAGE(sample.exit_code == 0, sample.err);
  CHECK(sample.out.starts_with("the "));
}

TEST_CASE("gpt ablate: bad lists and settings are one line and exit 2, before any training") {
  ScratchDir dir("ablate_errors");
  const std::string gpt = program("gpt"), out = dir / "abl", text = write_small_text(dir / "text.txt");
  const std::pair<std::string, std::string> cases[] = {
      {"--kinds learned,absolute", "unknown positional encoding 'absolute'"},
      {"--kinds rope,rope", "ablate: --kinds names 'rope' twice"},
      {"--eval-lengths 4,2", "ablate: --eval-lengths '4,2' must increase (got 2 after 4)"},
      {"--seeds 0", "ablate: --seeds must be in [1, 100], got 0"},
      {"--n-embd 6 --n-head 2", "as rope needs"},
      {"--block-size 600", "the val split has 2002 tokens, too few for one window of 4 x --block-size 600"},
      {"--data ''", "ablate: --data was given an empty file name"},
      {"--rng nanogpt", "rng"},
  };
  for (const auto& c : cases) {
    const std::string& args = c.first;  // not a structured binding: clang-14 cannot capture one in CAPTURE
    const std::string& names = c.second;
    CAPTURE(args);
    const std::string data = args.find("--data") == std::string::npos ? " --data " + text : "";
    const Result r = run(gpt + " ablate --max-iters 1" + data + " " + args + " --out " + out);
    CHECK(r.exit_code == 2);
    CHECK_MESSAGE(r.err.find(names) != std::string::npos, r.err);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
  CHECK(!std::filesystem::exists(out + "/learned-seed1337"));
  const Result no_json = run(gpt + " ablate --redraw --out " + out);
  CHECK(no_json.exit_code == 2);
  CHECK_MESSAGE(no_json.err.find(out + "/ablation.json") != std::string::npos, no_json.err);
  const Result bad_eval = run(gpt + " eval --ckpt " + out + " --block-size 0");
  CHECK(bad_eval.exit_code == 2);
  CHECK(bad_eval.err == "error: eval: --block-size must be >= 1, got 0\n");
}

TEST_CASE("gpt ablate: SIGINT stops the run in progress after saving it, exit 130, no table") {
  ScratchDir dir("ablate_sigint");
  const std::string gpt = program("gpt"), out = dir / "abl", text = write_small_text(dir / "text.txt");
  const std::vector<std::string> args = {gpt,
                                         "ablate",
                                         "--data",
                                         text,
                                         "--n-layer",
                                         "1",
                                         "--n-head",
                                         "2",
                                         "--n-embd",
                                         "16",
                                         "--block-size",
                                         "8",
                                         "--threads",
                                         "1",
                                         "--max-iters",
                                         "1000000",
                                         "--eval-interval",
                                         "5",
                                         "--eval-iters",
                                         "1",
                                         "--kinds",
                                         "rope,none",
                                         "--out",
                                         out};
  Background ablation(args, dir / "ablate.log");
  REQUIRE(wait_for([&] { return std::filesystem::exists(out + "/rope-seed1337/latest"); }));
  ablation.signal(SIGINT);
  CHECK(ablation.wait() == 130);
  CHECK(read_file(dir / "ablate.log")
            .find("stopped by SIGINT in " + out +
                  "/rope-seed1337; the table was not written. The same command again reuses the finished runs and "
                  "trains the stopped one again\n") != std::string::npos);
  CHECK(!std::filesystem::exists(out + "/ablation.md"));
  CHECK(!std::filesystem::exists(out + "/none-seed1337"));
  const Result eval = run(gpt + " eval --threads 1 --ckpt " + out + "/rope-seed1337");
  CHECK_MESSAGE(eval.exit_code == 0, eval.err);
}
