// KVCache: prefill through the batched ops, then one token per step through
// core/decode.h's row kernels over the cached keys and values.
#include "nn/kv_cache.h"

#include <algorithm>
#include <string>

#include "core/autograd.h"
#include "core/decode.h"
#include "core/error.h"

namespace ember {
namespace {

const float* row_ptr(const Tensor& t) { return t.defined() ? t.data() : nullptr; }

void check_dense(const Tensor& t, const std::string& name) {
  EMBER_CHECK(!t.defined() || t.is_contiguous(), "KVCache: parameter {} is not contiguous", name);
}

// out += a, n floats.
void add_into(float* out, const float* a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] += a[i];
}

}  // namespace

KVCache::KVCache(const GPT& model) : model_(model), cfg_(model.config()) {
  H_ = cfg_.n_head;
  D_ = cfg_.n_embd / H_;
  const int64_t L = cfg_.n_layer, T = cfg_.block_size, C = cfg_.n_embd;
  for (const auto& [name, p] : model.named_parameters()) check_dense(p, name);
  k_.assign(static_cast<size_t>(L * H_ * T * D_), 0.0f);
  v_.assign(k_.size(), 0.0f);
  x_.resize(static_cast<size_t>(C));
  h_.resize(x_.size());
  y_.resize(x_.size());
  qkv_.resize(static_cast<size_t>(3 * C));
  u_.resize(static_cast<size_t>(4 * C));
  logits_.resize(static_cast<size_t>(cfg_.vocab_size));
  scratch_.resize(static_cast<size_t>(H_ * T));
  if (cfg_.pos == PosKind::Alibi) slopes_ = alibi_slopes(H_);
  if (cfg_.pos == PosKind::Rope) rope_tables(T, D_, 10000.0, rope_cos_, rope_sin_);
  if (cfg_.pos == PosKind::Sinusoidal) sinusoid_ = sinusoidal_table(T, C).to_vector();
}

void KVCache::check_token(int32_t token) const {
  EMBER_CHECK(token >= 0 && token < cfg_.vocab_size, "KVCache: token id {} is outside the vocabulary [0, {})", token,
              cfg_.vocab_size);
}

void KVCache::store_kv(int64_t layer, const float* qkv, int64_t t) {
  const int64_t C = cfg_.n_embd, T = cfg_.block_size;
  for (int64_t h = 0; h < H_; ++h) {
    const size_t at = static_cast<size_t>(((layer * H_ + h) * T + t) * D_);
    std::copy_n(qkv + C + h * D_, D_, k_.data() + at);
    std::copy_n(qkv + 2 * C + h * D_, D_, v_.data() + at);
  }
}

std::span<const float> KVCache::prefill(std::span<const int32_t> tokens) {
  const auto n = static_cast<int64_t>(tokens.size());
  EMBER_CHECK(n >= 1 && n <= cfg_.block_size, "KVCache: prefill needs 1 to block_size {} tokens, got {}",
              cfg_.block_size, n);
  EMBER_CHECK(!model_.is_training(), "KVCache: the model must be in eval mode (call model.eval())");
  for (int32_t t : tokens) check_token(t);
  len_ = 0;  // should an op below throw, the cache is empty, not stale
  NoGradGuard no_grad;
  std::vector<int64_t> ids(tokens.begin(), tokens.end());
  // GPT::forward in eval mode (dropout is the identity), block by block, with
  // each layer's keys and values copied out of its qkv projection.
  Tensor x = model_.input_embeddings(IntTensor({1, n}, std::move(ids)));  // [1,T,C]
  const ModuleList<Block>& blocks = *model_.transformer->h;
  for (size_t l = 0; l < blocks.size(); ++l) {
    const Block& b = blocks[l];
    const Tensor qkv = b.attn->project_qkv(b.ln_1->forward(x)).contiguous();  // [1,T,3C]
    for (int64_t t = 0; t < n; ++t) store_kv(static_cast<int64_t>(l), qkv.data() + t * 3 * cfg_.n_embd, t);
    Tensor a = b.attn->attend(qkv);
    if (l + 1 == blocks.size()) {
      // Only the last token's logits are wanted: the last MLP runs on its row
      // alone. Every op here works row by row, so that row is unchanged.
      x = x.narrow(1, n - 1, 1);
      a = a.narrow(1, n - 1, 1);
    }
    x = add(x, a);
    x = add(x, b.mlp->forward(b.ln_2->forward(x)));
  }
  const Tensor logits = model_.lm_head->forward(model_.transformer->ln_f->forward(x)).contiguous();  // [1,1,V]
  std::copy_n(logits.data(), cfg_.vocab_size, logits_.data());
  len_ = n;
  return logits_;
}

