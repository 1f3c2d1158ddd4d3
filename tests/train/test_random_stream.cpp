// TorchGenerator and init_like_nanogpt against PyTorch 1.13 itself:
// tests/reference/data/torch_rng.safetensors (written by generate.py) holds
// randint / uniform_ / normal_ values from torch.manual_seed(1337) and the
// state_dict of a tiny reference GPT built after torch.manual_seed(1234),
// followed by the next four randint draws (which pin the number of draws the
// constructor made).
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "nn/gpt.h"
#include "train/safetensors.h"
#include "train/random_stream.h"

using namespace ember;

namespace {

const SafetensorsFile& golden() {
  static const SafetensorsFile f = load_safetensors("tests/reference/data/torch_rng.safetensors");
  return f;
}

// Box-Muller through libm's float log/cos/sin here and Sleef's vector forms in
// PyTorch's AVX2 kernel: both within an ulp or two, so values agree to a few
// float32 ulps of their magnitude (|x| < 8 here): 2e-6 absolute.
constexpr float kNormalTol = 2e-6f;

}  // namespace

TEST_CASE("TorchGenerator: randint and uniform_ equal PyTorch's draws exactly") {
  TorchGenerator gen(1337);
  const IntTensor& ri = golden().ints("randint");
  for (int64_t i = 0; i < ri.numel(); ++i) CHECK(gen.randint(1000) == ri.data[i]);
  const Tensor& u = golden().tensor("uniform");
  float got[5];
  gen.uniform(got, 5, -0.5f, 0.25f);
  for (int i = 0; i < 5; ++i) CHECK(got[i] == u.data()[i]);
}

TEST_CASE("TorchGenerator: normal_ equals PyTorch's, with and without a partial last block") {
  TorchGenerator gen(1337);
  for (int i = 0; i < 12; ++i) gen.randint(1000);
  float skip[5];
  gen.uniform(skip, 5, 0.0f, 1.0f);
  for (const char* name : {"normal20", "normal37"}) {
    CAPTURE(name);
    const Tensor& want = golden().tensor(name);
    std::vector<float> got(static_cast<size_t>(want.numel()));
    if (std::string(name) == "normal20")
      gen.normal(got.data(), want.numel(), 0.1f, 2.0f);
    else
      gen.normal(got.data(), want.numel(), 0.0f, 1.0f);
    for (int64_t i = 0; i < want.numel(); ++i) CHECK(std::abs(got[i] - want.data()[i]) <= kNormalTol);
  }
  CHECK_THROWS_WITH_AS(gen.normal(skip, 5, 0.0f, 1.0f), "TorchGenerator::normal: needs at least 16 values, got 5",
                       Error);
}

TEST_CASE("init_like_nanogpt: the weights PyTorch builds, and the stream left where PyTorch leaves it") {
  for (bool tie : {true, false}) {
    CAPTURE(tie);
    const std::string tag = tie ? "tie1_bias1." : "tie0_bias0.";
    GPTConfig cfg;  // generate.py's TINY
    cfg.vocab_size = 17;
    cfg.block_size = 8;
    cfg.n_layer = 2;
    cfg.n_head = 2;
    cfg.n_embd = 32;
    cfg.dropout = 0.0f;
    cfg.bias = tie;
    cfg.tie_weights = tie;
    cfg.pos = PosKind::Learned;
    GPT model(cfg, 99);  // ember's own init first, all of it overwritten
    TorchGenerator gen(1234);
    init_like_nanogpt(model, gen);
    for (const auto& entry : model.state_dict()) {
      const std::string& name = entry.first;  // not a structured binding: clang < 16 cannot capture those
      const Tensor& t = entry.second;
      CAPTURE(name);
      const Tensor& want = golden().tensor(tag + name);
      REQUIRE(want.numel() == t.numel());
      float worst = 0.0f;
      for (int64_t i = 0; i < t.numel(); ++i) worst = std::max(worst, std::abs(t.data()[i] - want.data()[i]));
      CHECK(worst <= kNormalTol);
    }
    const IntTensor& after = golden().ints(tag + "after");
    for (int64_t i = 0; i < after.numel(); ++i) CHECK(gen.randint(1000) == after.data[i]);
  }
}

TEST_CASE("TorchGenerator: state round-trips, bad state and seeds are refused") {
  TorchGenerator a(7);
  a.randint(10);
  const std::string s = a.state();
  TorchGenerator b(8);
  b.set_state(s);
  for (int i = 0; i < 5; ++i) CHECK(a.randint(1 << 30) == b.randint(1 << 30));
  CHECK_THROWS_WITH_AS(b.set_state("not a state"), "TorchGenerator: not an mt19937 state", Error);
  CHECK_THROWS_WITH_AS(TorchGenerator(uint64_t{1} << 32), "TorchGenerator: seed 4294967296 must be below 2^32", Error);
}
