// The tiny GPT configuration the nn and train tests share: 8 tokens of
// context, 2 heads of size 8, small enough to train or gradcheck in milliseconds.
#pragma once

#include "nn/gpt.h"

namespace ember::testing {

inline GPTConfig tiny_gpt(int64_t vocab_size = 13, int64_t n_layer = 2) {
  GPTConfig c;
  c.vocab_size = vocab_size;
  c.block_size = 8;
  c.n_layer = n_layer;
  c.n_head = 2;
  c.n_embd = 16;
  return c;
}

}  // namespace ember::testing
