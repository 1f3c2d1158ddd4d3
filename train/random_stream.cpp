// The two random streams of a training run, and nanoGPT's initialisation.
#include "train/random_stream.h"

#include <cmath>
#include <optional>

#include "core/error.h"
#include "train/checkpoint.h"

namespace ember {

RngKind parse_rng_kind(const std::string& name) {
  if (name == "nanogpt") return RngKind::Nanogpt;
  if (name == "ember") return RngKind::Ember;
  fail("rng: unknown random stream '{}' (choose nanogpt or ember)", name);
}

std::string rng_kind_name(RngKind kind) { return kind == RngKind::Nanogpt ? "nanogpt" : "ember"; }

namespace {

// nanoGPT's draws: PyTorch's generator, consumed in train.py's order.
class NanogptStream : public RandomStream {
 public:
  NanogptStream(const StreamSettings& s, const TokenSplit& data) : s_(s), data_(data), gen_(s.seed) {}

  void init_model(GPT& model) override {
    init_like_nanogpt(model, gen_);
    next_ = starts(data_.train);  // train.py's first get_batch, before the loop
  }

  // nanoGPT fetches the next batch right after the forward pass; nothing else
  // draws from the stream in between, so drawing it here is the same order.
  Batch next_batch() override {
    Batch b = batch_at(data_.train, next_, s_.block_size);
    next_ = starts(data_.train);
    return b;
  }

  bool estimates_at_start() const override { return true; }

  EstimateBatches estimate_batches(int64_t, bool scheduled) override {
    // nanoGPT makes no estimate off its schedule: draw this one from a copy
    // of the stream, so a run resumed from here goes on as an uninterrupted one.
    const std::optional<TorchGenerator> saved = scheduled ? std::nullopt : std::optional(gen_);
    EstimateBatches e;
    for (auto [split, out] : {std::pair{&data_.train, &e.train}, std::pair{&data_.val, &e.val}})
      for (int64_t i = 0; i < s_.eval_iters; ++i) out->push_back(batch_at(*split, starts(*split), s_.block_size));
    if (saved) gen_ = *saved;
    return e;
  }

  nlohmann::json state() const override { return {{"torch_state", gen_.state()}, {"next_starts", next_}}; }

  void set_state(const nlohmann::json& j, const std::string& file) override {
    gen_.set_state(json_field<std::string>(j, "torch_state", file));
    const nlohmann::json& n = j.contains("next_starts") ? j.at("next_starts") : nlohmann::json();
    EMBER_CHECK(n.is_array() && static_cast<int64_t>(n.size()) == s_.batch_size,
                "checkpoint: '{}' stream field 'next_starts' must list batch_size = {} starts", file, s_.batch_size);
    next_.clear();
    for (const nlohmann::json& v : n) {
      EMBER_CHECK(v.is_number_integer(), "checkpoint: '{}' stream field 'next_starts' must hold integers", file);
      next_.push_back(v.get<int64_t>());
    }
  }

 private:
  // get_batch's draws: B starts from torch.randint(len(data) - T, (B,)).
  std::vector<int64_t> starts(const TokenArray& data) {
    std::vector<int64_t> out(static_cast<size_t>(s_.batch_size));
    for (int64_t& x : out) x = gen_.randint(data.size() - s_.block_size);
    return out;
  }

  StreamSettings s_;
  const TokenSplit& data_;
  TorchGenerator gen_;
  std::vector<int64_t> next_;  // the starts of the coming step's batch
};

// ember's own draws: a seeded Generator for batches; estimates that leave it alone.
class EmberStream : public RandomStream {
 public:
  EmberStream(const StreamSettings& s, const TokenSplit& data) : s_(s), data_(data), gen_(s.seed) {}

  void init_model(GPT&) override {}  // GPT(config, seed) drew the weights already

  Batch next_batch() override { return sample_batch(data_.train, s_.batch_size, s_.block_size, gen_); }

  bool estimates_at_start() const override { return false; }

  EstimateBatches estimate_batches(int64_t step, bool) override {
    Generator gen(s_.seed * 1000003 + static_cast<uint64_t>(step));  // independent of training draws
    EstimateBatches e;
    for (int64_t i = 0; i < s_.eval_iters; ++i) e.val.push_back(sample_batch(data_.val, s_.batch_size, s_.block_size, gen));
    return e;
  }

  nlohmann::json state() const override { return {{"data_rng", generator_state_to_json(gen_.state())}}; }

  void set_state(const nlohmann::json& j, const std::string& file) override {
    gen_.set_state(generator_state_from_json(j, file, "data_rng"));
  }

 private:
  StreamSettings s_;
  const TokenSplit& data_;
  Generator gen_;
};

}  // namespace

std::unique_ptr<RandomStream> make_random_stream(const StreamSettings& s, const TokenSplit& data) {
  if (s.kind == RngKind::Nanogpt) return std::make_unique<NanogptStream>(s, data);
  return std::make_unique<EmberStream>(s, data);
}

void init_like_nanogpt(GPT& model, TorchGenerator& gen) {
  const auto modules = model.named_modules();
  // 1. Construction: nn.Embedding draws normal(0, 1) for its table; nn.Linear
  // draws uniform weights (kaiming), then uniform biases. Only the count matters.
  std::vector<float> scratch;
  for (const auto& [name, m] : modules) {
    Tensor table;
    if (const auto* e = dynamic_cast<const Embedding*>(m)) table = e->weight;
    if (const auto* p = dynamic_cast<const PositionalEmbedding*>(m)) table = p->weight;
    if (table.defined()) {
      scratch.resize(static_cast<size_t>(table.numel()));
      gen.normal(scratch.data(), table.numel(), 0.0f, 1.0f);
    } else if (const auto* l = dynamic_cast<const Linear*>(m)) {
      const int64_t n = l->weight.numel() + (l->bias.defined() ? l->bias.numel() : 0);
      scratch.resize(static_cast<size_t>(n));
      gen.uniform(scratch.data(), n, -1.0f, 1.0f);
    }
  }
  // 2. _init_weights, module by module (modules() order).
  auto draw = [&](const Tensor& t, float std) { gen.normal(t.data(), t.numel(), 0.0f, std); };
  auto fill = [](const Tensor& t, float value) {
    if (t.defined()) std::fill(t.data(), t.data() + t.numel(), value);
  };
  for (const auto& [name, m] : modules) {
    if (const auto* e = dynamic_cast<const Embedding*>(m)) draw(e->weight, 0.02f);
    if (const auto* p = dynamic_cast<const PositionalEmbedding*>(m)) draw(p->weight, 0.02f);
    if (const auto* l = dynamic_cast<const Linear*>(m)) {
      draw(l->weight, 0.02f);  // a tied lm_head draws into wte's tensor: this draw is the one that stays
      fill(l->bias, 0.0f);
    }
    if (const auto* n = dynamic_cast<const LayerNorm*>(m)) {
      fill(n->weight, 1.0f);
      fill(n->bias, 0.0f);
    }
  }
  // 3. The scaled residual projections, in named_parameters order, found by
  // name as nanoGPT finds them (pn.endswith('c_proj.weight')).
  const auto proj_std =
      static_cast<float>(0.02 / std::sqrt(2.0 * static_cast<double>(model.config().n_layer)));  // Python's double
  for (const auto& [name, p] : model.named_parameters())
    if (name.ends_with("c_proj.weight")) draw(p, proj_std);
}

}  // namespace ember
