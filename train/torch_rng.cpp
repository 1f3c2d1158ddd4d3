// TorchGenerator and init_like_nanogpt: PyTorch 1.13's CPU sampling rules
// over std::mt19937 (the same engine and seeding as torch's CPU generator).
#include "train/torch_rng.h"

#include <cmath>
#include <map>
#include <numbers>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace ember {
namespace {

// uniform_real_distribution<float>(0, 1) of one draw: the low 24 bits / 2^24.
double unit_uniform(std::mt19937& engine) {
  return static_cast<double>(engine() & ((1u << 24) - 1)) * (1.0 / (1u << 24));
}

// PyTorch's normal_fill_16: Box-Muller on 16 uniforms in place, pairing j and j + 8.
void box_muller_16(float* d, float mean, float std) {
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - d[j], u2 = d[j + 8];  // u1 in (0, 1] for the log
    const float radius = std::sqrt(-2.0f * std::log(u1));
    const float theta = static_cast<float>(2.0 * std::numbers::pi * u2);
    d[j] = radius * std::cos(theta) * std + mean;
    d[j + 8] = radius * std::sin(theta) * std + mean;
  }
}

}  // namespace

TorchGenerator::TorchGenerator(uint64_t seed) : engine_(static_cast<uint32_t>(seed)) {
  EMBER_CHECK(seed < (uint64_t{1} << 32), "TorchGenerator: seed {} must be below 2^32", seed);
}

int64_t TorchGenerator::randint(int64_t high) {
  EMBER_CHECK(high > 0 && high < (int64_t{1} << 32), "TorchGenerator::randint: high {} must be in (0, 2^32)", high);
  return static_cast<int64_t>(engine_() % static_cast<uint64_t>(high));
}

void TorchGenerator::uniform(float* x, int64_t n, float from, float to) {
  for (int64_t i = 0; i < n; ++i)
    x[i] = static_cast<float>(unit_uniform(engine_) * (static_cast<double>(to) - from) + from);
}

void TorchGenerator::normal(float* x, int64_t n, float mean, float std) {
  EMBER_CHECK(n >= 16, "TorchGenerator::normal: needs at least 16 values, got {}", n);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(unit_uniform(engine_));
  for (int64_t i = 0; i + 16 <= n; i += 16) box_muller_16(x + i, mean, std);
  if (n % 16 != 0) {
    float* tail = x + n - 16;
    for (int i = 0; i < 16; ++i) tail[i] = static_cast<float>(unit_uniform(engine_));
    box_muller_16(tail, mean, std);
  }
}

std::string TorchGenerator::state() const {
  std::ostringstream out;
  out << engine_;
  return out.str();
}

void TorchGenerator::set_state(const std::string& s) {
  std::istringstream in(s);
  std::mt19937 engine;
  in >> engine;
  EMBER_CHECK(!in.fail(), "TorchGenerator: not an mt19937 state");
  engine_ = engine;
}

void init_like_nanogpt(GPT& model, TorchGenerator& gen) {
  const GPTConfig& c = model.config();
  const int64_t V = c.vocab_size, C = c.n_embd, L = c.n_layer;
  const bool wpe = c.pos == PosKind::Learned;
  std::map<std::string, Tensor> p;
  for (const auto& [name, t] : model.state_dict()) p[name] = t;

  // 1. Construction, in nanoGPT's order: wte, wpe, per block c_attn, attn.c_proj,
  // c_fc, mlp.c_proj, then lm_head. nn.Embedding draws normal(0, 1); nn.Linear
  // draws uniform weights (kaiming), then uniform biases. Only the count matters.
  std::vector<float> scratch;
  auto embedding_draws = [&](int64_t rows) {
    scratch.resize(static_cast<size_t>(rows * C));
    gen.normal(scratch.data(), rows * C, 0.0f, 1.0f);
  };
  auto linear_draws = [&](int64_t in, int64_t out, bool bias) {
    scratch.resize(static_cast<size_t>(in * out + out));
    gen.uniform(scratch.data(), in * out + (bias ? out : 0), -1.0f, 1.0f);
  };
  embedding_draws(V);
  if (wpe) embedding_draws(c.block_size);
  for (int64_t l = 0; l < L; ++l) {
    linear_draws(C, 3 * C, c.bias);
    linear_draws(C, C, c.bias);
    linear_draws(C, 4 * C, c.bias);
    linear_draws(4 * C, C, c.bias);
  }
  linear_draws(C, V, false);

  // 2. nanoGPT's _init_weights over the modules in the same order.
  auto draw_into = [&](const std::string& name, float std) {
    Tensor& t = p.at(name);
    gen.normal(t.data(), t.numel(), 0.0f, std);
  };
  auto fill = [&](const std::string& name, float value) {
    if (!p.count(name)) return;  // bias=False: no such parameter
    Tensor& t = p.at(name);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = value;
  };
  draw_into("transformer.wte.weight", 0.02f);
  if (wpe) draw_into("transformer.wpe.weight", 0.02f);
  for (int64_t l = 0; l < L; ++l) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    for (const char* ln : {"ln_1.", "ln_2."}) {
      fill(h + ln + "weight", 1.0f);
      fill(h + ln + "bias", 0.0f);
    }
    for (const char* lin : {"attn.c_attn.", "attn.c_proj.", "mlp.c_fc.", "mlp.c_proj."}) {
      draw_into(h + lin + "weight", 0.02f);
      fill(h + lin + "bias", 0.0f);
    }
  }
  fill("transformer.ln_f.weight", 1.0f);
  fill("transformer.ln_f.bias", 0.0f);
  draw_into("lm_head.weight", 0.02f);  // with tied weights, this is wte's final value

  // 3. The scaled residual projections, in named_parameters order.
  const auto proj_std =
      static_cast<float>(0.02 / std::sqrt(2.0 * static_cast<double>(L)));  // Python's double, then float
  for (int64_t l = 0; l < L; ++l)
    for (const char* proj : {"attn.c_proj.weight", "mlp.c_proj.weight"})
      draw_into("transformer.h." + std::to_string(l) + "." + proj, proj_std);
}

}  // namespace ember
