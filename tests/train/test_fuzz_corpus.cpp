// Every input saved under tests/fuzz/corpus/<target>/ (the seeds `make fuzz`
// starts from, and inputs that once crashed or hung a reader) goes through
// its fuzz target again, so a fixed finding stays fixed without libFuzzer.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include "tests/fuzz/fuzz_targets.h"

namespace fs = std::filesystem;

TEST_CASE("fuzz corpus: every saved input goes through its target without a crash") {
  const std::map<std::string, int (*)(const uint8_t*, size_t)> targets = {
      {"safetensors", ember::fuzz::safetensors},   {"tokenizer_json", ember::fuzz::tokenizer_json},
      {"config_json", ember::fuzz::config_json},   {"trainer_json", ember::fuzz::trainer_json},
      {"bpe_encode", ember::fuzz::bpe_encode}};
  int inputs = 0;
  for (const auto& entry : targets) {
    const std::string& name = entry.first;  // not a structured binding: clang < 16 cannot capture those
    const auto target = entry.second;
    const fs::path dir = fs::path("tests/fuzz/corpus") / name;
    REQUIRE_MESSAGE(fs::is_directory(dir), dir.string());
    int here = 0;
    for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
      CAPTURE(e.path().string());
      std::ifstream in(e.path(), std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      CHECK(target(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) == 0);
      ++here;
    }
    CHECK_MESSAGE(here > 0, "no inputs for ", name);
    inputs += here;
  }
  MESSAGE(inputs, " saved fuzz inputs replayed");
}
