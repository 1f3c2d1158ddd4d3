// Tests for the char and byte-level BPE tokenizers: round trips, hand-predicted
// vocabularies and merges, JSON and file persistence, and the error messages
// for unknown characters, bad ids, missing files and garbled JSON.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "tests/core/test_helpers.h"
#include "train/tokenizer.h"

using namespace ember;

namespace {

// Enough repetition for BPE to find merges, yet small enough to train instantly.
const std::string kVerse =
    "Shall I compare thee to a summer's day?\n"
    "Thou art more lovely and more temperate:\n"
    "Rough winds do shake the darling buds of May,\n"
    "And summer's lease hath all too short a date;\n"
    "Sometime too hot the eye of heaven shines,\n"
    "And often is his gold complexion dimm'd;\n";

std::string repeated(const std::string& s, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += s;
  return out;
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(byte(rng));
  return s;
}

using ember::testing::error_of;

// A fresh directory under the system temp dir, removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() / ("ember_tokenizer_test_" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("char tokenizer: vocabulary is the sorted distinct code points") {
  // "é" is two bytes in UTF-8 but one code point, and sorts after ASCII.
  const CharTokenizer tok = CharTokenizer::train("héllo, world\n");
  const std::vector<char32_t> expected = {U'\n', U' ', U',', U'd', U'h', U'l', U'o', U'r', U'w', U'\u00e9'};
  CHECK(tok.vocab_size() == 10);
  CHECK(tok.chars() == expected);
  CHECK(tok.kind() == "char");
  CHECK(tok.encode("héllo") == std::vector<int32_t>{4, 9, 5, 5, 6});
}

TEST_CASE("char tokenizer: encode then decode gives back the text") {
  const std::string text = "héllo, world\nhow low\n";
  const CharTokenizer tok = CharTokenizer::train(text);
  const std::vector<int32_t> ids = tok.encode(text);
  CHECK(ids.size() == 21);  // code points, not bytes (the text is 22 bytes)
  CHECK(tok.decode(ids) == text);
  CHECK(tok.decode(tok.encode("howl, whorl")) == "howl, whorl");
}

TEST_CASE("char tokenizer: unknown character error names it and the vocabulary size") {
  const CharTokenizer tok = CharTokenizer::train("abc\n");
  const std::string msg = error_of([&] { tok.encode("abZ"); });
  CHECK(msg ==
        "char tokenizer: character 'Z' (U+005A) at byte offset 2 is not in the "
        "vocabulary of 4 characters");
  const std::string tab_msg = error_of([&] { tok.encode("a\tb"); });
  CHECK(tab_msg.find("'\\t' (U+0009) at byte offset 1") != std::string::npos);
}

TEST_CASE("char tokenizer: invalid UTF-8 is rejected with its byte offset") {
  const std::string msg = error_of([] { CharTokenizer::train("ok\xff"); });
  CHECK(msg.find("invalid UTF-8 at byte offset 2") != std::string::npos);
  CHECK(msg.find("0xFF") != std::string::npos);
  // Truncated two-byte sequence, overlong '/', and a UTF-16 surrogate.
  CHECK(error_of([] { CharTokenizer::train("ab\xc3"); }).find("offset 2") != std::string::npos);
  CHECK(error_of([] { CharTokenizer::train("\xe0\x80\xaf"); }).find("overlong") != std::string::npos);
  CHECK(error_of([] { CharTokenizer::train("x\xed\xa0\x80"); }).find("surrogate") != std::string::npos);
  const CharTokenizer tok = CharTokenizer::train("abc");
  CHECK(error_of([&] { tok.encode("a\x80"); }).find("offset 1") != std::string::npos);
}

TEST_CASE("char tokenizer: decode rejects an id outside the vocabulary") {
  const CharTokenizer tok = CharTokenizer::train("abc");
  const std::vector<int32_t> ids = {0, 1, 3};
  CHECK(error_of([&] { tok.decode(ids); }) == "char tokenizer: id 3 at position 2 is out of range [0, 3)");
  const std::vector<int32_t> negative = {-1};
  CHECK_THROWS_AS(tok.decode(negative), Error);
}

