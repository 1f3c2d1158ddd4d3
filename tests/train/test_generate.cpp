// generate() with the KV cache against nanoGPT's recompute path: the same
// tokens for the same seed, greedy and sampled, for every positional kind,
// well past the context length; the window_shift policy checked against
// forwards over the windows it promises; the per-token callback.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "tests/nn/tiny_gpt.h"
#include "train/evaluate.h"

using namespace ember;

namespace {

const PosKind kAllPos[] = {PosKind::Learned, PosKind::Sinusoidal, PosKind::Rope, PosKind::Alibi, PosKind::None};

// A tiny GPT (block_size 8) with weights drawn wider than GPT-2's init, so its
// next-token distributions are far from uniform and greedy picks are clear.
// Untied, so that lm_head does not simply favour the current token: the
// tokens then depend on the context (the tests check that they do).
std::unique_ptr<GPT> spread_gpt(PosKind pos, uint64_t seed) {
  GPTConfig c = ember::testing::tiny_gpt(13, 2);
  c.pos = pos;
  c.bias = true;
  c.tie_weights = false;
  auto model = std::make_unique<GPT>(c, seed);
  Generator g(seed + 100);
  for (auto& [name, p] : model->named_parameters()) {
    const std::vector<float> v =
        normal(p.shape(), name.find("ln_") != std::string::npos ? 1.0f : 0.0f, 0.4f, &g).to_vector();
    std::copy(v.begin(), v.end(), p.data());
  }
  return model;
}

std::vector<int32_t> run(GPT& m, bool kv_cache, double temperature, int64_t top_k, int64_t shift = 1) {
  GenerateOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  o.kv_cache = kv_cache;
  o.window_shift = shift;
  Generator gen(42);
  return generate(m, {3, 1, 4}, 30, o, gen);
}

struct Collected {
  std::vector<int32_t> tokens;
  size_t stop_after = 1000;
};
bool collect(void* ctx, int32_t token) {
  auto* c = static_cast<Collected*>(ctx);
  c->tokens.push_back(token);
  return c->tokens.size() < c->stop_after;
}

}  // namespace

TEST_CASE("generate: the KV cache gives the recompute path's tokens, past the context, for every positional kind") {
  // block_size 8, prompt 3, 30 new tokens: 25 of them come after the window
  // is full, where the window slides as nanoGPT's crop does.
  struct Mode {
    double temperature;
    int64_t top_k;
  };
  for (PosKind pos : kAllPos)
    for (Mode mode : {Mode{1.0, 1}, Mode{0.8, 5}, Mode{0.8, 0}}) {
      CAPTURE(pos_kind_name(pos));
      CAPTURE(mode.temperature);
      CAPTURE(mode.top_k);
      const auto m = spread_gpt(pos, 7);  // a seed whose greedy tokens depend on the context for every kind
      const std::vector<int32_t> cached = run(*m, true, mode.temperature, mode.top_k);
      const std::vector<int32_t> recomputed = run(*m, false, mode.temperature, mode.top_k);
      CHECK(cached.size() == 33);
      CHECK(cached == recomputed);
      if (mode.top_k != 1) CHECK(cached != run(*m, true, mode.temperature, 1));  // sampling does sample
      // With a one-token context (window_shift 8) the tokens change: they
      // depend on the context, so the equality above has teeth.
      CHECK(cached != run(*m, true, mode.temperature, mode.top_k, 8));
    }
}

