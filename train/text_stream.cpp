// Streaming a text file through a fixed buffer: the progress line, the char
// vocabulary pass, the BPE training sample, and encoding into narrow ids.
#include "train/text_stream.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "train/data.h"

namespace ember {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// "label: 120.0/300.0 MB (40%), 85 MB/s": redrawn ten times a second on a
// terminal, else a line every five seconds (a short pass prints nothing).
class Progress {
 public:
  Progress(std::string label, int64_t total, const StreamOptions& o)
      : label_(std::move(label)), total_(total), o_(o), start_(Clock::now()), last_(start_) {}

  void update(int64_t done) {
    if (o_.quiet) return;
    const double since = seconds_since(last_);
    if (since < (o_.live_progress ? 0.1 : 5.0)) return;
    last_ = Clock::now();
    const double mb = 1e-6 * static_cast<double>(done), s = seconds_since(start_);
    const std::string line = fmt::format("{}: {:.1f}/{:.1f} MB ({:.0f}%), {:.0f} MB/s", label_, mb,
                                         1e-6 * static_cast<double>(total_), 100.0 * mb * 1e6 / total_, mb / s);
    if (o_.live_progress) {
      fmt::print("\r{}\x1b[K", line);
      drawn_ = true;
    } else {
      fmt::print("{}\n", line);
    }
    std::fflush(stdout);
  }
  // Clears a redrawn line, so the caller's summary takes its place.
  void finish() {
    if (drawn_) fmt::print("\r\x1b[K");
    std::fflush(stdout);
  }

 private:
  std::string label_;
  int64_t total_;
  StreamOptions o_;
  Clock::time_point start_, last_;
  bool drawn_ = false;
};

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

File open_for_reading(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  EMBER_CHECK(f != nullptr, "data: cannot open '{}' for reading ({})", path, std::strerror(errno));
  return f;
}

// The char vocabulary pass.
struct VocabularyConsumer : PieceConsumer {
  CharVocabulary vocabulary;
  size_t use(std::string_view piece, bool last, int64_t offset) override { return vocabulary.add(piece, last, offset); }
};

// The encoding pass: ids of each piece, narrowed to `width` bytes, to a sink.
struct EncodeConsumer : PieceConsumer {
  const Tokenizer& tokenizer;
  int width;
  TokenSink& sink;
  int64_t count = 0;
  std::vector<int32_t> ids;
  std::vector<unsigned char> bytes;

  EncodeConsumer(const Tokenizer& t, int w, TokenSink& s) : tokenizer(t), width(w), sink(s) {}

  size_t use(std::string_view piece, bool last, int64_t offset) override {
    ids.clear();
    const size_t used = tokenizer.encode_prefix(piece, last, offset, ids);
    bytes.resize(ids.size() * static_cast<size_t>(width));
    uint32_t all = 0;  // every bit any id sets: one check that each fits in `width` bytes
    for (const int32_t id : ids) all |= static_cast<uint32_t>(id);
    if (width == 1) {
      for (size_t i = 0; i < ids.size(); ++i) bytes[i] = static_cast<unsigned char>(ids[i]);
    } else if (width == 2) {
      for (size_t i = 0; i < ids.size(); ++i) {
        const auto v = static_cast<uint16_t>(ids[i]);
        std::memcpy(&bytes[2 * i], &v, 2);  // little-endian host (safetensors.cpp asserts it)
      }
    } else {
      std::memcpy(bytes.data(), ids.data(), bytes.size());
    }
    EMBER_CHECK(width == 4 || (all >> (8 * width)) == 0, "tokens: an id does not fit in {} bytes", width);
    sink.write(bytes.data(), bytes.size());
    count += static_cast<int64_t>(ids.size());
    return used;
  }
};

}  // namespace

TextFileId text_file_id(const std::string& path) {
  check_text_file(path);
  struct stat st {};
  EMBER_CHECK(::stat(path.c_str(), &st) == 0, "data: cannot read '{}' ({})", path, std::strerror(errno));
  std::error_code ec;
  const std::filesystem::path canonical = std::filesystem::canonical(path, ec);
  TextFileId id;
  id.path = ec ? std::filesystem::absolute(path).string() : canonical.string();
  id.size = static_cast<int64_t>(st.st_size);
  id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return id;
}

