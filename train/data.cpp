// Reading text files, the train/val split and batch sampling.
#include "train/data.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace ember {

void check_text_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  EMBER_CHECK(fs::exists(path, ec), "data: file '{}' does not exist", path);
  EMBER_CHECK(!fs::is_directory(path, ec), "data: '{}' is a directory, not a text file", path);
  // A device or a pipe (/dev/zero, /dev/stdin) has no end to read up to.
  EMBER_CHECK(fs::is_regular_file(path, ec), "data: '{}' is not a regular file (a device, pipe or socket)", path);
  EMBER_CHECK(std::ifstream(path, std::ios::binary).good(), "data: cannot open '{}' for reading", path);
  EMBER_CHECK(fs::file_size(path, ec) > 0 || ec, "data: file '{}' is empty", path);
}

std::string read_text_file(const std::string& path) {
  check_text_file(path);
  std::ifstream in(path, std::ios::binary);
  EMBER_CHECK(in.good(), "data: cannot open '{}' for reading", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  EMBER_CHECK(!in.bad(), "data: error while reading '{}'", path);
  std::string text = ss.str();
  EMBER_CHECK(!text.empty(), "data: file '{}' is empty", path);
  return text;
}

int64_t train_token_count(int64_t n, double train_fraction) {
  EMBER_CHECK(train_fraction > 0.0 && train_fraction < 1.0, "data: train fraction must be in (0, 1), got {}",
              train_fraction);
  return static_cast<int64_t>(static_cast<double>(n) * train_fraction);
}

TokenSplit split_tokens(const TokenArray& tokens, double train_fraction) {
  const int64_t n = train_token_count(tokens.size(), train_fraction);
  return {tokens.slice(0, n), tokens.slice(n, tokens.size() - n)};
}

Batch sample_batch(const TokenArray& data, int64_t B, int64_t T, Generator& gen) {
  const int64_t n = data.size();
  EMBER_CHECK(B > 0 && T > 0, "data: batch size {} and block size {} must be positive", B, T);
  EMBER_CHECK(n >= T + 1, "data: {} tokens are too few for one window of block_size + 1 = {} tokens", n, T + 1);
  std::vector<int64_t> starts(static_cast<size_t>(B));
  for (int64_t& s : starts) s = gen.randint(0, n - T);
  return batch_at(data, starts, T);
}

Batch batch_at(const TokenArray& data, const std::vector<int64_t>& starts, int64_t T) {
  const int64_t n = data.size(), B = static_cast<int64_t>(starts.size());
  std::vector<int64_t> x(static_cast<size_t>(B * T)), y(x.size());
  for (int64_t b = 0; b < B; ++b) {
    const int64_t start = starts[static_cast<size_t>(b)];
    EMBER_CHECK(start >= 0 && start + T < n, "data: a window of {} tokens at {} does not fit in {} tokens", T + 1,
                start, n);
    data.copy(start, T, x.data() + b * T);
    data.copy(start + 1, T, y.data() + b * T);
  }
  return {IntTensor({B, T}, std::move(x)), IntTensor({B, T}, std::move(y))};
}

std::vector<Batch> sequential_batches(const TokenArray& data, int64_t B, int64_t T) {
  const int64_t n = data.size();
  EMBER_CHECK(B > 0 && T > 0, "data: batch size {} and block size {} must be positive", B, T);
  EMBER_CHECK(n >= T + 1, "data: {} tokens are too few for one window of block_size + 1 = {} tokens", n, T + 1);
  const int64_t windows = (n - 1) / T;  // window w covers tokens w*T .. w*T + T (targets shifted by one)
  std::vector<Batch> out;
  for (int64_t w0 = 0; w0 < windows; w0 += B) {
    const int64_t bs = std::min(B, windows - w0);
    std::vector<int64_t> x(static_cast<size_t>(bs * T)), y(x.size());
    for (int64_t b = 0; b < bs; ++b) {
      data.copy((w0 + b) * T, T, x.data() + b * T);
      data.copy((w0 + b) * T + 1, T, y.data() + b * T);
    }
    out.push_back({IntTensor({bs, T}, std::move(x)), IntTensor({bs, T}, std::move(y))});
  }
  return out;
}

}  // namespace ember
