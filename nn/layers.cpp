// Linear, Embedding, LayerNorm, Dropout and MLP.
#include "nn/layers.h"

namespace ember {

Linear::Linear(int64_t in, int64_t out, bool has_bias, Generator& gen, float init_std) {
  EMBER_CHECK(in > 0 && out > 0, "Linear: sizes must be positive, got in {} out {}", in, out);
  weight = register_parameter("weight", normal({out, in}, 0.0f, init_std, &gen));
  if (has_bias) bias = register_parameter("bias", zeros({out}));
}

Embedding::Embedding(int64_t num, int64_t dim, Generator& gen, float init_std) {
  EMBER_CHECK(num > 0 && dim > 0, "Embedding: sizes must be positive, got {} x {}", num, dim);
  weight = register_parameter("weight", normal({num, dim}, 0.0f, init_std, &gen));
}

LayerNorm::LayerNorm(int64_t dim, bool has_bias, float eps_) : eps(eps_) {
  EMBER_CHECK(dim > 0, "LayerNorm: dim must be positive, got {}", dim);
  weight = register_parameter("weight", ones({dim}));
  if (has_bias) bias = register_parameter("bias", zeros({dim}));
}

Dropout::Dropout(float p_) : p(p_) { EMBER_CHECK(p >= 0.0f && p < 1.0f, "Dropout: p must be in [0, 1), got {}", p); }

MLP::MLP(int64_t n_embd, bool bias, float dropout_p, float proj_init_std, Generator& gen) {
  c_fc = register_module("c_fc", std::make_shared<Linear>(n_embd, 4 * n_embd, bias, gen));
  c_proj = register_module("c_proj", std::make_shared<Linear>(4 * n_embd, n_embd, bias, gen, proj_init_std));
  drop = register_module("drop", std::make_shared<Dropout>(dropout_p));
}

Tensor MLP::forward(const Tensor& x) const {
  // c_proj(gelu(h)) fused: gelu's output is recomputed in backward, not kept.
  return drop->forward(gelu_linear(c_fc->forward(x), c_proj->weight, c_proj->bias));
}

}  // namespace ember