TEST_CASE("bpe tokenizer: pre-split keeps a leading space with the word after it") {
  const auto chunks = BpeTokenizer::split_chunks(
      "Hello world  42!!\nit's \xff\xfe"
      "x");
  const std::vector<std::string_view> expected = {"Hello",
                                                  " world",
                                                  " ",
                                                  " 42",
                                                  "!!",
                                                  "\n",
                                                  "it",
                                                  "'s",
                                                  " \xff\xfe"
                                                  "x"};
  CHECK(chunks == expected);
}

TEST_CASE("bpe tokenizer: learns the merges predicted by hand for aaabdaaabac") {
  // Pairs: aa x4 -> merge (97,97)=256, giving Z a b d Z a b a c. Then (256,97) and
  // (97,98) tie at 2; the smaller pair (97,98) wins -> 257. Then (256,257) -> 258,
  // after which no pair occurs twice, so training stops at 259 ids.
  const BpeTokenizer tok = BpeTokenizer::train("aaabdaaabac", 1000);
  const std::vector<BpeMerge> expected = {{97, 97}, {97, 98}, {256, 257}};
  CHECK(tok.merges() == expected);
  CHECK(tok.vocab_size() == 259);
  CHECK(tok.encode("aaabdaaabac") == std::vector<int32_t>{258, 100, 258, 97, 99});
  CHECK(tok.decode(std::vector<int32_t>{258}) == "aaab");
}

TEST_CASE("bpe tokenizer: stops at the requested vocab size") {
  const BpeTokenizer tok = BpeTokenizer::train(repeated(kVerse, 4), 300);
  CHECK(tok.vocab_size() == 300);
  CHECK(tok.merges().size() == 44);
  CHECK(BpeTokenizer::train(kVerse, 256).vocab_size() == 256);
}

TEST_CASE("bpe tokenizer: round trips the text it was trained on") {
  const std::string text = repeated(kVerse, 3);
  const BpeTokenizer tok = BpeTokenizer::train(text, 400);
  CHECK(tok.decode(tok.encode(text)) == text);
}

TEST_CASE("bpe tokenizer: round trips unseen text") {
  const BpeTokenizer tok = BpeTokenizer::train(repeated(kVerse, 3), 400);
  const std::string unseen = "Zebras quietly juxtapose 12345 fjords; naïve café \t\r\n  x";
  CHECK(tok.decode(tok.encode(unseen)) == unseen);
}

TEST_CASE("bpe tokenizer: round trips random bytes including NUL and invalid UTF-8") {
  const std::string bytes = random_bytes(5000, 1234);
  REQUIRE(bytes.find('\0') != std::string::npos);
  const BpeTokenizer tok = BpeTokenizer::train(repeated(kVerse, 3) + bytes, 500);
  CHECK(tok.decode(tok.encode(bytes)) == bytes);
  const BpeTokenizer trained_on_bytes = BpeTokenizer::train(random_bytes(8000, 99), 300);
  CHECK(trained_on_bytes.decode(trained_on_bytes.encode(bytes)) == bytes);
}

TEST_CASE("bpe tokenizer: compresses repetitive text to fewer ids than bytes") {
  const std::string text = repeated(kVerse, 8);
  const BpeTokenizer tok = BpeTokenizer::train(text, 512);
  const size_t n_ids = tok.encode(text).size();
  CHECK(n_ids * 3 < text.size());  // at least 3 bytes per token on its own text
  CHECK(BpeTokenizer::train(text, 256).encode(text).size() == text.size());
}

TEST_CASE("bpe tokenizer: rejects a vocab size outside [256, 65536]") {
  CHECK(error_of([] { BpeTokenizer::train("abc", 255); }).find("vocab_size 255 is outside [256, 65536]") !=
        std::string::npos);
  CHECK_THROWS_AS(BpeTokenizer::train("abc", 65537), Error);
}

TEST_CASE("bpe tokenizer: decode rejects an id outside the vocabulary") {
  const BpeTokenizer tok = BpeTokenizer::train("aaabdaaabac", 1000);
  const std::vector<int32_t> ids = {97, 259};
  CHECK(error_of([&] { tok.decode(ids); }) == "bpe tokenizer: id 259 at position 1 is out of range [0, 259)");
  const std::vector<int32_t> negative = {-5};
  CHECK_THROWS_AS(tok.decode(negative), Error);
}