void KVCache::embed(int32_t token, int64_t pos) {
  const int64_t C = cfg_.n_embd;
  std::copy_n(model_.transformer->wte->weight.data() + token * C, C, x_.data());
  if (model_.transformer->wpe) add_into(x_.data(), model_.transformer->wpe->weight.data() + pos * C, C);
  if (!sinusoid_.empty()) add_into(x_.data(), sinusoid_.data() + pos * C, C);
}

// Block::forward for one token at position pos: x += attn(ln_1(x)); x += mlp(ln_2(x)).
void KVCache::block_step(int64_t l, int64_t pos) {
  const Block& b = (*model_.transformer->h)[static_cast<size_t>(l)];
  const int64_t C = cfg_.n_embd, T = cfg_.block_size;
  layer_norm_row(x_.data(), row_ptr(b.ln_1->weight), row_ptr(b.ln_1->bias), h_.data(), C, b.ln_1->eps);
  linear_row(h_.data(), b.attn->c_attn->weight.data(), row_ptr(b.attn->c_attn->bias), qkv_.data(), C, 3 * C);
  if (!rope_cos_.empty())  // q and k rotate, v does not
    rope_row(qkv_.data(), 2 * H_, D_, rope_cos_.data() + pos * (D_ / 2), rope_sin_.data() + pos * (D_ / 2));
  store_kv(l, qkv_.data(), pos);
  const size_t at = static_cast<size_t>(l * H_ * T * D_);
  attention_row(qkv_.data(), k_.data() + at, v_.data() + at, pos + 1, H_, D_, T * D_,
                slopes_.empty() ? nullptr : slopes_.data(), y_.data(), scratch_.data());
  linear_row(y_.data(), b.attn->c_proj->weight.data(), row_ptr(b.attn->c_proj->bias), h_.data(), C, C);
  add_into(x_.data(), h_.data(), C);
  layer_norm_row(x_.data(), row_ptr(b.ln_2->weight), row_ptr(b.ln_2->bias), h_.data(), C, b.ln_2->eps);
  linear_row(h_.data(), b.mlp->c_fc->weight.data(), row_ptr(b.mlp->c_fc->bias), u_.data(), C, 4 * C);
  gelu_row(u_.data(), 4 * C);
  linear_row(u_.data(), b.mlp->c_proj->weight.data(), row_ptr(b.mlp->c_proj->bias), h_.data(), 4 * C, C);
  add_into(x_.data(), h_.data(), C);
}

std::span<const float> KVCache::step(int32_t token) {
  EMBER_CHECK(len_ < cfg_.block_size,
              "KVCache: the cache is full ({} of block_size {} positions); prefill a shorter window first", len_,
              cfg_.block_size);
  EMBER_CHECK(!model_.is_training(), "KVCache: the model must be in eval mode (call model.eval())");
  check_token(token);
  const int64_t pos = len_, C = cfg_.n_embd;
  embed(token, pos);
  for (int64_t l = 0; l < cfg_.n_layer; ++l) block_step(l, pos);
  const LayerNorm& ln_f = *model_.transformer->ln_f;
  layer_norm_row(x_.data(), row_ptr(ln_f.weight), row_ptr(ln_f.bias), h_.data(), C, ln_f.eps);
  linear_row(h_.data(), model_.lm_head->weight.data(), row_ptr(model_.lm_head->bias), logits_.data(), C,
             cfg_.vocab_size);
  len_ = pos + 1;
  return logits_;
}

}  // namespace ember