void stream_text(const TextFileId& file, PieceConsumer& consumer, const std::string& label, const StreamOptions& o) {
  const File f = open_for_reading(file.path);
  std::string buf(std::max<size_t>(o.buffer_bytes, 16), '\0');
  size_t filled = 0;
  int64_t offset = 0;  // the file position of buf[0]
  Progress progress(label, file.size, o);
  for (;;) {
    const size_t want = buf.size() - filled;
    const size_t got = std::fread(buf.data() + filled, 1, want, f.get());
    EMBER_CHECK(!std::ferror(f.get()), "data: error while reading '{}' ({})", file.path, std::strerror(errno));
    filled += got;
    const bool last = got < want;  // a regular file reads short only at its end
    const size_t used = consumer.use(std::string_view(buf.data(), filled), last, offset);
    offset += static_cast<int64_t>(used);
    if (last) break;
    // A piece that one BPE chunk fills entirely: grow the buffer to hold the chunk.
    if (used == 0 && filled == buf.size()) buf.resize(buf.size() * 2);
    std::memmove(buf.data(), buf.data() + used, filled - used);
    filled -= used;
    progress.update(offset);
  }
  progress.finish();
  EMBER_CHECK(offset == file.size && text_file_id(file.path) == file,
              "data: '{}' changed while it was being read (size or modification time); run again", file.path);
}

nlohmann::json TokenizerRecipe::to_json() const {
  if (kind == "bpe") return {{"kind", kind}, {"vocab_size", bpe_vocab_size}, {"sample_bytes", kBpeSampleBytes}};
  return {{"kind", kind}};
}

std::string bpe_sample(const TextFileId& file, int64_t budget) {
  if (file.size <= budget) return read_text_file(file.path);
  const File f = open_for_reading(file.path);
  constexpr int64_t kPieces = 64;
  const int64_t piece_bytes = budget / kPieces;
  std::string sample, piece;
  for (int64_t k = 0; k < kPieces; ++k) {
    const int64_t start = file.size / kPieces * k;
    piece.resize(static_cast<size_t>(piece_bytes));
    const bool ok = std::fseek(f.get(), static_cast<long>(start), SEEK_SET) == 0;
    const size_t got = ok ? std::fread(piece.data(), 1, piece.size(), f.get()) : 0;
    EMBER_CHECK(ok && !std::ferror(f.get()), "data: error while reading '{}' ({})", file.path, std::strerror(errno));
    piece.resize(got);
    // Whole lines only, so no word is cut in two (a piece without a newline stays as it is).
    const size_t first = k == 0 ? std::string::npos : piece.find('\n'), last = piece.rfind('\n');
    const size_t begin = first == std::string::npos ? 0 : first + 1;
    const size_t end = last == std::string::npos || last < begin ? piece.size() : last + 1;
    sample.append(piece, begin, end - begin);
  }
  return sample;
}

std::unique_ptr<Tokenizer> train_tokenizer(const TokenizerRecipe& recipe, std::string_view text) {
  if (recipe.kind == "char") return std::make_unique<CharTokenizer>(CharTokenizer::train(text));
  if (recipe.kind == "bpe")
    return std::make_unique<BpeTokenizer>(BpeTokenizer::train(text, static_cast<int32_t>(recipe.bpe_vocab_size)));
  fail("train: unknown tokenizer '{}' (choose char or bpe)", recipe.kind);
}

std::unique_ptr<Tokenizer> train_tokenizer(const TokenizerRecipe& recipe, const TextFileId& file,
                                           const StreamOptions& o) {
  if (recipe.kind == "bpe") {
    const std::string sample = bpe_sample(file);
    if (!o.quiet) {
      fmt::print("tokens: learning BPE merges on {:.1f} MB of {}\n", 1e-6 * static_cast<double>(sample.size()),
                 file.size > kBpeSampleBytes ? "the text (64 pieces spread through it)" : "text");
      std::fflush(stdout);
    }
    return train_tokenizer(recipe, sample);
  }
  if (recipe.kind != "char") return train_tokenizer(recipe, std::string_view());  // the unknown-kind Error
  VocabularyConsumer v;
  stream_text(file, v, "vocabulary", o);
  return std::make_unique<CharTokenizer>(v.vocabulary.tokenizer());
}

int64_t encode_file(const Tokenizer& tokenizer, const TextFileId& file, int width, TokenSink& sink,
                    const StreamOptions& o) {
  EncodeConsumer c(tokenizer, width, sink);
  stream_text(file, c, "tokenizing", o);
  return c.count;
}

}  // namespace ember
