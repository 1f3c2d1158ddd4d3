// TokenArray (ids of 1, 2 or 4 bytes in memory or mapped from a file) and the
// token cache: built once and reused while the text and the tokenizer are
// unchanged, rebuilt when either changes, and rebuilt (never trusted, never
// a crash) when its files are truncated, corrupt or missing.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "tests/core/test_helpers.h"
#include "tests/train/temp_dir.h"
#include "train/token_cache.h"

using namespace ember;
namespace fs = std::filesystem;

namespace {

using ember::testing::TempDir;

using ember::testing::error_of;

std::string sample_text() {
  std::string s;
  const char* words[] = {"the ", "fox ", "hen ", "saw ", "ran ", "and ", "it's ", "over ", "\n"};
  std::mt19937 rng(11);
  while (s.size() < 20000) s += words[rng() % std::size(words)];
  return s;
}

// The ids the in-memory path gives: the reference the cache must reproduce.
std::vector<int32_t> all_ids(const TokenSplit& s) {
  std::vector<int32_t> ids = s.train.to_vector(), val = s.val.to_vector();
  ids.insert(ids.end(), val.begin(), val.end());
  return ids;
}

struct CacheRun {
  TempDir dir;
  std::string text = dir.str("text.txt"), cache = dir.str("run/tokens");
  explicit CacheRun(const std::string& contents) { std::ofstream(text, std::ios::binary) << contents; }
  TokenData load(const TokenizerRecipe& recipe = {}, const Tokenizer* given = nullptr) const {
    TokenDataOptions o;
    o.text = text;
    o.cache_dir = cache;
    return load_token_data(o, recipe, given);
  }
  fs::file_time_type tokens_written() const { return fs::last_write_time(cache + "/tokens.bin"); }
};

}  // namespace

TEST_CASE("token array: each width reads back its ids; slices share storage; errors name the fault") {
  TempDir dir;
  const std::vector<uint32_t> values = {0, 1, 255, 256, 0xBEEF, 65535, 65536, 0x10FFFF};
  for (const int width : {1, 2, 4}) {
    CAPTURE(width);
    std::vector<int64_t> expected;
    std::string bytes;
    for (const uint32_t v : values) {
      if (width < 4 && v >> (8 * width)) continue;
      expected.push_back(v);
      for (int b = 0; b < width; ++b) bytes += static_cast<char>(v >> (8 * b));  // little-endian, by hand
    }
    std::ofstream(dir.str("ids.bin"), std::ios::binary) << bytes;
    const TokenArray ids = TokenArray::map_file(dir.str("ids.bin"), static_cast<int64_t>(expected.size()), width);
    REQUIRE(ids.size() == static_cast<int64_t>(expected.size()));
    for (size_t i = 0; i < expected.size(); ++i) CHECK(ids[static_cast<int64_t>(i)] == expected[i]);
    std::vector<int64_t> copied(expected.size() - 1);
    ids.copy(1, static_cast<int64_t>(copied.size()), copied.data());
    CHECK(copied == std::vector<int64_t>(expected.begin() + 1, expected.end()));
    CHECK(error_of([&] {
            TokenArray::map_file(dir.str("ids.bin"), static_cast<int64_t>(expected.size()) + 1, width);
          }).find("holds " + std::to_string(bytes.size()) + " bytes, expected") != std::string::npos);
  }
  TokenArray slice;
  {
    const TokenArray whole(std::vector<int32_t>{5, 6, 7, 8});
    slice = whole.slice(1, 2);
  }  // the slice keeps the storage alive
  CHECK(slice.to_vector() == std::vector<int32_t>{6, 7});
  CHECK(error_of([&] { slice.slice(1, 2); }) == "tokens: slice [1, 3) is outside the 2 ids");
  CHECK(error_of([] { TokenArray(std::vector<int32_t>{1, -2}); }) == "tokens: id -2 at position 1 is negative");
  CHECK(error_of([&] { TokenArray::map_file(dir.str("missing.bin"), 1, 1); }).starts_with("tokens: cannot open"));
  CHECK(token_width_from_name(token_dtype_name(2)) == 2);
  CHECK(error_of([] { token_width_from_name("int64"); }) ==
        "tokens: unknown dtype 'int64' (expected uint8, uint16 or uint32)");
}

