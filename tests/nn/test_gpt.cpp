// Modules and the GPT: names, state dicts, modes, per-layer gradients, the
// fused attention against the op-by-op one, forward shapes for every
// positional kind, and that a tiny GPT of each kind can memorise a batch.
#include <set>

#include "nn/gpt.h"
#include "tests/core/test_helpers.h"
#include "tests/nn/tiny_gpt.h"
#include "train/optim.h"

using namespace ember;
using ember::testing::leaf;

namespace {

GPTConfig tiny(PosKind pos, bool bias = true, bool tie = true) {
  GPTConfig c = ember::testing::tiny_gpt(11);
  c.bias = bias;
  c.tie_weights = tie;
  c.pos = pos;
  return c;
}

IntTensor random_ids(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> v(static_cast<size_t>(B * T));
  for (auto& x : v) x = g.randint(0, V);
  return IntTensor({B, T}, v);
}

std::vector<std::string> names_of(const std::vector<NamedTensor>& v) {
  std::vector<std::string> out;
  for (const auto& [n, t] : v) out.push_back(n);
  return out;
}

const PosKind kAllPos[] = {PosKind::Learned, PosKind::Sinusoidal, PosKind::Rope, PosKind::Alibi, PosKind::None};

}  // namespace

TEST_CASE("GPT: parameter names are exactly nanoGPT's state-dict keys") {
  GPTConfig c = tiny(PosKind::Learned);
  c.n_layer = 1;
  GPT model(c);
  const std::vector<std::string> expected{"transformer.wte.weight",
                                          "transformer.wpe.weight",
                                          "transformer.h.0.ln_1.weight",
                                          "transformer.h.0.ln_1.bias",
                                          "transformer.h.0.attn.c_attn.weight",
                                          "transformer.h.0.attn.c_attn.bias",
                                          "transformer.h.0.attn.c_proj.weight",
                                          "transformer.h.0.attn.c_proj.bias",
                                          "transformer.h.0.ln_2.weight",
                                          "transformer.h.0.ln_2.bias",
                                          "transformer.h.0.mlp.c_fc.weight",
                                          "transformer.h.0.mlp.c_fc.bias",
                                          "transformer.h.0.mlp.c_proj.weight",
                                          "transformer.h.0.mlp.c_proj.bias",
                                          "transformer.ln_f.weight",
                                          "transformer.ln_f.bias",
                                          "lm_head.weight"};
  CHECK(names_of(model.state_dict()) == expected);
  // Tied: lm_head.weight is the same tensor, listed once among the parameters.
  const auto params = names_of(model.named_parameters());
  CHECK(params.size() == expected.size() - 1);
  CHECK(std::find(params.begin(), params.end(), "lm_head.weight") == params.end());
  CHECK(model.lm_head->weight.is_same(model.transformer->wte->weight));
  CHECK(model.transformer->wpe->weight.name() == "transformer.wpe.weight");
  // Without bias or tying, with rope: no .bias keys, no wpe, lm_head separate.
  GPT plain(tiny(PosKind::Rope, false, false));
  std::set<std::string> keys;
  for (const auto& n : names_of(plain.named_parameters())) keys.insert(n);
  CHECK(keys.count("lm_head.weight") == 1);
  CHECK(keys.count("transformer.wpe.weight") == 0);
  for (const auto& k : keys) CHECK(k.find(".bias") == std::string::npos);
}

TEST_CASE("GPT: parameter count follows the config") {
  const GPTConfig c = tiny(PosKind::Learned);
  GPT model(c);
  const int64_t C = c.n_embd, V = c.vocab_size;
  const int64_t per_block = 2 * 2 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C);
  CHECK(model.num_parameters() == V * C + c.block_size * C + c.n_layer * per_block + 2 * C);
}

TEST_CASE("Module: state_dict round-trips; bad keys and shapes are named in errors") {
  GPT a(tiny(PosKind::Learned), 1), b(tiny(PosKind::Learned), 2);
  const IntTensor ids = random_ids(2, 8, 11, 3);
  std::map<std::string, Tensor> sd;
  for (auto& [n, t] : a.state_dict()) sd[n] = t.clone();
  CHECK(a.forward(ids).to_vector() != b.forward(ids).to_vector());
  b.load_state_dict(sd);
  CHECK(a.forward(ids).to_vector() == b.forward(ids).to_vector());
  auto missing = sd;
  missing.erase("transformer.ln_f.bias");
  CHECK_THROWS_WITH_AS(b.load_state_dict(missing),
                       "load_state_dict: missing key 'transformer.ln_f.bias' (expected shape [16])", Error);
  auto extra = sd;
  extra["transformer.h.9.ln_1.weight"] = zeros({16});
  CHECK_THROWS_WITH_AS(b.load_state_dict(extra),
                       "load_state_dict: unexpected key 'transformer.h.9.ln_1.weight' (shape [16]) is not in the model",
                       Error);
  auto wrong = sd;
  wrong["transformer.wpe.weight"] = zeros({4, 16});
  CHECK_THROWS_WITH_AS(b.load_state_dict(wrong),
                       "load_state_dict: key 'transformer.wpe.weight' has shape [4, 16] but the model expects [8, 16]",
                       Error);
}

