// Streaming a text file through a small buffer gives exactly what reading it
// whole gives: the same ids for both tokenizers at every buffer size (cuts
// inside UTF-8 sequences, BPE chunks and whitespace runs, a word longer than
// the buffer), the same char vocabulary, and the same error messages at the
// same byte offsets. Also the BPE training sample and a text that changes
// while it is read.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "tests/core/test_helpers.h"
#include "tests/train/temp_dir.h"
#include "train/text_stream.h"
#include "train/token_array.h"

using namespace ember;
namespace fs = std::filesystem;

namespace {

using ember::testing::TempDir;

// Pieces that meet at awkward places: multi-byte characters, contractions,
// runs of spaces and newlines, digits, a word much longer than a small buffer.
std::string mixed_text(size_t pieces, uint32_t seed) {
  const char* parts[] = {" ",   "  ",     "   ", "\n",   "\n\n", "\t", "'s", "'ll",      "don't", "42",
                         "7",   "x",      "the", "é",    "日本", "😀",  "!!", " --",      "Ünïcö", ",",
                         "the", " quick", "fox", "\r\n", "'",    "d",  "zz", "aaaaaaaa", "9 9",   "dé"};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, std::size(parts) - 1);
  std::string s;
  for (size_t i = 0; i < pieces; ++i) s += parts[pick(rng)];
  s += std::string(300, 'w') + " end";  // a chunk longer than the smallest buffers
  return s;
}

// Collects what encode_file writes.
struct BytesSink : TokenSink {
  std::vector<unsigned char> bytes;
  void write(const unsigned char* b, size_t n) override { bytes.insert(bytes.end(), b, b + n); }
};

std::vector<int32_t> encode_streamed(const Tokenizer& t, const std::string& path, size_t buffer) {
  StreamOptions o;
  o.buffer_bytes = buffer;
  BytesSink sink;
  const int width = token_width(t.vocab_size());
  const int64_t n = encode_file(t, text_file_id(path), width, sink, o);
  REQUIRE(static_cast<int64_t>(sink.bytes.size()) == n * width);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (size_t i = 0; i < ids.size(); ++i)
    for (int b = width - 1; b >= 0; --b) ids[i] = ids[i] << 8 | sink.bytes[i * width + b];  // little-endian
  return ids;
}

using ember::testing::error_of;

const size_t kBuffers[] = {16, 17, 23, 64, 1000, size_t{1} << 20};

}  // namespace

