// Text data for next-token training: read a file, split its tokens 90/10 into
// train and val, and draw random windows of block_size + 1 tokens as inputs
// x [B, T] and targets y [B, T] (y is x shifted left by one). Large texts are
// tokenized by streaming into a cached token file (train/token_cache.h).
#pragma once

#include <string>
#include <vector>

#include "core/generator.h"
#include "core/tensor.h"
#include "train/token_array.h"

namespace ember {

// The whole file as bytes; clear Error when missing, unreadable, empty, or not a
// regular file (a directory, a device such as /dev/zero, a pipe). For small
// files: training data streams through train/token_cache.h instead.
std::string read_text_file(const std::string& path);
// The same checks without reading: Error unless `path` is a readable, non-empty regular file.
void check_text_file(const std::string& path);

struct TokenSplit {
  TokenArray train, val;  // slices of one token array
};
// The first train_fraction of the tokens train, the rest validate (nanoGPT's
// split). The two share the tokens' storage.
TokenSplit split_tokens(const TokenArray& tokens, double train_fraction = 0.9);
// How many of n tokens train: floor(n * train_fraction), as split_tokens cuts.
int64_t train_token_count(int64_t n, double train_fraction = 0.9);

struct Batch {
  IntTensor x, y;  // [B, T] each
};

// B windows starting at uniform random offsets (drawn from gen in order, so a
// seed reproduces the batches). Error when data has fewer than T + 1 tokens.
Batch sample_batch(const TokenArray& data, int64_t B, int64_t T, Generator& gen);
// The windows of T + 1 tokens starting at `starts`: x [B, T] and y = x shifted
// by one. Error when a window does not fit in data.
Batch batch_at(const TokenArray& data, const std::vector<int64_t>& starts, int64_t T);

// Every non-overlapping window of T + 1 tokens, in order, B at a time (the
// last batch may be smaller): the deterministic evaluation set.
std::vector<Batch> sequential_batches(const TokenArray& data, int64_t B, int64_t T);

}  // namespace ember
