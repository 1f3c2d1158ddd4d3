// PyTorch's CPU random stream, draw for draw, so ember can start from the
// same weights as a PyTorch / nanoGPT run: torch.manual_seed(s) seeds one
// mt19937, and randint, uniform_ and normal_ turn its 32-bit draws into values
// with fixed rules (taken from PyTorch 1.13's CPU kernels and checked against
// it in tests/train/test_random_stream.cpp, golden values from generate.py).
#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace ember {

class TorchGenerator {
 public:
  // torch.manual_seed(seed), for seeds below 2^32.
  explicit TorchGenerator(uint64_t seed);

  // torch.randint(high, (1,)).item() for 0 < high < 2^32: one draw, modulo high.
  int64_t randint(int64_t high);
  // Tensor.uniform_(from, to) on n floats: one draw each, its low 24 bits
  // scaled to [0, 1).
  void uniform(float* x, int64_t n, float from, float to);
  // Tensor.normal_(mean, std) on n >= 16 contiguous floats: n uniforms, then
  // Box-Muller on each block of 16 (element j pairs with j + 8); when n is not
  // a multiple of 16 the last 16 are drawn again and redone. (PyTorch takes
  // another path below 16 elements; ember never needs it.)
  void normal(float* x, int64_t n, float mean, float std);

  // The whole engine state as text (std::mt19937's stream format), for checkpoints.
  std::string state() const;
  void set_state(const std::string& s);

 private:
  std::mt19937 engine_;
};

}  // namespace ember
