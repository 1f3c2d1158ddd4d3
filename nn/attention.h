// CausalSelfAttention: nanoGPT's attention block with a fused qkv projection
// (c_attn), H heads and an output projection (c_proj). RoPE rotates q and k
// after the projection; ALiBi adds per-head distance biases to the scores.
#pragma once

#include "nn/layers.h"
#include "nn/positional.h"

namespace ember {

struct AttentionConfig {
  int64_t n_embd, n_head;
  bool bias;
  float dropout;
  PosKind pos;
  float proj_init_std;
};

class CausalSelfAttention : public Module {
 public:
  CausalSelfAttention(const AttentionConfig& cfg, Generator& gen);
  // x [B,T,C] -> [B,T,C]. Uses the fused causal_attention op, except in
  // training with dropout > 0, where the probabilities need a dropout mask
  // and the op-by-op path (attention_unfused) runs instead.
  Tensor forward(const Tensor& x) const { return attend(project_qkv(x)); }
  // forward's two halves, for KVCache, which keeps the keys and values:
  // the projection with RoPE applied, x [B,T,C] -> qkv [B,T,3C] (q, k, v side
  // by side), and attention plus the output projection, qkv -> [B,T,C].
  Tensor project_qkv(const Tensor& x) const;
  Tensor attend(const Tensor& qkv) const;
  std::shared_ptr<Linear> c_attn, c_proj;
  std::shared_ptr<Dropout> attn_drop, resid_drop;

 private:
  int64_t n_head_;
  PosKind pos_;
  Tensor alibi_slopes_;  // [H] for ALiBi, else undefined
};

// Attention written op by op (matmul, masked_fill, softmax, dropout, matmul),
// as the PyTorch reference does: qkv [B,T,3C] -> y [B,T,C]. The fused op must
// agree with it; tests check that.
Tensor attention_unfused(const Tensor& qkv, int64_t n_head, const Tensor& alibi_slopes, float dropout_p, bool training,
                         Generator* gen = nullptr);

}  // namespace ember