TEST_CASE("tokenizer json: round trip gives identical encodings for both kinds") {
  const std::string text = repeated(kVerse, 3);
  const CharTokenizer chars = CharTokenizer::train(text);
  const BpeTokenizer bpe = BpeTokenizer::train(text, 400);
  for (const Tokenizer* original : {static_cast<const Tokenizer*>(&chars), static_cast<const Tokenizer*>(&bpe)}) {
    const nlohmann::json j = original->to_json();
    CHECK(j.at("kind") == original->kind());
    // Through text too, as a checkpoint would store it.
    const auto rebuilt = tokenizer_from_json(nlohmann::json::parse(j.dump()));
    CHECK(rebuilt->kind() == original->kind());
    CHECK(rebuilt->vocab_size() == original->vocab_size());
    CHECK(rebuilt->encode(text) == original->encode(text));
  }
}

TEST_CASE("tokenizer json: malformed json names the broken field") {
  using nlohmann::json;
  CHECK(error_of([] { tokenizer_from_json(json::array()); }).find("expected an object") != std::string::npos);
  CHECK(error_of([] { tokenizer_from_json(json{{"chars", {"a"}}}); }).find("\"kind\"") != std::string::npos);
  CHECK(error_of([] {
          tokenizer_from_json(json{{"kind", "wordpiece"}});
        }).find("unknown kind \"wordpiece\"") != std::string::npos);
  const json two_chars = {{"kind", "char"}, {"chars", {"a", "bc"}}};
  CHECK(error_of([&] { tokenizer_from_json(two_chars); }).find("chars[1]") != std::string::npos);
  const json repeated_char = {{"kind", "char"}, {"chars", {"a", "a"}}};
  CHECK(error_of([&] { tokenizer_from_json(repeated_char); }).find("appears twice") != std::string::npos);
  // Merge 0 may only use the 256 byte ids.
  const json forward_ref = {{"kind", "bpe"}, {"merges", {{97, 256}}}};
  CHECK(error_of([&] { tokenizer_from_json(forward_ref); }).find("merge 0 is (97, 256)") != std::string::npos);
  const json not_pair = {{"kind", "bpe"}, {"merges", {{97, 98}, {1}}}};
  CHECK(error_of([&] { tokenizer_from_json(not_pair); }).find("merges[1]") != std::string::npos);
}

TEST_CASE("tokenizer file: save then load gives identical encodings") {
  TempDir dir;
  const std::string text = repeated(kVerse, 3);
  const BpeTokenizer bpe = BpeTokenizer::train(text, 350);
  const CharTokenizer chars = CharTokenizer::train(text);
  const std::string bpe_path = (dir.path / "bpe.json").string();
  const std::string char_path = (dir.path / "char.json").string();
  save_tokenizer(bpe, bpe_path);
  save_tokenizer(chars, char_path);
  CHECK_FALSE(std::filesystem::exists(bpe_path + ".tmp"));
  const auto bpe_loaded = load_tokenizer(bpe_path);
  const auto char_loaded = load_tokenizer(char_path);
  CHECK(bpe_loaded->kind() == "bpe");
  CHECK(bpe_loaded->encode(text) == bpe.encode(text));
  CHECK(char_loaded->kind() == "char");
  CHECK(char_loaded->encode(text) == chars.encode(text));
  // Saving again replaces the file in place.
  save_tokenizer(chars, bpe_path);
  CHECK(load_tokenizer(bpe_path)->kind() == "char");
}

TEST_CASE("tokenizer file: loading a missing file names the path") {
  TempDir dir;
  const std::string path = (dir.path / "nope.json").string();
  const std::string msg = error_of([&] { load_tokenizer(path); });
  CHECK(msg == "load tokenizer: '" + path + "' is missing (or not a regular file)");
}

TEST_CASE("tokenizer file: loading garbage or a wrong kind names the path and fault") {
  TempDir dir;
  const std::string garbage = (dir.path / "garbage.json").string();
  std::ofstream(garbage) << "{\"kind\": \"bpe\", \"merges\": [[1, 2], oops";
  const std::string msg = error_of([&] { load_tokenizer(garbage); });
  CHECK(msg.find("load tokenizer: '" + garbage + "' is not valid JSON") == 0);
  const std::string wrong = (dir.path / "wrong.json").string();
  std::ofstream(wrong) << "{\"kind\": \"sentencepiece\"}";
  const std::string msg2 = error_of([&] { load_tokenizer(wrong); });
  CHECK(msg2.find("load tokenizer: '" + wrong + "'") == 0);
  CHECK(msg2.find("unknown kind \"sentencepiece\"") != std::string::npos);
}
