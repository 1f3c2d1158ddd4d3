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

TokenSplit split_tokens(const std::vector<int32_t>& tokens, double train_fraction) {
  EMBER_CHECK(train_fraction > 0.0 && train_fraction < 1.0, "data: train fraction must be in (0, 1), got {}",
              train_fraction);
  const auto n = static_cast<size_t>(static_cast<double>(tokens.size()) * train_fraction);
  return {std::vector<int32_t>(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(n)),
          std::vector<int32_t>(tokens.begin() + static_cast<std::ptrdiff_t>(n), tokens.end())};
}

Batch sample_batch(const std::vector<int32_t>& data, int64_t B, int64_t T, Generator& gen) {
  const auto n = static_cast<int64_t>(data.size());
  EMBER_CHECK(B > 0 && T > 0, "data: batch size {} and block size {} must be positive", B, T);
  EMBER_CHECK(n >= T + 1, "data: {} tokens are too few for one window of block_size + 1 = {} tokens", n, T + 1);
  std::vector<int64_t> starts(static_cast<size_t>(B));
  for (int64_t& s : starts) s = gen.randint(0, n - T);
  return batch_at(data, starts, T);
}

Batch batch_at(const std::vector<int32_t>& data, const std::vector<int64_t>& starts, int64_t T) {
  const auto n = static_cast<int64_t>(data.size()), B = static_cast<int64_t>(starts.size());
  std::vector<int64_t> x(static_cast<size_t>(B * T)), y(x.size());
  for (int64_t b = 0; b < B; ++b) {
    const int64_t start = starts[static_cast<size_t>(b)];
    EMBER_CHECK(start >= 0 && start + T < n, "data: a window of {} tokens at {} does not fit in {} tokens", T + 1,
                start, n);
    for (int64_t t = 0; t < T; ++t) {
      x[b * T + t] = data[start + t];
      y[b * T + t] = data[start + t + 1];
    }
  }
  return {IntTensor({B, T}, std::move(x)), IntTensor({B, T}, std::move(y))};
}

std::vector<Batch> sequential_batches(const std::vector<int32_t>& data, int64_t B, int64_t T) {
  const auto n = static_cast<int64_t>(data.size());
  EMBER_CHECK(B > 0 && T > 0, "data: batch size {} and block size {} must be positive", B, T);
  EMBER_CHECK(n >= T + 1, "data: {} tokens are too few for one window of block_size + 1 = {} tokens", n, T + 1);
  const int64_t windows = (n - 1) / T;  // window w covers tokens w*T .. w*T + T (targets shifted by one)
  std::vector<Batch> out;
  for (int64_t w0 = 0; w0 < windows; w0 += B) {
    const int64_t bs = std::min(B, windows - w0);
    std::vector<int64_t> x(static_cast<size_t>(bs * T)), y(x.size());
    for (int64_t b = 0; b < bs; ++b)
      for (int64_t t = 0; t < T; ++t) {
        x[b * T + t] = data[(w0 + b) * T + t];
        y[b * T + t] = data[(w0 + b) * T + t + 1];
      }
    out.push_back({IntTensor({bs, T}, std::move(x)), IntTensor({bs, T}, std::move(y))});
  }
  return out;
}

}  // namespace ember
