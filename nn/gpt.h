// GPT: nanoGPT's model. Token embedding wte plus a positional encoding, a
// stack of pre-LayerNorm blocks, a final LayerNorm and the lm_head, with
// optional weight tying. Parameter names are nanoGPT's state-dict keys, so a
// checkpoint maps one to one onto the PyTorch model (tests/reference/model.py).
#pragma once

#include "nn/attention.h"
#include "nn/layers.h"
#include "nn/positional.h"

namespace ember {

struct GPTConfig {
  int64_t vocab_size = 65;
  int64_t block_size = 64;  // context length
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t n_embd = 128;
  float dropout = 0.0f;
  bool bias = false;        // biases in Linear and LayerNorm layers
  bool tie_weights = true;  // lm_head.weight is transformer.wte.weight
  PosKind pos = PosKind::Learned;
  void validate() const;  // clear Error on inconsistent sizes
};

// x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))
class Block : public Module {
 public:
  Block(const GPTConfig& cfg, Generator& gen);
  Tensor forward(const Tensor& x) const;
  std::shared_ptr<LayerNorm> ln_1, ln_2;
  std::shared_ptr<CausalSelfAttention> attn;
  std::shared_ptr<MLP> mlp;
};

// The "transformer" container of nanoGPT: wte, wpe, drop, h, ln_f.
class Transformer : public Module {
 public:
  Transformer(const GPTConfig& cfg, Generator& gen);
  std::shared_ptr<Embedding> wte;
  std::shared_ptr<PositionalEmbedding> wpe;  // pos == learned only
  std::shared_ptr<SinusoidalEncoding> pe;    // pos == sinusoidal only
  std::shared_ptr<Dropout> drop;
  std::shared_ptr<ModuleList<Block>> h;
  std::shared_ptr<LayerNorm> ln_f;
};

class GPT : public Module {
 public:
  explicit GPT(const GPTConfig& cfg, uint64_t seed = 1337);
  const GPTConfig& config() const { return cfg_; }

  // Token embeddings plus the additive positional encoding, if any: idx [B,T] -> [B,T,C].
  Tensor input_embeddings(const IntTensor& idx) const;
  Tensor forward(const IntTensor& idx) const;  // idx [B,T] -> logits [B,T,V]
  // The rest of forward after the input layer: x [B,T,C] -> logits [B,T,V], so
  // forward(idx) is forward_from_embeddings(input_embeddings(idx)). Lets a
  // caller keep x (x.retain_grad()) to see the gradient that reaches the input layer.
  Tensor forward_from_embeddings(const Tensor& x) const;
  // Mean next-token cross-entropy; targets equal to -1 are ignored (as nanoGPT).
  Tensor loss(const Tensor& logits, const IntTensor& targets) const;

  // Draws the dropout masks (every Dropout module points at it); part of a
  // checkpoint's trainer state.
  Generator& dropout_generator() const { return dropout_gen_; }
  // A model of the same config whose parameters share this one's storage,
  // each with its own gradients, graphs and dropout generator: what each
  // extra thread of a data-parallel step trains its slice on.
  std::unique_ptr<GPT> replica() const;

  std::shared_ptr<Transformer> transformer;
  std::shared_ptr<Linear> lm_head;

 private:
  GPTConfig cfg_;
  mutable Generator dropout_gen_;
};

}  // namespace ember
