// Optimizers with PyTorch's exact update formulas (torch.optim 1.13, the
// single-tensor path), so ember's and PyTorch's runs can be compared step by
// step: SGD (momentum, weight decay), Adam (L2 decay added to the gradient)
// and AdamW (decoupled decay). Parameter groups carry their own weight decay,
// so 2-D weights decay and biases and LayerNorm parameters do not (nanoGPT).
#pragma once

#include <vector>

#include "core/tensor.h"
#include "nn/module.h"

namespace ember {

struct ParamGroup {
  std::vector<Tensor> params;
  double weight_decay = 0.0;
};

// nanoGPT's grouping: parameters with 2 or more dims decay, the rest do not.
std::vector<ParamGroup> decay_groups(const std::vector<NamedTensor>& params, double weight_decay);

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void step() = 0;  // uses each parameter's .grad; parameters without one are skipped
  void zero_grad();         // drops every .grad (set_to_none, PyTorch's default)
  // Hyperparameters are doubles, as Python floats are in PyTorch; each is
  // rounded to float32 where PyTorch rounds it (when it meets a tensor).
  void set_lr(double lr) { lr_ = lr; }
  double lr() const { return lr_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }

 protected:
  Optimizer(std::vector<ParamGroup> groups, double lr);
  std::vector<ParamGroup> groups_;
  double lr_;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, double lr, double momentum = 0.0);
  void step() override;

 private:
  double momentum_;
  std::vector<Tensor> momentum_buffers_;  // one per parameter, in group order; undefined until used
};

class Adam : public Optimizer {
 public:
  // decoupled = true is AdamW: decay multiplies the weights by (1 - lr wd)
  // instead of adding wd * w to the gradient.
  Adam(std::vector<ParamGroup> groups, double lr, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
       bool decoupled = false);
  void step() override;

  // State, for checkpoints: the step count and both moments per parameter.
  int64_t step_count() const { return step_; }
  std::vector<Tensor>& exp_avg() { return m_; }
  std::vector<Tensor>& exp_avg_sq() { return v_; }
  void set_step_count(int64_t s) { step_ = s; }

 private:
  double beta1_, beta2_, eps_;
  bool decoupled_;
  int64_t step_ = 0;
  std::vector<Tensor> m_, v_;  // one per parameter, in group order
};

// AdamW as nanoGPT configures it.
class AdamW : public Adam {
 public:
  AdamW(std::vector<ParamGroup> groups, double lr, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
      : Adam(std::move(groups), lr, beta1, beta2, eps, true) {}
};

// Scales all gradients so their global L2 norm is at most max_norm (as
// torch.nn.utils.clip_grad_norm_, with its 1e-6 guard) and returns the norm
// before clipping.
float clip_grad_norm(const std::vector<Tensor>& params, float max_norm);
// The global L2 norm of the parameters' gradients (summed in double), as
// clip_grad_norm computes it; NaN or inf when any gradient is.
float grad_norm(const std::vector<Tensor>& params);

// Linear warmup to max_lr over warmup_iters, cosine decay to min_lr at
// decay_iters, then min_lr (nanoGPT's get_lr, with its (it + 1) warmup).
double cosine_lr(int64_t it, double max_lr, double min_lr, int64_t warmup_iters, int64_t decay_iters);

}  // namespace ember