TEST_CASE("text stream: both tokenizers give encode()'s ids at every buffer size") {
  TempDir dir;
  const std::string text = mixed_text(3000, 1) + mixed_text(2000, 2);
  const std::string path = dir.write("mixed.txt", text);
  const CharTokenizer chars = CharTokenizer::train(text);
  const BpeTokenizer bpe = BpeTokenizer::train(text, 400);
  REQUIRE(bpe.vocab_size() > 300);  // enough merges that chunks really merge
  for (const size_t buffer : kBuffers) {
    CAPTURE(buffer);
    CHECK(encode_streamed(chars, path, buffer) == chars.encode(text));
    CHECK(encode_streamed(bpe, path, buffer) == bpe.encode(text));
  }
  // BPE is byte-level: random bytes (NUL, invalid UTF-8) stream the same way too.
  std::mt19937 rng(3);
  std::string noise(5000, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  const std::string noise_path = dir.write("noise.bin", noise);
  for (const size_t buffer : kBuffers) CHECK(encode_streamed(bpe, noise_path, buffer) == bpe.encode(noise));
}

TEST_CASE("text stream: the char vocabulary from a streamed file is train()'s, ids fit the smallest width") {
  TempDir dir;
  const std::string text = mixed_text(4000, 5);
  const std::string path = dir.write("t.txt", text);
  for (const size_t buffer : kBuffers) {
    StreamOptions o;
    o.buffer_bytes = buffer;
    const auto t = train_tokenizer(TokenizerRecipe{"char"}, text_file_id(path), o);
    CHECK(t->to_json() == CharTokenizer::train(text).to_json());
  }
  CHECK(token_width(1) == 1);
  CHECK(token_width(256) == 1);
  CHECK(token_width(257) == 2);
  CHECK(token_width(65536) == 2);
  CHECK(token_width(65537) == 4);
}

TEST_CASE("text stream: invalid UTF-8 and unknown characters report the whole text's offset") {
  TempDir dir;
  const std::string good = mixed_text(400, 7);
  const CharTokenizer known = CharTokenizer::train(good);
  // Each fault sits at several offsets, so cut points fall before, inside and after it.
  const std::string faults[] = {"\x80",
                                "\xE2\x82"
                                "a",
                                "\xF0\x9F\x98",
                                "\xC0\xAF",
                                "\xED\xA0\x80",
                                "\xE2\x82",
                                "#",
                                "€"};
  int checked = 0;
  for (const std::string& fault : faults)
    for (const size_t at : {size_t{0}, size_t{15}, size_t{16}, size_t{30}, good.size() - 1, good.size()}) {
      const std::string text = good.substr(0, at) + fault + good.substr(at);
      const std::string path = dir.write("bad.txt", text);
      const std::string whole_encode = error_of([&] { known.encode(text); });
      const std::string whole_train = error_of([&] { CharTokenizer::train(text); });
      REQUIRE(!whole_encode.empty());
      for (const size_t buffer : {size_t{16}, size_t{17}, size_t{64}}) {
        CAPTURE(fault);
        CAPTURE(at);
        CAPTURE(buffer);
        StreamOptions o;
        o.buffer_bytes = buffer;
        CHECK(error_of([&] { encode_streamed(known, path, buffer); }) == whole_encode);
        CHECK(error_of([&] { train_tokenizer(TokenizerRecipe{"char"}, text_file_id(path), o); }) == whole_train);
        ++checked;
      }
    }
  CHECK(checked == 8 * 6 * 3);
}

TEST_CASE("text stream: the BPE sample is the whole text when small, else whole lines within the budget") {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 4000; ++i) text += "line " + std::to_string(i) + " of the text\n";
  const TextFileId id = text_file_id(dir.write("lines.txt", text));
  CHECK(bpe_sample(id, static_cast<int64_t>(text.size())) == text);
  const int64_t budget = 16384;
  const std::string sample = bpe_sample(id, budget);
  CHECK(static_cast<int64_t>(sample.size()) <= budget);
  CHECK(sample.size() > 10000);  // 64 pieces of 256 bytes, each cut to its whole lines
  CHECK(sample.starts_with("line 0 of the text\n"));
  // Every line of the sample is a line of the text, and the sample reaches the text's last quarter.
  std::string text_lines(1, '\n');
  text_lines += text;
  size_t lines = 0;
  for (size_t at = 0; at < sample.size(); ++lines) {
    const size_t end = sample.find('\n', at);
    REQUIRE(end != std::string::npos);
    std::string line(1, '\n');
    line.append(sample, at, end - at + 1);
    CHECK(text_lines.find(line) != std::string::npos);
    at = end + 1;
  }
  CHECK(lines > 400);
  CHECK(sample.find("\nline 39") != std::string::npos);
}

TEST_CASE("text stream: a file that changes while it is read is an error, not a silent mix") {
  TempDir dir;
  const std::string path = dir.write("moving.txt", std::string(5000, 'a'));
  struct Appender : PieceConsumer {
    std::string path;
    bool done = false;
    size_t use(std::string_view piece, bool, int64_t) override {
      if (!done) std::ofstream(path, std::ios::app) << "more text";
      done = true;
      return piece.size();
    }
  } appender;
  appender.path = path;
  StreamOptions o;
  o.buffer_bytes = 1000;
  CHECK(error_of([&] { stream_text(text_file_id(path), appender, "reading", o); }) ==
        "data: '" + fs::canonical(path).string() +
            "' changed while it was being read (size or modification time); run again");
}
