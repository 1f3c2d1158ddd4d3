// SGD, Adam/AdamW, gradient clipping and the LR schedule. Scalars PyTorch
// computes in Python floats (bias corrections, step sizes) are computed in
// double here too, so updates agree to float32 rounding.
#include "train/optim.h"

#include <cmath>

#include "core/error.h"
#include "core/parallel.h"

namespace ember {

std::vector<ParamGroup> decay_groups(const std::vector<NamedTensor>& params, double weight_decay) {
  ParamGroup decay{{}, weight_decay}, no_decay{{}, 0.0};
  for (const auto& [name, t] : params) (t.dim() >= 2 ? decay : no_decay).params.push_back(t);
  return {decay, no_decay};
}

Optimizer::Optimizer(std::vector<ParamGroup> groups, double lr) : groups_(std::move(groups)), lr_(lr) {
  EMBER_CHECK(lr >= 0.0, "optimizer: learning rate must be >= 0, got {}", lr);
  for (const ParamGroup& g : groups_)
    for (const Tensor& p : g.params)
      EMBER_CHECK(p.is_leaf() && p.is_contiguous(), "optimizer: parameter '{}' must be a contiguous leaf tensor",
                  p.name());
}

void Optimizer::zero_grad() {
  for (ParamGroup& g : groups_)
    for (Tensor& p : g.params) p.set_grad(Tensor());
}

SGD::SGD(std::vector<ParamGroup> groups, double lr, double momentum)
    : Optimizer(std::move(groups), lr), momentum_(momentum) {
  size_t n = 0;
  for (const ParamGroup& g : groups_) n += g.params.size();
  momentum_buffers_.resize(n);
}

// d = g + wd p;  buf = momentum buf + d (buf = d on the first step);  p -= lr buf
void SGD::step() {
  size_t k = 0;
  for (ParamGroup& group : groups_)
    for (Tensor& p : group.params) {
      Tensor& buf = momentum_buffers_[k++];
      if (!p.grad().defined()) continue;
      float* w = p.data();
      const float* g = p.grad().data();
      const float wd = static_cast<float>(group.weight_decay), lr = static_cast<float>(lr_),
                  mu = static_cast<float>(momentum_);
      const bool first = !buf.defined();
      if (mu != 0.0f && first) buf = empty(p.shape());
      float* b = mu != 0.0f ? buf.data() : nullptr;
      for (int64_t i = 0; i < p.numel(); ++i) {
        float d = wd != 0.0f ? g[i] + wd * w[i] : g[i];
        if (b) d = b[i] = first ? d : mu * b[i] + d;
        w[i] -= lr * d;
      }
    }
}

Adam::Adam(std::vector<ParamGroup> groups, double lr, double beta1, double beta2, double eps, bool decoupled)
    : Optimizer(std::move(groups), lr), beta1_(beta1), beta2_(beta2), eps_(eps), decoupled_(decoupled) {
  EMBER_CHECK(beta1 >= 0.0 && beta1 < 1.0 && beta2 >= 0.0 && beta2 < 1.0, "adam: betas must be in [0, 1), got ({}, {})",
              beta1, beta2);
  for (const ParamGroup& g : groups_)
    for (const Tensor& p : g.params) {
      m_.push_back(zeros(p.shape()));
      v_.push_back(zeros(p.shape()));
    }
}

namespace {

// One parameter's view for an Adam step: its data, gradient, moments and the
// per-group constants.
struct AdamSlot {
  float *w, *m, *v;
  const float* g;
  int64_t start, n;  // the slot's range in the concatenation of all parameters
  float wd, decay;
};

struct AdamConstants {
  float b1, one_minus_b1, b2, one_minus_b2, eps, step_size, bc2_sqrt;
  bool decoupled;
};

// PyTorch's single-tensor Adam(W), step t, on elements [i0, i1) of one slot:
//   AdamW: p *= 1 - lr wd             Adam: g += wd p
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
void adam_update(const AdamSlot& s, const AdamConstants& c, int64_t i0, int64_t i1) {
  float *w = s.w, *m = s.m, *v = s.v;
  const float* g = s.g;
  const float wd = s.wd, decay = s.decay;
  const bool l2 = !c.decoupled && wd != 0.0f, decoupled = c.decoupled;  // locals: the loop must not reload them
  for (int64_t i = i0; i < i1; ++i) {
    const float gi = l2 ? g[i] + wd * w[i] : g[i];
    if (decoupled) w[i] *= decay;
    m[i] = c.b1 * m[i] + c.one_minus_b1 * gi;
    v[i] = c.b2 * v[i] + c.one_minus_b2 * gi * gi;
    w[i] -= c.step_size * (m[i] / (std::sqrt(v[i]) / c.bc2_sqrt + c.eps));
  }
}

}  // namespace

void Adam::step() {
  ++step_;
  const double bc1 = 1.0 - std::pow(beta1_, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(beta2_, static_cast<double>(step_));
  const AdamConstants c{static_cast<float>(beta1_),         static_cast<float>(1.0 - beta1_),
                        static_cast<float>(beta2_),         static_cast<float>(1.0 - beta2_),
                        static_cast<float>(eps_),           static_cast<float>(lr_ / bc1),
                        static_cast<float>(std::sqrt(bc2)), decoupled_};
  std::vector<AdamSlot> slots;
  std::vector<Tensor> grads;  // keeps contiguous copies alive while the slots point at them
  int64_t total = 0;
  size_t k = 0;
  for (ParamGroup& group : groups_)
    for (Tensor& p : group.params) {
      const size_t idx = k++;
      if (!p.grad().defined()) continue;
      grads.push_back(p.grad().contiguous());
      slots.push_back({p.data(), m_[idx].data(), v_[idx].data(), grads.back().data(), total, p.numel(),
                       static_cast<float>(group.weight_decay), static_cast<float>(1.0 - lr_ * group.weight_decay)});
      total += p.numel();
    }
  // The parameters as one long range split across threads: one hand-off to
  // the pool per step, however many tensors there are.
  parallel_for(total, 1 << 14, [&](int64_t begin, int64_t end) {
    for (const AdamSlot& s : slots) {
      const int64_t i0 = std::max(begin, s.start) - s.start, i1 = std::min(end, s.start + s.n) - s.start;
      if (i0 < i1) adam_update(s, c, i0, i1);
    }
  });
}

namespace {

// Sum of squares in 16 float lanes (so the loop vectorises), added up in double.
double sum_of_squares(const float* g, int64_t n) {
  constexpr int kLanes = 16;
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kLanes; ++k) lanes[k] += g[i + k] * g[i + k];
  double s = 0.0;
  for (float x : lanes) s += x;
  for (; i < n; ++i) s += static_cast<double>(g[i]) * g[i];
  return s;
}

}  // namespace

float grad_norm(const std::vector<Tensor>& params) {
  // Each tensor's sum on whichever thread is free, then added in order: the
  // same sums in the same order as one thread would make.
  std::vector<Tensor> grads;
  for (const Tensor& p : params)
    if (p.grad().defined()) grads.push_back(p.grad().contiguous());
  std::vector<double> sums(grads.size());
  parallel_for(static_cast<int64_t>(grads.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) sums[i] = sum_of_squares(grads[i].data(), grads[i].numel());
  });
  double total_sq = 0.0;
  for (double s : sums) total_sq += s;
  return static_cast<float>(std::sqrt(total_sq));
}

float clip_grad_norm(const std::vector<Tensor>& params, float max_norm) {
  const float norm = grad_norm(params);
  const float coef = max_norm / (norm + 1e-6f);
  if (coef < 1.0f)
    parallel_for(static_cast<int64_t>(params.size()), 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const Tensor grad = params[i].grad();
        if (!grad.defined()) continue;
        float* g = grad.data();
        const int64_t n = grad.numel();
        for (int64_t j = 0; j < n; ++j) g[j] *= coef;
      }
    });
  return norm;
}

double cosine_lr(int64_t it, double max_lr, double min_lr, int64_t warmup_iters, int64_t decay_iters) {
  if (it < warmup_iters) return max_lr * static_cast<double>(it + 1) / static_cast<double>(warmup_iters + 1);
  if (it > decay_iters) return min_lr;
  const double ratio = decay_iters > warmup_iters
                           ? static_cast<double>(it - warmup_iters) / static_cast<double>(decay_iters - warmup_iters)
                           : 1.0;
  const double coeff = 0.5 * (1.0 + std::cos(M_PI * ratio));
  return min_lr + coeff * (max_lr - min_lr);
}

}  // namespace ember