TEST_CASE("token cache: built once, then reused without rewriting, with the in-memory path's ids") {
  const std::string text = sample_text();
  CacheRun run(text);
  const TokenData first = run.load();
  CHECK_FALSE(first.cache_reused);
  CHECK(first.rebuilt_because.empty());
  REQUIRE(first.tokenizer != nullptr);
  const std::vector<int32_t> expected = first.tokenizer->encode(text);
  CHECK(all_ids(first.split) == expected);
  CHECK(first.split.train.size() == static_cast<int64_t>(expected.size() * 9 / 10));  // nanoGPT's 90% of the ids
  CHECK(first.split.train.width() == 1);                                              // 17 characters: uint8
  CHECK(fs::file_size(run.cache + "/tokens.bin") == expected.size());
  for (const auto& e : fs::directory_iterator(run.cache)) CHECK(!e.path().string().ends_with(".tmp"));
  const auto written = run.tokens_written();

  const TokenData again = run.load();
  CHECK(again.cache_reused);
  CHECK(again.tokenizer->to_json() == first.tokenizer->to_json());
  CHECK(all_ids(again.split) == expected);
  CHECK(run.tokens_written() == written);
  // A resumed run brings its tokenizer: the same cache serves it.
  const TokenData resumed = run.load({}, first.tokenizer.get());
  CHECK(resumed.cache_reused);
  CHECK(resumed.tokenizer == nullptr);
  // gpt eval reads a valid cache but never writes one.
  TokenDataOptions eval;
  eval.text = run.text;
  eval.cache_dir = run.dir.str("elsewhere");
  eval.write_cache = false;
  CHECK(all_ids(load_token_data(eval, {}, first.tokenizer.get()).split) == expected);
  CHECK_FALSE(fs::exists(eval.cache_dir));
}

TEST_CASE("token cache: a changed text or tokenizer rebuilds it") {
  std::string text = sample_text();
  CacheRun run(text);
  const TokenData first = run.load();
  // Touched: same bytes, a later modification time.
  fs::last_write_time(run.text, fs::last_write_time(run.text) + std::chrono::seconds(5));
  TokenData d = run.load();
  CHECK_FALSE(d.cache_reused);
  CHECK(d.rebuilt_because == "the text changed since (its size or modification time differ)");
  CHECK(run.load().cache_reused);  // rebuilt for the new time
  // Edited in place, same size: the new ids differ exactly where the text does.
  text[100] = text[100] == 'x' ? 'o' : 'x';
  std::ofstream(run.text, std::ios::binary) << text;
  fs::last_write_time(run.text, fs::last_write_time(run.text) + std::chrono::seconds(10));
  d = run.load();
  CHECK(d.rebuilt_because == "the text changed since (its size or modification time differ)");
  CHECK(all_ids(d.split) == d.tokenizer->encode(text));
  // Another recipe, another given tokenizer.
  d = run.load({"bpe", 300});
  CHECK(d.rebuilt_because == "it was made by another tokenizer ({\"kind\":\"char\"})");
  CHECK(d.split.train.width() == 2);  // a BPE vocabulary: uint16
  CHECK(d.tokenizer->kind() == "bpe");
  const CharTokenizer other(
      {U'\n', U' ', U'a', U'd', U'e', U'f', U'h', U'i', U'n', U'o', U'r', U's', U't', U'v', U'w', U'x', U'\'', U'q'});
  d = run.load({}, &other);
  CHECK(d.rebuilt_because == "it was made by another tokenizer");
  CHECK(all_ids(d.split) == other.encode(text));
  // A given tokenizer need not be what a new run would train on this text: a new run retrains.
  d = run.load();
  CHECK(d.rebuilt_because == "it was made by a resumed run's tokenizer");
  CHECK(d.tokenizer->to_json() == CharTokenizer::train(text).to_json());
  // Another text file of the same run.
  std::ofstream(run.dir.str("other.txt"), std::ios::binary) << text;
  TokenDataOptions o;
  o.text = run.dir.str("other.txt");
  o.cache_dir = run.cache;
  CHECK(load_token_data(o, {}, &other).rebuilt_because.starts_with("it holds the tokens of \""));
  // A text the tokenizer cannot encode: the error, and no half-written file left.
  const CharTokenizer narrow({U' ', U'e', U'h', U't'});
  CHECK(error_of([&] { run.load({}, &narrow); }).starts_with("char tokenizer: character"));
  CHECK_FALSE(fs::exists(run.cache + "/tokens.bin.tmp"));
  CHECK_FALSE(fs::exists(run.cache + "/manifest.json"));
}

