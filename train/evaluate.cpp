// Evaluation, ablation of the positional table, and sampling (with a KV
// cache, or by nanoGPT's full forward per token).
#include "train/evaluate.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <numeric>
#include <span>
#include <utility>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "nn/kv_cache.h"

namespace ember {
namespace {

// Puts a model in eval mode (no dropout) for a scope, then restores its mode.
class EvalMode {
 public:
  explicit EvalMode(GPT& m) : model_(m), was_training_(m.is_training()) { m.eval(); }
  ~EvalMode() { model_.train(was_training_); }

 private:
  GPT& model_;
  bool was_training_;
};

}  // namespace

std::vector<double> batch_losses(GPT& model, std::span<const Batch> batches) {
  EvalMode eval_mode(model);
  // Batches are independent, so each thread evaluates whole batches (forward
  // only reads the weights).
  std::vector<double> losses(batches.size());
  std::vector<std::exception_ptr> errors(batches.size());
  parallel_for(static_cast<int64_t>(batches.size()), 1, [&](int64_t begin, int64_t end) {
    NoGradGuard no_grad;  // grad mode is per thread
    for (int64_t i = begin; i < end; ++i) {
      try {
        losses[i] = model.loss(model.forward(batches[i].x), batches[i].y).item();
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  });
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  return losses;
}

double weighted_mean_loss(const std::vector<double>& losses, const std::vector<Batch>& batches) {
  // The sum runs in batch order, so the result does not depend on who
  // evaluated which batch.
  double total = 0.0;
  int64_t count = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    total += losses[i] * static_cast<double>(batches[i].y.numel());
    count += batches[i].y.numel();
  }
  return count ? total / static_cast<double>(count) : std::nan("");
}

double mean_loss(GPT& model, const std::vector<Batch>& batches) {
  return weighted_mean_loss(batch_losses(model, batches), batches);
}

double sequential_loss(GPT& model, const TokenArray& tokens, int64_t batch_size) {
  const int64_t T = model.config().block_size;
  EMBER_CHECK(batch_size > 0, "eval: batch size must be positive, got {}", batch_size);
  EMBER_CHECK(tokens.size() >= T + 1, "data: {} tokens are too few for one window of block_size + 1 = {} tokens",
              tokens.size(), T + 1);
  // 64 batches a group: work for every thread, a few MB of ids at most. The
  // sum runs in batch order across groups, as mean_loss's does.
  const int64_t group = 64 * batch_size * T, windows = (tokens.size() - 1) / T;
  double total = 0.0;
  int64_t count = 0;
  for (int64_t w0 = 0; w0 < windows; w0 += group / T) {
    const int64_t n = std::min(group, (windows - w0) * T) + 1;  // whole windows and the last target
    const std::vector<Batch> batches = sequential_batches(tokens.slice(w0 * T, n), batch_size, T);
    const std::vector<double> losses = batch_losses(model, batches);
    for (size_t i = 0; i < batches.size(); ++i) {
      total += losses[i] * static_cast<double>(batches[i].y.numel());
      count += batches[i].y.numel();
    }
  }
  return total / static_cast<double>(count);
}

PositionAblation position_ablation(GPT& model, const TokenArray& val_all, uint64_t seed, int64_t max_blocks) {
  EMBER_CHECK(model.transformer->wpe != nullptr, "ablation: the model has no learned positional table (pos is {})",
              pos_kind_name(model.config().pos));
  Tensor table = model.transformer->wpe->weight;
  const std::vector<float> saved = table.to_vector();
  const int64_t rows = table.size(0), C = table.size(1);
  const int64_t T = model.config().block_size;
  const int64_t n = std::min(val_all.size(), max_blocks * T + 1);
  const TokenArray val = val_all.slice(0, n);
  PositionAblation r{};
  r.blocks = (n - 1) / T;
  r.trained = sequential_loss(model, val);
  std::fill(table.data(), table.data() + table.numel(), 0.0f);
  r.zeroed = sequential_loss(model, val);
  std::vector<int64_t> perm(static_cast<size_t>(rows));
  std::iota(perm.begin(), perm.end(), 0);
  Generator gen(seed);
  for (int64_t i = rows - 1; i > 0; --i) std::swap(perm[i], perm[gen.randint(0, i + 1)]);  // Fisher-Yates
  for (int64_t i = 0; i < rows; ++i) std::copy_n(saved.data() + perm[i] * C, C, table.data() + i * C);
  r.shuffled = sequential_loss(model, val);
  std::copy(saved.begin(), saved.end(), table.data());
  return r;
}

int32_t sample_token(const float* logits, int64_t V, double temperature, int64_t top_k, Generator& gen) {
  std::vector<int32_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  const int64_t k = top_k > 0 ? std::min(top_k, V) : V;
  // Ties keep the lower id first, so top_k = 1 is a deterministic argmax.
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  if (k == 1) return order[0];
  std::vector<double> p(static_cast<size_t>(k));
  const double top = logits[order[0]];
  double total = 0.0;
  for (int64_t i = 0; i < k; ++i) total += p[i] = std::exp((logits[order[i]] - top) / temperature);
  double u = static_cast<double>(gen.uniform()) * total;
  for (int64_t i = 0; i < k; ++i)
    if ((u -= p[i]) < 0.0) return order[i];
  return order[k - 1];
}

namespace {

// nanoGPT's sample.py: a full forward over the last block_size tokens for
// every new token, keeping the last position's logits.
void generate_recompute(GPT& model, std::vector<int32_t>& tokens, int64_t n, const GenerateOptions& o, Generator& gen) {
  const int64_t V = model.config().vocab_size, T_max = model.config().block_size;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t T = std::min<int64_t>(static_cast<int64_t>(tokens.size()), T_max);
    const IntTensor ctx({1, T}, std::vector<int64_t>(tokens.end() - T, tokens.end()));
    const Tensor logits = model.forward(ctx);  // [1,T,V]
    tokens.push_back(sample_token(logits.data() + (T - 1) * V, V, o.temperature, o.top_k, gen));
    if (o.on_token && !o.on_token(o.on_token_ctx, tokens.back())) return;
  }
}

// The same tokens from a KV cache: one prefill over the prompt's window,
// then one step per token; a full window is rebuilt as GenerateOptions says.
void generate_cached(const GPT& model, std::vector<int32_t>& tokens, int64_t n, const GenerateOptions& o,
                     Generator& gen) {
  const int64_t V = model.config().vocab_size, T_max = model.config().block_size;
  KVCache cache(model);
  auto last = [&](int64_t count) {
    return std::span<const int32_t>(tokens).last(static_cast<size_t>(std::min<int64_t>(count, tokens.size())));
  };
  std::span<const float> logits = cache.prefill(last(T_max));
  for (int64_t i = 0; i < n; ++i) {
    if (i > 0)  // feed the token sampled last time
      logits = cache.length() < T_max ? cache.step(tokens.back()) : cache.prefill(last(T_max - o.window_shift + 1));
    tokens.push_back(sample_token(logits.data(), V, o.temperature, o.top_k, gen));
    if (o.on_token && !o.on_token(o.on_token_ctx, tokens.back())) return;
  }
}

}  // namespace

std::vector<int32_t> generate(GPT& model, std::vector<int32_t> tokens, int64_t n, const GenerateOptions& o,
                              Generator& gen) {
  EMBER_CHECK(o.temperature > 0.0 && std::isfinite(o.temperature), "sample: temperature must be > 0, got {}",
              o.temperature);
  EMBER_CHECK(n >= 0, "sample: the number of tokens must be >= 0, got {}", n);
  EMBER_CHECK(!tokens.empty(), "sample: the prompt is empty (give at least one token)");
  EMBER_CHECK(o.window_shift >= 1 && o.window_shift <= model.config().block_size,
              "sample: the window shift must be in [1, block_size {}], got {}", model.config().block_size,
              o.window_shift);
  NoGradGuard no_grad;
  EvalMode eval_mode(model);
  if (n == 0) return tokens;
  if (o.kv_cache)
    generate_cached(model, tokens, n, o, gen);
  else
    generate_recompute(model, tokens, n, o, gen);
  return tokens;
}

std::vector<int32_t> generate(GPT& model, std::vector<int32_t> prompt, int64_t n, double temperature, int64_t top_k,
                              Generator& gen) {
  GenerateOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  return generate(model, std::move(prompt), n, o, gen);
}

}  // namespace ember
