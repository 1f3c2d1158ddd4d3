// The basic layers: Linear, Embedding, LayerNorm, Dropout and the GELU MLP.
// Layouts and init follow PyTorch and GPT-2 (nanoGPT): Linear weight [out, in],
// weights drawn from N(0, 0.02), biases zero, LayerNorm weight 1 and bias 0.
#pragma once

#include "core/ops.h"
#include "nn/module.h"

namespace ember {

constexpr float kInitStd = 0.02f;  // GPT-2's init for Linear and Embedding weights

class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias, Generator& gen, float init_std = kInitStd);
  Tensor forward(const Tensor& x) const { return linear(x, weight, bias); }  // [..., in] -> [..., out]
  Tensor weight;                                                             // [out, in]
  Tensor bias;                                                               // [out], or undefined
};

class Embedding : public Module {
 public:
  Embedding(int64_t num, int64_t dim, Generator& gen, float init_std = kInitStd);
  Tensor forward(const IntTensor& ids) const { return embedding(weight, ids); }  // [...] -> [..., dim]
  Tensor weight;                                                                 // [num, dim]
};

class LayerNorm : public Module {
 public:
  LayerNorm(int64_t dim, bool bias, float eps = 1e-5f);
  Tensor forward(const Tensor& x) const { return layer_norm(x, weight, bias, eps); }
  Tensor weight, bias;  // [dim]; bias undefined when disabled
  float eps;
};

// Dropout that follows the module's train()/eval() mode. Its masks come
// from `generator` (the default generator when null); a GPT points all of
// its Dropouts at its own dropout generator.
class Dropout : public Module {
 public:
  explicit Dropout(float p);
  Tensor forward(const Tensor& x) const { return dropout(x, p, is_training(), generator); }
  float p;
  Generator* generator = nullptr;
};

// x -> c_proj(gelu(c_fc(x))): the transformer's feed-forward, 4x wide, exact GELU.
class MLP : public Module {
 public:
  MLP(int64_t n_embd, bool bias, float dropout_p, float proj_init_std, Generator& gen);
  Tensor forward(const Tensor& x) const;  // [B,T,C] -> [B,T,C]
  std::shared_ptr<Linear> c_fc, c_proj;
  std::shared_ptr<Dropout> drop;
};

}  // namespace ember
