// The tokenized text a run trains on, cached on disk (nanoGPT's train.bin /
// val.bin idea). A run directory keeps
//   tokens/tokens.bin      every token id of the text, in order, each in the
//                          smallest unsigned type that holds the vocabulary
//                          (raw little-endian: np.memmap(path, dtype=...))
//   tokens/manifest.json   the text's absolute path, size and modification
//                          time, the tokenizer (its recipe and its JSON),
//                          the dtype, the token count, the train/val split
//                          point and the CRC-32 of tokens.bin
// The ids are memory-mapped, never read into memory whole. The cache is
// reused when the text (path, size, modification time) and the tokenizer are
// unchanged, and rebuilt otherwise, or when tokens.bin is missing, truncated
// or fails its checksum. Building streams through the text with a bounded
// buffer; both files are written under temporary names and renamed into place.
#pragma once

#include <memory>
#include <string>

#include "train/data.h"
#include "train/text_stream.h"
#include "train/tokenizer.h"

namespace ember {

struct TokenDataOptions {
  std::string text;         // text file; "" = the built-in corpus (tokenized in memory, never cached)
  std::string cache_dir;    // where the cache lives; "" = none (the ids are kept in memory)
  bool write_cache = true;  // false: use a valid cache but never write one (gpt eval)
  StreamOptions stream;     // progress output and buffer size
};

struct TokenData {
  TokenSplit split;
  std::unique_ptr<Tokenizer> tokenizer;  // trained, or read from the cache; null when one was given
  bool cache_reused = false;             // the ids came from a valid cache, without reading the text
  std::string rebuilt_because;           // why an existing cache was not used ("" when none was there)
};

// The text's tokens split 90/10 (nanoGPT's split, by tokens). With `given`
// (a resumed run, gpt eval), ids are that tokenizer's; else a tokenizer is
// made by `recipe` (or taken from a cache built by the same recipe). Prints
// what it does unless o.stream.quiet.
TokenData load_token_data(const TokenDataOptions& o, const TokenizerRecipe& recipe, const Tokenizer* given);

// The cache directory of a run directory: <run_dir>/tokens.
std::string token_cache_dir(const std::string& run_dir);
// The cache of the run a checkpoint path belongs to (the run directory or
// one of its ckpt-NNNNNN directories).
std::string token_cache_dir_of_checkpoint(const std::string& ckpt);

}  // namespace ember
