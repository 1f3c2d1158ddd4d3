// Text data for next-token training: read a file, split its tokens 90/10 into
// train and val, and draw random windows of block_size + 1 tokens as inputs
// x [B, T] and targets y [B, T] (y is x shifted left by one).
#pragma once

#include <string>
#include <vector>

#include "core/generator.h"
#include "core/tensor.h"

namespace ember {

// Error unless `path` is an existing regular file (not a directory, a device
// such as /dev/zero, or a pipe).
void check_text_file(const std::string& path);
// The whole file as bytes; clear Error when check_text_file fails, or the
// file is unreadable or empty.
std::string read_text_file(const std::string& path);

struct TokenSplit {
  std::vector<int32_t> train, val;
};
// The first train_fraction of the tokens train, the rest validate (nanoGPT's split).
TokenSplit split_tokens(const std::vector<int32_t>& tokens, double train_fraction = 0.9);

struct Batch {
  IntTensor x, y;  // [B, T] each
};

// B windows starting at uniform random offsets (drawn from gen in order, so a
// seed reproduces the batches). Error when data has fewer than T + 1 tokens.
Batch sample_batch(const std::vector<int32_t>& data, int64_t B, int64_t T, Generator& gen);
// The windows of T + 1 tokens starting at `starts`: x [B, T] and y = x shifted
// by one. Error when a window does not fit in data.
Batch batch_at(const std::vector<int32_t>& data, const std::vector<int64_t>& starts, int64_t T);

// Every non-overlapping window of T + 1 tokens, in order, B at a time (the
// last batch may be smaller): the deterministic evaluation set.
std::vector<Batch> sequential_batches(const std::vector<int32_t>& data, int64_t B, int64_t T);

}  // namespace ember
