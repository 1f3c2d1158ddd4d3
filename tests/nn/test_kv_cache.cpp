// KVCache against GPT::forward for every positional kind: prefill is bitwise
// the forward's last row, each step's logits match a forward over all tokens
// so far, and why a shifted window needs a rebuild: after dropping the oldest
// token, no layer but the first keeps its keys, whatever the positions.
#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "nn/kv_cache.h"
#include "tests/core/test_helpers.h"
#include "tests/nn/tiny_gpt.h"

using namespace ember;

namespace {

const PosKind kAllPos[] = {PosKind::Learned, PosKind::Sinusoidal, PosKind::Rope, PosKind::Alibi, PosKind::None};

// A tiny GPT whose weights are drawn wider than GPT-2's init (std 0.02 gives
// nearly uniform logits), so logits and attention are far from uniform and a
// wrong position or a stale key shows up as an O(1) difference.
std::unique_ptr<GPT> spread_gpt(PosKind pos, bool bias, uint64_t seed) {
  GPTConfig c = ember::testing::tiny_gpt(13, 2);
  c.pos = pos;
  c.bias = bias;
  auto model = std::make_unique<GPT>(c, seed);
  Generator g(seed + 100);
  for (auto& [name, p] : model->named_parameters()) {
    const std::vector<float> v =
        normal(p.shape(), name.find("ln_") != std::string::npos ? 1.0f : 0.0f, 0.4f, &g).to_vector();
    std::copy(v.begin(), v.end(), p.data());
  }
  model->eval();
  return model;
}

std::vector<int32_t> random_tokens(int64_t n, int64_t V, uint64_t seed) {
  Generator g(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = static_cast<int32_t>(g.randint(0, V));
  return t;
}

// GPT::forward's logits [V] at the last of tokens[begin, end).
std::vector<float> forward_last(const GPT& m, const std::vector<int32_t>& tokens, int64_t begin, int64_t end) {
  NoGradGuard no_grad;
  const IntTensor idx({1, end - begin}, std::vector<int64_t>(tokens.begin() + begin, tokens.begin() + end));
  return m.forward(idx).narrow(1, end - begin - 1, 1).to_vector();
}

// Layer l's keys (after RoPE) for tokens[begin, end) at positions 0..: [T, C].
std::vector<float> keys_of(const GPT& m, const std::vector<int32_t>& tokens, int64_t begin, int64_t end, size_t l) {
  NoGradGuard no_grad;
  const int64_t T = end - begin, C = m.config().n_embd;
  Tensor x = m.input_embeddings(IntTensor({1, T}, std::vector<int64_t>(tokens.begin() + begin, tokens.begin() + end)));
  for (size_t i = 0; i < l; ++i) x = (*m.transformer->h)[i].forward(x);
  const Block& b = (*m.transformer->h)[l];
  return b.attn->project_qkv(b.ln_1->forward(x)).narrow(2, C, C).contiguous().to_vector();
}

}  // namespace

TEST_CASE("KVCache: prefill's logits are bitwise GPT::forward's last row, for every positional kind") {
  for (PosKind pos : kAllPos) {
    CAPTURE(pos_kind_name(pos));
    const auto m = spread_gpt(pos, true, 1);
    const std::vector<int32_t> t = random_tokens(8, 13, 2);
    KVCache cache(*m);
    for (int64_t n : {1, 5, 8}) {
      const std::span<const float> got = cache.prefill(std::span(t).first(static_cast<size_t>(n)));
      CHECK(std::vector<float>(got.begin(), got.end()) == forward_last(*m, t, 0, n));
      CHECK(cache.length() == n);
    }
  }
}

// Tolerance for step() against forward: the same maths in float32, summed in
// another order (dot products per row against sgemm tiles, a per-row layer
// norm), through 2 layers. The logits here are O(10) (weights std 0.4), so
// rounding differences are ~1e-6 of that; 1e-4 absolute stays a decade above
// them, while a wrong position, a stale or misplaced key moves logits by O(1).
constexpr float kStepTol = 1e-4f;

TEST_CASE("KVCache: each step's logits equal a full forward over the tokens so far, for every positional kind") {
  for (PosKind pos : kAllPos)
    for (bool bias : {true, false}) {
      CAPTURE(pos_kind_name(pos));
      CAPTURE(bias);
      const auto m = spread_gpt(pos, bias, 3);
      const std::vector<int32_t> t = random_tokens(8, 13, 4);
      KVCache cache(*m);
      cache.prefill(std::span(t).first(3));
      float largest = 0.0f;
      for (int64_t n = 4; n <= 8; ++n) {
        const std::span<const float> got = cache.step(t[n - 1]);
        const std::vector<float> want = forward_last(*m, t, 0, n);
        for (size_t v = 0; v < want.size(); ++v) {
          CHECK_MESSAGE(std::abs(got[v] - want[v]) <= kStepTol, "position ", n - 1, " token ", v, ": step ", got[v],
                        " vs forward ", want[v]);
          largest = std::max(largest, std::abs(want[v]));
        }
      }
      CHECK(largest > 1.0f);  // the logits are spread, so the comparison means something
      CHECK(cache.length() == 8);
    }
}

TEST_CASE("KVCache: stepping from an empty cache equals prefilling") {
  const auto m = spread_gpt(PosKind::Rope, true, 5);
  KVCache cache(*m);
  const std::span<const float> a = cache.step(7);
  const std::vector<float> stepped(a.begin(), a.end());
  const std::vector<int32_t> one{7};
  CHECK(cache.length() == 1);
  const std::span<const float> b = cache.prefill(one);
  for (size_t v = 0; v < stepped.size(); ++v) CHECK(std::abs(stepped[v] - b[v]) <= kStepTol);
}

TEST_CASE("KVCache: a shifted window invalidates every layer's keys but the first's, for every positional kind") {
  // Windows [0, 8) and [1, 9) share tokens 1..7, one position apart. The
  // cache could survive the shift only if those tokens' keys did not change.
  // The first layer's keys are a function of the token alone for alibi and
  // none (and for rope before the rotation), but every later layer mixes in
  // the attention over the window, which has lost token 0; so all kinds need
  // a rebuild, and KVCache prefills the shifted window.
  for (PosKind pos : kAllPos) {
    CAPTURE(pos_kind_name(pos));
    const auto m = spread_gpt(pos, false, 6);
    const std::vector<int32_t> t = random_tokens(9, 13, 7);
    const int64_t C = m->config().n_embd;
    for (size_t l = 0; l < 2; ++l) {
      const std::vector<float> before = keys_of(*m, t, 0, 8, l), after = keys_of(*m, t, 1, 9, l);
      float diff = 0.0f;
      for (int64_t j = 1; j < 8; ++j)  // token j: row j before, row j - 1 after
        for (int64_t c = 0; c < C; ++c) diff = std::max(diff, std::abs(before[j * C + c] - after[(j - 1) * C + c]));
      const bool token_only = l == 0 && (pos == PosKind::Alibi || pos == PosKind::None);
      CAPTURE(l);
      if (token_only)
        CHECK(diff == 0.0f);
      else
        CHECK(diff > 1e-2f);
    }
  }
}

TEST_CASE("KVCache: errors name the rule and the values") {
  const auto m = spread_gpt(PosKind::Learned, true, 8);
  KVCache cache(*m);
  const std::vector<int32_t> nine(9, 1), bad{1, 13};
  CHECK_THROWS_WITH_AS(cache.prefill(nine), "KVCache: prefill needs 1 to block_size 8 tokens, got 9", Error);
  CHECK_THROWS_WITH_AS(cache.prefill(std::span<const int32_t>()),
                       "KVCache: prefill needs 1 to block_size 8 tokens, got 0", Error);
  CHECK_THROWS_WITH_AS(cache.prefill(bad), "KVCache: token id 13 is outside the vocabulary [0, 13)", Error);
  CHECK_THROWS_WITH_AS(cache.step(-1), "KVCache: token id -1 is outside the vocabulary [0, 13)", Error);
  cache.prefill(std::span(nine).first(8));
  CHECK_THROWS_WITH_AS(
      cache.step(1), "KVCache: the cache is full (8 of block_size 8 positions); prefill a shorter window first", Error);
  m->train();
  CHECK_THROWS_WITH_AS(cache.prefill(bad), "KVCache: the model must be in eval mode (call model.eval())", Error);
}
