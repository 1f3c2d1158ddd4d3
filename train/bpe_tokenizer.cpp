// BpeTokenizer: byte-level BPE. A hand-written GPT-2 style pre-splitter cuts
// text into chunks; training merges the most frequent adjacent pair over the
// unique chunks (weighted by count), updating pair counts incrementally; encoding
// replays the merges by rank inside each chunk, caching repeated chunks.
#include <algorithm>
#include <functional>
#include <optional>
#include <queue>

#include "core/error.h"
#include "train/tokenizer.h"

namespace ember {
namespace {

// One key per ordered pair; comparing keys compares (left, right) lexicographically,
// which is the training tie-break.
uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right);
}
int32_t key_left(uint64_t key) { return static_cast<int32_t>(key >> 32); }
int32_t key_right(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Character classes of the pre-splitter. Bytes >= 0x80 count as letters, so
// UTF-8 words stay whole and invalid UTF-8 is just more bytes.
enum class ByteClass { kLetter, kDigit, kSpace, kOther };

ByteClass class_of(unsigned char c) {
  const bool ascii_letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (c >= 0x80 || ascii_letter) return ByteClass::kLetter;
  if (c >= '0' && c <= '9') return ByteClass::kDigit;
  return is_space(c) ? ByteClass::kSpace : ByteClass::kOther;
}

// Length of the English contraction ('s 't 're ...) starting at text[i], or 0.
size_t contraction_length(std::string_view text, size_t i) {
  for (std::string_view c : {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}) {
    if (text.substr(i, c.size()) == c) return c.size();
  }
  return 0;
}

// Length of the chunk that starts at text[i].
size_t chunk_length(std::string_view text, size_t i) {
  const size_t n = text.size();
  const auto cls = [&](size_t k) { return class_of(static_cast<unsigned char>(text[k])); };
  if (const size_t len = contraction_length(text, i); len > 0) return len;
  // A single space joins the word that follows it: " the", " 42", " --".
  size_t body = i;
  if (text[i] == ' ' && i + 1 < n && cls(i + 1) != ByteClass::kSpace) body = i + 1;
  const ByteClass c = cls(body);
  size_t end = body + 1;
  while (end < n && cls(end) == c) ++end;
  // A whitespace run leaves its last space to the word after it, as GPT-2 does.
  if (c == ByteClass::kSpace && end < n && end - i > 1 && text[end - 1] == ' ') --end;
  return end - i;
}

// Replaces each (a, b) in ids by z, left to right without overlap ("aaa" -> "Za"):
// the order encode_chunk() follows too, so encoding the training text
// reproduces the training segmentation.
void merge_in_place(std::vector<int32_t>& ids, int32_t a, int32_t b, int32_t z) {
  size_t out = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i + 1 < ids.size() && ids[i] == a && ids[i + 1] == b) {
      ids[out++] = z;
      ++i;
    } else {
      ids[out++] = ids[i];
    }
  }
  ids.resize(out);
}

struct HeapEntry {
  int64_t count;
  uint64_t pair;
  // Max-heap on count; on equal counts the smaller pair comes out first.
  bool operator<(const HeapEntry& o) const { return count != o.count ? count < o.count : pair > o.pair; }
};

// The training state: every distinct chunk as a sequence of ids with its count,
// the total count of every adjacent pair, and which chunks hold each pair.
// Merging a pair only rescans the chunks that hold it.
class BpeTrainer {
 public:
  explicit BpeTrainer(std::string_view text) {
    std::unordered_map<std::string_view, int64_t> chunk_counts;
    // Counted as split, without a list of every chunk (16 bytes each, a few per word).
    for (size_t i = 0, len = 0; i < text.size(); i += len) ++chunk_counts[text.substr(i, len = chunk_length(text, i))];
    for (const auto& [chunk, count] : chunk_counts) {
      words_.emplace_back(chunk.begin(), chunk.end());
      for (int32_t& id : words_.back()) id = static_cast<unsigned char>(id);
      counts_.push_back(count);
    }
    for (size_t w = 0; w < words_.size(); ++w) add_pairs(w, kAllPairs);
    new_pairs_.clear();
    for (const auto& [pair, count] : pair_counts_) heap_.push({count, pair});
  }

  // Returns the most frequent pair, or nothing once no pair occurs twice.
  std::optional<uint64_t> best_pair() {
    while (!heap_.empty()) {
      const HeapEntry top = heap_.top();
      heap_.pop();
      // Entries go stale as counts fall. Counts of existing pairs never rise
      // (every pair a merge creates contains the new id), so a stored count is
      // an upper bound: re-queue a stale entry at its true count and go on.
      const int64_t now = pair_counts_[top.pair];
      if (now == top.count) return now >= 2 ? std::optional(top.pair) : std::nullopt;
      if (now > 0) heap_.push({now, top.pair});
    }
    return std::nullopt;
  }

