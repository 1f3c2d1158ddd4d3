// KVCache: a GPT run one token at a time for sampling. Each layer's keys and
// values (after RoPE) stay in a preallocated [n_layer, H, block_size, D]
// buffer, so a new token costs one row of work per layer instead of a forward
// over the whole context. prefill() runs a window through the batched ops
// and fills the cache; step() appends one token with the allocation-free
// kernels of core/decode.h. Inference only: the model must be in eval mode.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "nn/gpt.h"

namespace ember {

class KVCache {
 public:
  explicit KVCache(const GPT& model);  // the model must outlive the cache

  // Forgets the cache and runs `tokens` (1 to block_size of them) at
  // positions 0..n-1, as GPT::forward does (the same ops in the same order,
  // so the logits are bitwise the forward's last row). Returns the logits
  // [V] of the last token, valid until the next call.
  std::span<const float> prefill(std::span<const int32_t> tokens);
  // Runs one token at position length() over the cached keys and values and
  // appends its own; length() must be below block_size. Returns its logits [V].
  std::span<const float> step(int32_t token);

  int64_t length() const { return len_; }  // positions cached
  int64_t capacity() const { return cfg_.block_size; }

 private:
  void check_token(int32_t token) const;
  void store_kv(int64_t layer, const float* qkv, int64_t t);  // qkv: one row [3C]
  void embed(int32_t token, int64_t pos);                     // x_ = wte[token] + positional row
  void block_step(int64_t layer, int64_t pos);

  const GPT& model_;
  GPTConfig cfg_;
  int64_t H_, D_;
  std::vector<float> k_, v_;                // [L, H, block_size, D]
  std::vector<float> x_, h_, qkv_, y_, u_;  // one token's activations
  std::vector<float> logits_, scratch_;     // [V]; attention scores [H, block_size]
  std::vector<float> slopes_;               // ALiBi [H], else empty
  std::vector<float> rope_cos_, rope_sin_;  // [block_size, D/2] for RoPE, else empty
  std::vector<float> sinusoid_;             // [block_size, C] for sinusoidal, else empty
  int64_t len_ = 0;
};

}  // namespace ember
