// CausalSelfAttention and the op-by-op attention it is checked against.
#include "nn/attention.h"

#include <cmath>
#include <limits>

namespace ember {

CausalSelfAttention::CausalSelfAttention(const AttentionConfig& cfg, Generator& gen)
    : n_head_(cfg.n_head), pos_(cfg.pos) {
  EMBER_CHECK(cfg.n_head > 0 && cfg.n_embd % cfg.n_head == 0,
              "CausalSelfAttention: n_embd {} is not divisible by n_head {}", cfg.n_embd, cfg.n_head);
  EMBER_CHECK(cfg.pos != PosKind::Rope || (cfg.n_embd / cfg.n_head) % 2 == 0,
              "CausalSelfAttention: rope needs an even head size, got {}", cfg.n_embd / cfg.n_head);
  c_attn = register_module("c_attn", std::make_shared<Linear>(cfg.n_embd, 3 * cfg.n_embd, cfg.bias, gen));
  c_proj =
      register_module("c_proj", std::make_shared<Linear>(cfg.n_embd, cfg.n_embd, cfg.bias, gen, cfg.proj_init_std));
  attn_drop = register_module("attn_dropout", std::make_shared<Dropout>(cfg.dropout));
  resid_drop = register_module("resid_dropout", std::make_shared<Dropout>(cfg.dropout));
  if (pos_ == PosKind::Alibi) {
    const std::vector<float> s = alibi_slopes(n_head_);
    alibi_slopes_ = tensor({n_head_}, s);
  }
}

Tensor CausalSelfAttention::project_qkv(const Tensor& x) const {
  EMBER_CHECK(x.dim() == 3, "CausalSelfAttention: input must be [B, T, C], got {}", shape_str(x.shape()));
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), H = n_head_;
  Tensor qkv = c_attn->forward(x);  // [B,T,3C]
  if (pos_ == PosKind::Rope) qkv = rope(qkv.view({B, T, 3 * H, C / H}), 2 * H).view({B, T, 3 * C});
  return qkv;
}

Tensor CausalSelfAttention::attend(const Tensor& qkv) const {
  const Tensor y = is_training() && attn_drop->p > 0.0f
                       ? attention_unfused(qkv, n_head_, alibi_slopes_, attn_drop->p, true, attn_drop->generator)
                       : causal_attention(qkv, n_head_, alibi_slopes_);
  return resid_drop->forward(c_proj->forward(y));
}

Tensor attention_unfused(const Tensor& qkv, int64_t H, const Tensor& alibi_slopes, float dropout_p, bool training,
                         Generator* gen) {
  const int64_t B = qkv.size(0), T = qkv.size(1), C = qkv.size(2) / 3, D = C / H;
  auto heads = [&](int64_t part) { return qkv.narrow(2, part * C, C).view({B, T, H, D}).transpose(1, 2); };
  const Tensor q = heads(0), k = heads(1), v = heads(2);                                      // [B,H,T,D]
  Tensor att = mul(matmul(q, k.transpose(-2, -1)), 1.0f / std::sqrt(static_cast<float>(D)));  // [B,H,T,T]
  if (alibi_slopes.defined()) {
    Tensor bias = empty({H, T, T});
    const std::vector<float> s = alibi_slopes.to_vector();
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j)
          bias.data()[(h * T + i) * T + j] = static_cast<float>(-static_cast<double>(s[h]) * (i - j));
    att = add(att, bias);
  }
  att = masked_fill(att, causal_mask(T), -std::numeric_limits<float>::infinity());
  att = dropout(softmax(att, -1), dropout_p, training, gen);
  return matmul(att, v).transpose(1, 2).reshape({B, T, C});
}

}  // namespace ember