TEST_CASE("token cache: truncated, corrupt or missing files are rebuilt with a reason, never trusted") {
  const std::string text = sample_text();
  CacheRun run(text);
  const std::vector<int32_t> expected = run.load().tokenizer->encode(text);
  const std::string tokens = run.cache + "/tokens.bin", manifest = run.cache + "/manifest.json";
  struct Fault {
    const char* name;
    void (*apply)(const std::string& tokens, const std::string& manifest);
    std::string reason;  // the start of rebuilt_because
  };
  const Fault faults[] = {
      {"truncated", [](const std::string& t, const std::string&) { fs::resize_file(t, fs::file_size(t) - 1); },
       fmt::format("tokens.bin holds {} bytes, the manifest says {}", expected.size() - 1, expected.size())},
      {"flipped byte",
       [](const std::string& t, const std::string&) {
         std::fstream f(t, std::ios::in | std::ios::out | std::ios::binary);
         f.seekp(500);
         f.put('\x7F');  // an id the 17-character vocabulary does not have
       },
       "tokens.bin does not match its checksum (corrupt)"},
      {"tokens deleted", [](const std::string& t, const std::string&) { fs::remove(t); }, "tokens.bin is missing"},
      {"manifest deleted", [](const std::string&, const std::string& m) { fs::remove(m); }, "manifest.json is missing"},
      {"manifest garbage", [](const std::string&, const std::string& m) { std::ofstream(m) << "{ not json"; },
       "manifest.json is not a JSON object"},
      {"manifest field of the wrong type",
       [](const std::string&, const std::string& m) {
         std::ifstream in(m);
         nlohmann::json j = nlohmann::json::parse(in);
         j["tokens"] = "many";
         std::ofstream(m) << j.dump();
       },
       "manifest.json is malformed ("},
      {"manifest split point moved",
       [](const std::string&, const std::string& m) {
         std::ifstream in(m);
         nlohmann::json j = nlohmann::json::parse(in);
         j["train_tokens"] = 5;
         std::ofstream(m) << j.dump();
       },
       "manifest.json is inconsistent (dtype, token count or split point)"},
  };
  for (const Fault& f : faults) {
    const std::string fault = f.name;
    CAPTURE(fault);
    REQUIRE(run.load().cache_reused);
    f.apply(tokens, manifest);
    const TokenData d = run.load();
    CHECK_FALSE(d.cache_reused);
    CHECK(d.rebuilt_because.starts_with(f.reason));
    CHECK(all_ids(d.split) == expected);
  }
  CHECK(run.load().cache_reused);
}

TEST_CASE("token cache: the built-in corpus and a cache-less load stay in memory") {
  TempDir dir;
  TokenDataOptions o;
  o.cache_dir = dir.str("tokens");
  const TokenData builtin = load_token_data(o, {}, nullptr);  // no text: the built-in corpus
  CHECK(builtin.split.train.size() > 100000);
  CHECK_FALSE(fs::exists(o.cache_dir));
  std::ofstream(dir.str("t.txt")) << sample_text();
  o.text = dir.str("t.txt");
  o.cache_dir = "";
  const TokenData d = load_token_data(o, {}, nullptr);
  CHECK(all_ids(d.split) == d.tokenizer->encode(sample_text()));
  CHECK(d.split.val.width() == 1);
  CHECK(error_of([&] { load_token_data(o, {"words"}, nullptr); }) ==
        "train: unknown tokenizer 'words' (choose char or bpe)");
  o.text = dir.str("missing.txt");
  CHECK(error_of([&] { load_token_data(o, {}, nullptr); }) ==
        "data: file '" + dir.str("missing.txt") + "' does not exist");
}
