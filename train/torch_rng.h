// PyTorch's CPU random stream, draw for draw, so ember can start from the
// same weights as a PyTorch / nanoGPT run: torch.manual_seed(s) seeds one
// mt19937, and randint, uniform_ and normal_ turn its 32-bit draws into values
// with fixed rules (taken from PyTorch 1.13's CPU kernels and checked against
// it in tests/train/test_torch_rng.cpp, golden values from generate.py).
#pragma once

#include <cstdint>
#include <random>
#include <string>

#include "nn/gpt.h"

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

// Sets every parameter of `model` exactly as PyTorch builds nanoGPT's GPT
// after torch.manual_seed: first the draws nn.Embedding and nn.Linear make
// when constructed (values then overwritten), then normal(0, 0.02) on every
// Linear and Embedding weight in module order (a tied wte/lm_head is drawn
// twice, the lm_head draw stays), zero biases, LayerNorm 1 / 0, and last
// normal(0, 0.02 / sqrt(2 n_layer)) on each c_proj weight. Leaves `gen` where
// PyTorch's generator would be after the model's constructor.
void init_like_nanogpt(GPT& model, TorchGenerator& gen);

}  // namespace ember
