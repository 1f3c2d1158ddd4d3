// `gpt train --help` shows, for every flag, the default a run really uses:
// a run with no flags at all (in an empty directory, stopped at step 0) saves
// its settings in trainer.json, and each default the help prints must equal
// the saved value.
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "tests/examples/process.h"
#include "train/train_config.h"

using namespace ember::testing;

TEST_CASE("gpt train --help: every default shown is the one a run with no flags uses") {
  ScratchDir dir("help");
  const std::string gpt = program("gpt");
  const Result help = run(gpt + " train --help");
  REQUIRE(help.exit_code == 0);
  // Only the step count differs from the defaults, so the run stops at once (it still saves step 0).
  const Result r = run("cd " + dir.path.string() + " && " + gpt + " train --max-iters 0 --threads 1");
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const std::string latest = read_file(dir / "out/latest");
  REQUIRE(latest.starts_with("ckpt-000000"));
  const nlohmann::json saved = nlohmann::json::parse(read_file(dir / "out/ckpt-000000/trainer.json")).at("settings");
  // "  --n-layer INT=4   ..." and "  --bias   ... [default: off]"
  const std::regex valued(R"(^\s+--([a-z0-9-]+) [A-Z]+=(\S+))"), flag(R"(^\s+--([a-z0-9-]+)\s.*\[default: (on|off)\])");
  std::istringstream lines(help.out);
  int compared = 0;
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    const bool is_value = std::regex_search(line, m, valued), is_flag = !is_value && std::regex_search(line, m, flag);
    if (!is_value && !is_flag) continue;
    std::string key = m[1].str();
    std::replace(key.begin(), key.end(), '-', '_');
    if (key == "vocab_size") key = "bpe_vocab_size";  // --vocab-size sizes the BPE vocabulary
    CAPTURE(line);
    REQUIRE_MESSAGE(saved.contains(key), "no saved setting for ", key);
    const nlohmann::json& v = saved.at(key);
    const std::string shown = m[2].str();
    if (key == "max_iters") {  // the one flag this run set; its default is TrainConfig's
      CHECK(std::stoll(shown) == ember::TrainConfig{}.max_iters);
    } else if (is_flag) {
      CHECK(v == (shown == "on"));
    } else if (v.is_number()) {
      CHECK(v.get<double>() == std::stod(shown));
    } else {
      CHECK(v.get<std::string>() == shown);
    }
    ++compared;
  }
  CHECK(compared >= 26);  // every setting but --data (the built-in corpus) has a default shown
}