TEST_CASE("Module: train/eval reach every child; zero_grad clears every gradient") {
  GPT model(tiny(PosKind::Learned));
  model.eval();
  CHECK_FALSE(model.transformer->h->operator[](1).attn->attn_drop->is_training());
  model.train();
  CHECK(model.transformer->h->operator[](1).mlp->drop->is_training());
  const IntTensor ids = random_ids(2, 8, 11, 4);
  model.loss(model.forward(ids), ids).backward();
  for (const Tensor& p : model.parameters()) CHECK(p.grad().defined());
  model.zero_grad();
  for (const Tensor& p : model.parameters()) CHECK_FALSE(p.grad().defined());
}

TEST_CASE("GPT: forward maps ids [B,T] to logits [B,T,V] for every positional kind") {
  for (PosKind pos : kAllPos) {
    CAPTURE(pos_kind_name(pos));
    GPT model(tiny(pos));
    CHECK(model.forward(random_ids(3, 5, 11, 5)).shape() == Shape{3, 5, 11});
    CHECK(model.forward(random_ids(1, 8, 11, 6)).shape() == Shape{1, 8, 11});
  }
  GPT model(tiny(PosKind::Learned));
  CHECK_THROWS_WITH_AS(model.forward(random_ids(1, 9, 11, 7)), "GPT: sequence length 9 exceeds block_size 8", Error);
  CHECK_THROWS_WITH_AS(model.forward(IntTensor({1, 2}, {0, 11})),
                       doctest::Contains("embedding: id 11 at position 1 is out of range"), Error);
  GPTConfig bad = tiny(PosKind::Learned);
  bad.n_head = 3;
  CHECK_THROWS_WITH_AS(GPT{bad}, "GPT config: n_embd 16 is not divisible by n_head 3", Error);
  CHECK_THROWS_WITH_AS(parse_pos_kind("absolute"),
                       "pos: unknown positional encoding 'absolute' (choose learned, sinusoidal, rope, alibi or none)",
                       Error);
}

TEST_CASE("attention: the fused op equals the op-by-op computation, forward and backward") {
  // The fused op works in blocks of 24 query rows (or key columns): T = 5 is
  // one partial block, 24 exactly one, 25 and 30 a full one and a partial
  // one, 61 three; gradcheck runs on the first and on two blocks. Forward
  // keeps P for backward while H T <= 2 C (T = 5 here); at the longer T
  // backward recomputes it: both paths are checked.
  const int64_t B = 2, H = 2, C = 8;
  for (int64_t T : {5, 24, 25, 30, 61})
    for (bool alibi : {false, true}) {
      CAPTURE(T);
      CAPTURE(alibi);
      const Tensor slopes = alibi ? tensor({H}, alibi_slopes(H)) : Tensor();
      Tensor a = leaf({B, T, 3 * C}, 8), b = a.detach().clone();
      b.requires_grad_();
      const Tensor ya = causal_attention(a, H, slopes), yb = attention_unfused(b, H, slopes, 0.0f, false);
      CHECK(ya.grad_fn()->saved.size() == (H * T <= 2 * C ? 1u : 0u));
      ember::testing::check_values(ya, yb.to_vector(), 1e-5f);  // same maths, different summation order
      const Tensor g = randn({B, T, C});
      ya.backward(g);
      yb.backward(g);
      ember::testing::check_values(a.grad(), b.grad().to_vector(), 1e-5f);
      if (T == 5 || T == 30)
        CHECK_GRADCHECK(
            "causal_attention", [&](const std::vector<Tensor>& v) { return causal_attention(v[0], H, slopes); },
            std::vector<Tensor>{a});
    }
  CHECK_THROWS_WITH_AS(causal_attention(zeros({2, 3, 7}), 2), "causal_attention: qkv must be [B, T, 3C], got [2, 3, 7]",
                       Error);
}

