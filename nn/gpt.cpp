// Block, Transformer and GPT: construction (GPT-2 init) and forward.
#include "nn/gpt.h"

#include <cmath>

namespace ember {

void GPTConfig::validate() const {
  EMBER_CHECK(vocab_size > 0 && block_size > 0 && n_layer > 0 && n_head > 0 && n_embd > 0,
              "GPT config: sizes must be positive (vocab_size {}, block_size {}, n_layer {}, n_head {}, n_embd {})",
              vocab_size, block_size, n_layer, n_head, n_embd);
  EMBER_CHECK(n_embd % n_head == 0, "GPT config: n_embd {} is not divisible by n_head {}", n_embd, n_head);
  EMBER_CHECK(pos != PosKind::Rope || (n_embd / n_head) % 2 == 0,
              "GPT config: rope needs an even head size, but n_embd / n_head = {}", n_embd / n_head);
  EMBER_CHECK(dropout >= 0.0f && dropout < 1.0f, "GPT config: dropout must be in [0, 1), got {}", dropout);
}

namespace {

// GPT-2 scales the init of each residual projection by 1/sqrt(2 n_layer), so
// the residual stream's variance does not grow with depth.
float residual_init_std(const GPTConfig& cfg) { return kInitStd / std::sqrt(2.0f * static_cast<float>(cfg.n_layer)); }

}  // namespace

Block::Block(const GPTConfig& cfg, Generator& gen) {
  ln_1 = register_module("ln_1", std::make_shared<LayerNorm>(cfg.n_embd, cfg.bias));
  const AttentionConfig ac{cfg.n_embd, cfg.n_head, cfg.bias, cfg.dropout, cfg.pos, residual_init_std(cfg)};
  attn = register_module("attn", std::make_shared<CausalSelfAttention>(ac, gen));
  ln_2 = register_module("ln_2", std::make_shared<LayerNorm>(cfg.n_embd, cfg.bias));
  mlp = register_module("mlp", std::make_shared<MLP>(cfg.n_embd, cfg.bias, cfg.dropout, residual_init_std(cfg), gen));
}

Tensor Block::forward(const Tensor& x_in) const {
  const Tensor x = add(x_in, attn->forward(ln_1->forward(x_in)));
  return add(x, mlp->forward(ln_2->forward(x)));
}

Transformer::Transformer(const GPTConfig& cfg, Generator& gen) {
  wte = register_module("wte", std::make_shared<Embedding>(cfg.vocab_size, cfg.n_embd, gen));
  if (cfg.pos == PosKind::Learned)
    wpe = register_module("wpe", std::make_shared<PositionalEmbedding>(cfg.block_size, cfg.n_embd, gen));
  if (cfg.pos == PosKind::Sinusoidal) pe = register_module("pe", std::make_shared<SinusoidalEncoding>(cfg.n_embd));
  drop = register_module("drop", std::make_shared<Dropout>(cfg.dropout));
  h = register_module("h", std::make_shared<ModuleList<Block>>());
  for (int64_t i = 0; i < cfg.n_layer; ++i) h->push_back(std::make_shared<Block>(cfg, gen));
  ln_f = register_module("ln_f", std::make_shared<LayerNorm>(cfg.n_embd, cfg.bias));
}

GPT::GPT(const GPTConfig& cfg, uint64_t seed) : cfg_(cfg), dropout_gen_(seed + 1) {
  cfg.validate();
  Generator gen(seed);
  transformer = register_module("transformer", std::make_shared<Transformer>(cfg, gen));
  lm_head = register_module("lm_head", std::make_shared<Linear>(cfg.n_embd, cfg.vocab_size, false, gen));
  if (cfg.tie_weights) {
    // One tensor under two names: wte's rows double as the output projection.
    lm_head->weight = transformer->wte->weight;
    lm_head->replace_parameter("weight", transformer->wte->weight);
  }
  name_parameters();
  for (auto& [name, m] : named_modules())
    if (auto* d = dynamic_cast<Dropout*>(m)) d->generator = &dropout_gen_;
}

std::unique_ptr<GPT> GPT::replica() const {
  auto r = std::make_unique<GPT>(cfg_);
  r->share_parameters_with(*this);
  r->train(is_training());
  return r;
}

Tensor GPT::input_embeddings(const IntTensor& idx) const {
  EMBER_CHECK(idx.dim() == 2, "GPT: token ids must be [B, T], got {}", shape_str(idx.shape));
  const int64_t T = idx.size(1);
  EMBER_CHECK(T >= 1 && T <= cfg_.block_size, "GPT: sequence length {} exceeds block_size {}", T, cfg_.block_size);
  const Tensor tok = transformer->wte->forward(idx);  // [B,T,C]
  if (!transformer->wpe && !transformer->pe) return tok;
  const Tensor pos = transformer->wpe ? transformer->wpe->forward(T) : transformer->pe->forward(T);  // [T,C]
  return add(tok, pos);  // [B,T,C] + [T,C]: pos is broadcast over B
}

Tensor GPT::forward(const IntTensor& idx) const { return forward_from_embeddings(input_embeddings(idx)); }

Tensor GPT::forward_from_embeddings(const Tensor& embeddings) const {
  Tensor x = transformer->drop->forward(embeddings);
  for (size_t i = 0; i < transformer->h->size(); ++i) x = (*transformer->h)[i].forward(x);
  return lm_head->forward(transformer->ln_f->forward(x));
}

Tensor GPT::loss(const Tensor& logits, const IntTensor& targets) const { return cross_entropy(logits, targets, -1); }

}  // namespace ember
