// Reading a text file through a bounded buffer, for texts larger than memory
// should hold: training a tokenizer (the char vocabulary in one pass, BPE
// merges on an evenly spread sample) and encoding piece by piece into token
// ids of 1, 2 or 4 bytes, with a progress line on stdout.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "train/tokenizer.h"

namespace ember {

// What tells one version of a text file from another: the cache's key.
struct TextFileId {
  std::string path;  // absolute
  int64_t size = 0;
  int64_t mtime_ns = 0;  // modification time, ns since the epoch
  friend bool operator==(const TextFileId&, const TextFileId&) = default;
};
// The file's id now; Error as read_text_file gives for a missing, empty,
// unreadable or non-regular file.
TextFileId text_file_id(const std::string& path);

struct StreamOptions {
  bool quiet = true;                      // no progress output
  bool live_progress = false;             // a redrawn line (a terminal) instead of a line every few seconds
  size_t buffer_bytes = size_t{1} << 20;  // text read at a time (a piece grows only to hold one BPE chunk)
};

// Takes pieces of a text in order: use() gets the unread part of the buffer
// (`offset` is its position in the file, `last` says nothing follows) and
// returns how many leading bytes it consumed; the rest comes again with more
// text after it. With `last` it must consume everything.
class PieceConsumer {
 public:
  virtual ~PieceConsumer() = default;
  virtual size_t use(std::string_view piece, bool last, int64_t offset) = 0;
};
// Streams `file` through `consumer`, printing "label: read/total MB" as it
// goes. Error when the file is no longer `file` (it changed while being read).
void stream_text(const TextFileId& file, PieceConsumer& consumer, const std::string& label, const StreamOptions& o);

// How a fresh tokenizer is made; what the token cache compares for a new run.
struct TokenizerRecipe {
  std::string kind = "char";  // char | bpe
  int64_t bpe_vocab_size = 512;
  nlohmann::json to_json() const;
};
// BPE merges are learned on at most this much text: training holds the
// sample, its pre-split chunks and pair tables (several times its size) and
// takes seconds per MB, so a large corpus cannot be trained on whole.
inline constexpr int64_t kBpeSampleBytes = int64_t{8} << 20;
// A text's BPE training sample: all of it up to `budget` bytes; else 64
// pieces spread evenly through it, each cut to whole lines, joined.
std::string bpe_sample(const TextFileId& file, int64_t budget = kBpeSampleBytes);

// The recipe's tokenizer trained on `text` (in memory), or on a file: the
// char vocabulary from one streaming pass, BPE merges on bpe_sample(file).
std::unique_ptr<Tokenizer> train_tokenizer(const TokenizerRecipe& recipe, std::string_view text);
std::unique_ptr<Tokenizer> train_tokenizer(const TokenizerRecipe& recipe, const TextFileId& file,
                                           const StreamOptions& o);

// Where encode_file puts the ids: little-endian, `width` bytes each.
class TokenSink {
 public:
  virtual ~TokenSink() = default;
  virtual void write(const unsigned char* bytes, size_t n) = 0;
};
// Encodes `file` piece by piece into `sink`, each id in `width` bytes
// (token_width of the vocabulary); returns how many ids it wrote.
int64_t encode_file(const Tokenizer& tokenizer, const TextFileId& file, int width, TokenSink& sink,
                    const StreamOptions& o);

}  // namespace ember