  void merge(uint64_t pair, int32_t new_id) {
    std::vector<size_t> holders = std::move(where_[pair]);
    where_.erase(pair);
    std::sort(holders.begin(), holders.end());
    holders.erase(std::unique(holders.begin(), holders.end()), holders.end());
    new_pairs_.clear();
    for (const size_t w : holders) {
      remove_pairs(w);
      merge_in_place(words_[w], key_left(pair), key_right(pair), new_id);
      add_pairs(w, new_id);
    }
    std::sort(new_pairs_.begin(), new_pairs_.end());
    new_pairs_.erase(std::unique(new_pairs_.begin(), new_pairs_.end()), new_pairs_.end());
    for (const uint64_t p : new_pairs_) heap_.push({pair_counts_[p], p});
  }

 private:
  static constexpr int32_t kAllPairs = -1;

  // Counts every pair of word w; indexes (in where_ and new_pairs_) only those
  // containing new_id, since older pairs are already indexed.
  void add_pairs(size_t w, int32_t new_id) {
    const std::vector<int32_t>& ids = words_[w];
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      const uint64_t p = pair_key(ids[i], ids[i + 1]);
      pair_counts_[p] += counts_[w];
      if (new_id == kAllPairs || ids[i] == new_id || ids[i + 1] == new_id) {
        where_[p].push_back(w);
        new_pairs_.push_back(p);
      }
    }
  }
  void remove_pairs(size_t w) {
    const std::vector<int32_t>& ids = words_[w];
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      pair_counts_[pair_key(ids[i], ids[i + 1])] -= counts_[w];
    }
  }

  std::vector<std::vector<int32_t>> words_;
  std::vector<int64_t> counts_;
  std::unordered_map<uint64_t, int64_t> pair_counts_;
  // pair -> chunks holding it; may list a chunk twice, or one that lost the pair.
  std::unordered_map<uint64_t, std::vector<size_t>> where_;
  std::vector<uint64_t> new_pairs_;
  std::priority_queue<HeapEntry> heap_;
};

}  // namespace

std::vector<std::string_view> BpeTokenizer::split_chunks(std::string_view text) {
  std::vector<std::string_view> chunks;
  for (size_t i = 0; i < text.size();) {
    const size_t len = chunk_length(text, i);
    chunks.push_back(text.substr(i, len));
    i += len;
  }
  return chunks;
}

BpeTokenizer BpeTokenizer::train(std::string_view text, int32_t vocab_size) {
  EMBER_CHECK(vocab_size >= 256 && vocab_size <= kMaxVocabSize,
              "bpe tokenizer: vocab_size {} is outside [256, {}] (ids 0..255 are the raw "
              "bytes, merges come after)",
              vocab_size, kMaxVocabSize);
  BpeTrainer trainer(text);
  std::vector<BpeMerge> merges;
  for (int32_t id = 256; id < vocab_size; ++id) {
    const std::optional<uint64_t> pair = trainer.best_pair();
    if (!pair) break;
    merges.push_back({key_left(*pair), key_right(*pair)});
    trainer.merge(*pair, id);
  }
  return BpeTokenizer(std::move(merges));
}

BpeTokenizer::BpeTokenizer(std::vector<BpeMerge> merges) : merges_(std::move(merges)) {
  EMBER_CHECK(merges_.size() <= static_cast<size_t>(kMaxVocabSize - 256),
              "bpe tokenizer: {} merges give more than the maximum vocab size {}", merges_.size(), kMaxVocabSize);
  bytes_of_id_.reserve(256 + merges_.size());
  for (int b = 0; b < 256; ++b) bytes_of_id_.emplace_back(1, static_cast<char>(b));
  for (size_t r = 0; r < merges_.size(); ++r) {
    const auto [left, right] = merges_[r];
    const int32_t next_id = static_cast<int32_t>(256 + r);
    EMBER_CHECK(left >= 0 && left < next_id && right >= 0 && right < next_id,
                "bpe tokenizer: merge {} is ({}, {}), but it may only use ids below {} "
                "(the bytes and earlier merges)",
                r, left, right, next_id);
    const auto [it, fresh] = rank_of_pair_.emplace(pair_key(left, right), next_id - 256);
    EMBER_CHECK(fresh, "bpe tokenizer: merge {} repeats merge {}: ({}, {})", r, it->second, left, right);
    bytes_of_id_.push_back(bytes_of_id_[left] + bytes_of_id_[right]);
  }
}