TEST_CASE("generate: window_shift s rebuilds from the last block_size - s + 1 tokens, then steps") {
  // Greedy tokens, each checked against the argmax of a forward over the
  // window the policy promises: the context grows to 8 tokens, then drops to
  // 8 - s + 1 and grows again.
  for (int64_t s : {1, 3, 8}) {
    CAPTURE(s);
    const auto m = spread_gpt(PosKind::Learned, 7);
    const std::vector<int32_t> out = run(*m, true, 1.0, 1, s);
    NoGradGuard no_grad;
    int64_t window = 3;
    for (size_t i = 3; i < out.size(); ++i) {
      if (i > 3) window = window < 8 ? window + 1 : 8 - s + 1;
      const IntTensor ctx({1, window}, std::vector<int64_t>(out.begin() + static_cast<long>(i) - window,
                                                            out.begin() + static_cast<long>(i)));
      const std::vector<float> logits = m->forward(ctx).narrow(1, window - 1, 1).to_vector();
      CHECK(out[i] == std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
  }
  const auto m = spread_gpt(PosKind::Learned, 7);
  CHECK_THROWS_WITH_AS(run(*m, true, 1.0, 1, 9), "sample: the window shift must be in [1, block_size 8], got 9", Error);
  CHECK_THROWS_WITH_AS(run(*m, true, 1.0, 1, 0), "sample: the window shift must be in [1, block_size 8], got 0", Error);
}

TEST_CASE("generate: the callback sees each new token in order and can stop generation, on both paths") {
  const auto m = spread_gpt(PosKind::Rope, 13);
  for (bool kv : {true, false}) {
    Collected c;
    GenerateOptions o;
    o.kv_cache = kv;
    o.on_token = collect;
    o.on_token_ctx = &c;
    Generator gen(5);
    const std::vector<int32_t> out = generate(*m, {2}, 12, o, gen);
    CHECK(out.size() == 13);
    CHECK(c.tokens == std::vector<int32_t>(out.begin() + 1, out.end()));
    // Returning false stops generation: the prompt and the tokens so far.
    Collected early;
    early.stop_after = 5;
    o.on_token_ctx = &early;
    Generator gen2(5);
    CHECK(generate(*m, {2}, 12, o, gen2) == std::vector<int32_t>(out.begin(), out.begin() + 6));
  }
  CHECK(m->is_training());  // generate restores the mode it found
}

TEST_CASE("sample_token: only the top-k ids are drawn, each as often as softmax(logits / temperature) says") {
  const std::vector<float> logits = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, 3.0f, 1.0f};
  struct Setting {
    double temperature;
    int64_t top_k;
    std::vector<int32_t> allowed;  // the top_k ids by logit, ties to the lower id
  };
  for (const Setting& s : {Setting{0.5, 3, {5, 0, 1}}, Setting{2.0, 0, {0, 1, 2, 3, 4, 5, 6}},
                           Setting{1.0, 4, {5, 0, 1, 6}}}) {
    CAPTURE(s.temperature);
    CAPTURE(s.top_k);
    // Expected probabilities, written out: exp(l / T) over the allowed ids.
    std::vector<double> want(logits.size(), 0.0);
    double total = 0.0;
    for (int32_t id : s.allowed) total += want[id] = std::exp(logits[id] / s.temperature);
    for (double& p : want) p /= total;
    Generator gen(77);
    const int n = 40000;
    std::vector<int> count(logits.size(), 0);
    for (int i = 0; i < n; ++i) ++count[sample_token(logits.data(), 7, s.temperature, s.top_k, gen)];
    for (size_t id = 0; id < logits.size(); ++id) {
      CAPTURE(id);
      if (want[id] == 0.0) {
        CHECK(count[id] == 0);  // outside the top k: never drawn
        continue;
      }
      // A binomial count: within 5 standard deviations (a false alarm about once in 3 million).
      const double sd = std::sqrt(n * want[id] * (1.0 - want[id]));
      CHECK(std::abs(count[id] - n * want[id]) < 5.0 * sd);
    }
  }
  // top_k 1 is the argmax, with no draw; a tie goes to the lower id.
  Generator gen(1);
  const Generator::State before = gen.state();
  CHECK(sample_token(logits.data(), 7, 0.7, 1, gen) == 5);
  CHECK(gen.state().words == before.words);
  const std::vector<float> tie = {0.0f, 4.0f, 4.0f};
  CHECK(sample_token(tie.data(), 3, 1.0, 1, gen) == 1);
}
