// Tokenizers: text <-> token ids. CharTokenizer maps each Unicode character to an
// id (nanoGPT's shakespeare_char); BpeTokenizer is byte-level BPE (GPT-2 style:
// ids 0..255 are raw bytes, then one id per learned merge). Both serialize to
// JSON so a checkpoint can carry the tokenizer beside the weights.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ember {

// The common interface the dataset, trainer and sampler use. Calls are per text,
// not per element, so virtual dispatch costs nothing that matters here.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  std::vector<int32_t> encode(std::string_view text) const;
  // Streaming: encodes the longest prefix of `text` whose ids cannot change
  // with what follows it (all of `text` when `last`), appends the ids to
  // `ids` and returns that prefix's length in bytes. `offset` is where `text`
  // starts in the whole input, for error messages. Fed in pieces, each
  // starting where the previous call stopped, a text gets encode()'s ids.
  virtual size_t encode_prefix(std::string_view text, bool last, int64_t offset, std::vector<int32_t>& ids) const = 0;
  // Throws ember::Error on an id outside [0, vocab_size()).
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual std::string kind() const = 0;        // "char" or "bpe"
  virtual nlohmann::json to_json() const = 0;  // always includes "kind"
};

// Rebuilds a tokenizer from to_json() output; throws ember::Error naming the
// offending field when the JSON is malformed.
std::unique_ptr<Tokenizer> tokenizer_from_json(const nlohmann::json& j);

// Writes path.tmp then renames it over path, so a crash mid-save never leaves a
// half-written tokenizer where a good one used to be.
void save_tokenizer(const Tokenizer& t, const std::string& path);
// Throws ember::Error naming the path on a missing, unreadable or garbled file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// One id per distinct Unicode code point. Text must be valid UTF-8.
class CharTokenizer : public Tokenizer {
 public:
  // Vocabulary = the sorted distinct code points of `text` (non-empty).
  static CharTokenizer train(std::string_view text);
  static CharTokenizer from_json(const nlohmann::json& j);
  // chars[id] is the code point of token id; must be distinct valid code points.
  explicit CharTokenizer(std::vector<char32_t> chars);

  size_t encode_prefix(std::string_view text, bool last, int64_t offset, std::vector<int32_t>& ids) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  int32_t vocab_size() const override;
  std::string kind() const override;
  nlohmann::json to_json() const override;
  const std::vector<char32_t>& chars() const { return chars_; }

 private:
  std::vector<char32_t> chars_;
  std::unordered_map<char32_t, int32_t> id_of_;
  std::array<int32_t, 128> ascii_id_;  // id_of_ for ASCII (-1: not in the vocabulary), the common case
};

// CharTokenizer::train over a text that arrives in pieces (a file streamed
// through a bounded buffer): add() takes encode_prefix's arguments and
// returns the bytes it used; tokenizer() gives train()'s vocabulary.
class CharVocabulary {
 public:
  size_t add(std::string_view text, bool last, int64_t offset);
  CharTokenizer tokenizer() const;

 private:
  std::array<bool, 128> ascii_{};
  std::vector<bool> other_ = std::vector<bool>(0x110000);  // every code point above ASCII
  bool any_ = false;
};

// Merge number r turns the adjacent pair (left, right) into the new id 256 + r.
struct BpeMerge {
  int32_t left;
  int32_t right;
  friend bool operator==(const BpeMerge&, const BpeMerge&) = default;
};

// Byte-level BPE. Any byte string (invalid UTF-8, NUL bytes) round-trips exactly.
class BpeTokenizer : public Tokenizer {
 public:
  static constexpr int32_t kMaxVocabSize = 65536;

  // Learns up to vocab_size - 256 merges; stops early once no pair occurs twice,
  // so vocab_size() may come out smaller than asked. vocab_size in [256, 65536].
  static BpeTokenizer train(std::string_view text, int32_t vocab_size);
  static BpeTokenizer from_json(const nlohmann::json& j);
  // Each merge may only use ids that exist before it (bytes or earlier merges).
  explicit BpeTokenizer(std::vector<BpeMerge> merges);

  // GPT-2 style pre-split: an optional single leading space then a run of letters
  // (bytes >= 0x80 count as letters), digits or other symbols; English
  // contractions ('s 't 're 've 'm 'll 'd); runs of whitespace. Merges never
  // cross chunk boundaries. The views point into `text`.
  static std::vector<std::string_view> split_chunks(std::string_view text);

  // Chunks are encoded once their pre-split is final: when at least two bytes
  // follow them in `text` (the splitter looks one byte past a chunk's end).
  size_t encode_prefix(std::string_view text, bool last, int64_t offset, std::vector<int32_t>& ids) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  int32_t vocab_size() const override;
  std::string kind() const override;
  nlohmann::json to_json() const override;
  const std::vector<BpeMerge>& merges() const { return merges_; }

 private:
  std::vector<int32_t> encode_chunk(std::string_view chunk) const;

  std::vector<BpeMerge> merges_;
  std::unordered_map<uint64_t, int32_t> rank_of_pair_;  // pair key -> merge index
  std::vector<std::string> bytes_of_id_;                // id -> the bytes it stands for
};

}  // namespace ember