// Applies merges in rank order: all occurrences of merge r (left to right) before
// any of r + 1. That is what training did, because merging only creates pairs of
// higher rank (they contain the new id). A min-heap of (rank, position) over a
// linked list of tokens keeps this O(n log n), so a long chunk (a megabyte with
// no spaces) cannot go quadratic.
std::vector<int32_t> BpeTokenizer::encode_chunk(std::string_view chunk) const {
  const size_t n = chunk.size();
  std::vector<int32_t> ids(n);
  std::vector<size_t> prev(n), next(n);  // linked list of live tokens; n = none
  for (size_t i = 0; i < n; ++i) {
    ids[i] = static_cast<unsigned char>(chunk[i]);
    prev[i] = i == 0 ? n : i - 1;
    next[i] = i + 1;
  }
  using Candidate = std::pair<int32_t, size_t>;  // (rank, left position)
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  const auto offer = [&](size_t pos) {
    if (pos >= n || next[pos] >= n) return;
    const auto it = rank_of_pair_.find(pair_key(ids[pos], ids[next[pos]]));
    if (it != rank_of_pair_.end()) heap.emplace(it->second, pos);
  };
  for (size_t i = 0; i + 1 < n; ++i) offer(i);
  while (!heap.empty()) {
    const auto [rank, pos] = heap.top();
    heap.pop();
    const BpeMerge& m = merges_[rank];
    // Skip entries made stale by an earlier merge (position eaten, or ids changed).
    if (ids[pos] != m.left || next[pos] >= n || ids[next[pos]] != m.right) continue;
    const size_t gone = next[pos];
    ids[pos] = 256 + rank;
    ids[gone] = -1;
    next[pos] = next[gone];
    if (next[pos] < n) prev[next[pos]] = pos;
    offer(prev[pos]);
    offer(pos);
  }
  std::vector<int32_t> out;
  for (size_t i = 0; i < n; i = next[i]) out.push_back(ids[i]);
  return out;
}

// chunk_length(text, i) reads text[i] up to one byte past the chunk's end and
// stops a run at a byte of another class; cut short by the end of `text`, a
// chunk could come out longer or shorter than in the whole text. A chunk with
// two bytes after it in `text` was cut as the whole text cuts it, and the next
// chunk starts there (the splitter never looks back).
size_t BpeTokenizer::encode_prefix(std::string_view text, bool last, int64_t, std::vector<int32_t>& ids) const {
  // Natural text repeats a small set of chunks ("the", " and", "\n"), so each
  // distinct chunk is merged once per call. Local, so encode stays thread-safe.
  std::unordered_map<std::string_view, std::vector<int32_t>> cache;
  ids.reserve(ids.size() + text.size() / 2);
  size_t i = 0;
  while (i < text.size()) {
    const size_t len = chunk_length(text, i);
    if (!last && i + len + 2 > text.size()) break;
    const std::string_view chunk = text.substr(i, len);
    auto it = cache.find(chunk);
    if (it == cache.end()) it = cache.emplace(chunk, encode_chunk(chunk)).first;
    ids.insert(ids.end(), it->second.begin(), it->second.end());
    i += len;
  }
  return i;
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    EMBER_CHECK(id >= 0 && id < vocab_size(), "bpe tokenizer: id {} at position {} is out of range [0, {})", id, i,
                vocab_size());
    out += bytes_of_id_[id];
  }
  return out;
}

int32_t BpeTokenizer::vocab_size() const { return static_cast<int32_t>(bytes_of_id_.size()); }

std::string BpeTokenizer::kind() const { return "bpe"; }

nlohmann::json BpeTokenizer::to_json() const {
  nlohmann::json merges = nlohmann::json::array();
  for (const auto& m : merges_) merges.push_back({m.left, m.right});
  return {{"kind", "bpe"}, {"merges", std::move(merges)}};
}

BpeTokenizer BpeTokenizer::from_json(const nlohmann::json& j) {
  const auto it = j.find("merges");
  EMBER_CHECK(it != j.end() && it->is_array(),
              "bpe tokenizer json: field \"merges\" must be an array of [left, right] id "
              "pairs");
  std::vector<BpeMerge> merges;
  merges.reserve(it->size());
  for (size_t r = 0; r < it->size(); ++r) {
    const nlohmann::json& m = (*it)[r];
    const bool ok = m.is_array() && m.size() == 2 && m[0].is_number_integer() && m[1].is_number_integer();
    EMBER_CHECK(ok,
                "bpe tokenizer json: merges[{}] is {}, expected a pair of integer "
                "ids",
                r, m.dump());
    const int64_t left = m[0].get<int64_t>(), right = m[1].get<int64_t>();
    EMBER_CHECK(left >= 0 && right >= 0 && left < kMaxVocabSize && right < kMaxVocabSize,
                "bpe tokenizer json: merges[{}] is {}, ids must be in [0, {})", r, m.dump(), kMaxVocabSize);
    merges.push_back({static_cast<int32_t>(left), static_cast<int32_t>(right)});
  }
  return BpeTokenizer(std::move(merges));
}

}  // namespace ember