TEST_CASE("layers: every layer's backward matches finite differences at small sizes") {
  Generator gen(9);
  Linear lin(4, 3, true, gen);
  CHECK_GRADCHECK(
      "Linear", [&](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); },
      (std::vector<Tensor>{leaf({2, 4}, 1), lin.weight, lin.bias}));
  LayerNorm ln(6, true);
  CHECK_GRADCHECK(
      "LayerNorm", [&](const std::vector<Tensor>& v) { return layer_norm(v[0], v[1], v[2]); },
      (std::vector<Tensor>{leaf({2, 6}, 2), leaf({6}, 3), leaf({6}, 4)}));
  MLP mlp(4, true, 0.0f, 0.02f, gen);
  CHECK_GRADCHECK(
      "MLP", [&](const std::vector<Tensor>& v) { return mlp.forward(v[0]); }, std::vector<Tensor>{leaf({2, 3, 4}, 5)});
  for (PosKind pos : kAllPos) {
    CAPTURE(pos_kind_name(pos));
    GPTConfig c = tiny(pos);
    c.n_embd = 8;
    Block block(c, gen);
    CHECK_GRADCHECK(
        "Block", [&](const std::vector<Tensor>& v) { return block.forward(v[0]); },
        std::vector<Tensor>{leaf({2, 4, 8}, 6)});
  }
}

TEST_CASE("GPT: a tiny model of every positional kind memorises one batch (loss < 0.1)") {
  for (PosKind pos : kAllPos) {
    CAPTURE(pos_kind_name(pos));
    GPT model(tiny(pos), 11);
    const IntTensor x = random_ids(4, 8, 11, 12), y = random_ids(4, 8, 11, 13);
    AdamW opt(decay_groups(model.named_parameters(), 0.0), 1e-2);
    float loss = 0.0f;
    for (int step = 0; step < 300 && !(loss < 0.05f && step > 0); ++step) {
      opt.zero_grad();
      Tensor l = model.loss(model.forward(x), y);
      l.backward();
      opt.step();
      loss = l.item();
    }
    CHECK(loss < 0.1f);
  }
}

TEST_CASE("GPT::replica: shares the weights' storage, keeps its own gradients; every Dropout draws from the model") {
  GPTConfig c = ember::testing::tiny_gpt(13, 1);
  c.dropout = 0.2f;
  GPT model(c, 3);
  const std::unique_ptr<GPT> r = model.replica();
  const auto mine = model.state_dict(), theirs = r->state_dict();
  REQUIRE(mine.size() == theirs.size());
  for (size_t i = 0; i < mine.size(); ++i) {
    CAPTURE(mine[i].first);
    CHECK(mine[i].second.data() == theirs[i].second.data());  // the same memory
    CHECK_FALSE(mine[i].second.is_same(theirs[i].second));    // but another tensor
    CHECK(theirs[i].second.name() == mine[i].second.name());  // tied: the first name
  }
  CHECK(r->lm_head->weight.is_same(r->transformer->wte->weight));  // still tied
  model.transformer->wte->weight.data()[3] = 42.0f;                // a write shows through
  CHECK(r->transformer->wte->weight.data()[3] == 42.0f);
  const IntTensor x({1, 8}, {1, 2, 3, 4, 5, 6, 7, 8}), y({1, 8}, {2, 3, 4, 5, 6, 7, 8, 9});
  r->loss(r->forward(x), y).backward();
  CHECK(r->transformer->wte->weight.grad().defined());
  CHECK_FALSE(model.transformer->wte->weight.grad().defined());  // gradients stay apart
  // Every Dropout module draws from its own model's generator.
  int dropouts = 0;
  for (const auto& [name, m] : model.named_modules())
    if (const auto* d = dynamic_cast<const Dropout*>(m)) {
      CHECK(d->generator == &model.dropout_generator());
      ++dropouts;
    }
  CHECK(dropouts == 1 + 3 * c.n_layer);  // transformer.drop; attn_dropout, resid_dropout, mlp.drop per block
  for (const auto& [name, m] : r->named_modules())
    if (const auto* d = dynamic_cast<const Dropout*>(m)) CHECK(d->generator == &r->dropout_generator());
  // A module of another structure cannot share.
  GPT other(ember::testing::tiny_gpt(13, 2), 3);
  CHECK_THROWS_WITH_AS(other.share_parameters_with(model), doctest::Contains("parameters here but"), Error);
}

TEST_CASE("Tensor::set_: a leaf views another tensor's storage; an op's output cannot") {
  Tensor a = tensor({2, 2}, {1, 2, 3, 4}).requires_grad_();
  const Tensor b = tensor({3}, {7, 8, 9});
  a.set_name("a").set_(b);
  CHECK(a.shape() == Shape{3});
  CHECK(a.to_vector() == std::vector<float>{7, 8, 9});
  CHECK(a.requires_grad());
  CHECK(a.name() == "a");
  b.data()[0] = 5.0f;
  CHECK(a.at({0}) == 5.0f);
  Tensor c = mul(a, 2.0f);
  CHECK_THROWS_WITH_AS(c.set_(b), doctest::Contains("only a leaf can view another tensor's storage"), Error);
}
