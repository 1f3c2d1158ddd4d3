// The trainer's wiring of one step, against a step made by hand here: the
// learning rate nanoGPT's schedule gives, the gradient clipped to grad_clip,
// decoupled weight decay on 2-D weights only, and AdamW's first update,
// w -= lr * g / (|g| + eps) (m and v are bias-corrected to g and g^2). And
// the logged learning rate of every step follows the warmup, cosine and
// floor phases written out from their formulas.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <string>

#include "tests/train/temp_dir.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/random_stream.h"
#include "train/trainer.h"

using namespace ember;
namespace fs = std::filesystem;

namespace {

using ember::testing::TempDir;

std::string small_text() {
  std::string text;
  for (int r = 0; r < 40; ++r) text += "the fox saw the hen by the barn. the owl saw the cat by the well.\n";
  return text;
}

TrainConfig step_config(const std::string& dir, double grad_clip) {
  TrainConfig c;
  c.data = dir + "/text.txt";
  c.out = dir + "/run";
  c.model.n_layer = 1;
  c.model.n_head = 2;
  c.model.n_embd = 16;
  c.model.block_size = 8;
  c.model.bias = true;
  c.batch_size = 4;
  c.max_iters = 1;
  c.eval_interval = 1;
  c.eval_iters = 1;
  c.lr = 0.1;
  c.warmup_iters = 0;
  c.lr_decay_iters = 10;
  c.weight_decay = 0.5;
  c.grad_clip = grad_clip;
  c.quiet = true;
  return c;
}

// The weights after trainer step 1, made by hand from the same start, each
// with the error the trainer's rounding may add to it.
struct Expected {
  std::vector<double> weight, tolerance;
};

std::map<std::string, Expected> hand_step(const TrainConfig& c) {
  const std::string text = small_text();
  const CharTokenizer tok = CharTokenizer::train(text);
  const TokenSplit split = split_tokens(tok.encode(text));
  GPTConfig mc = c.model;
  mc.vocab_size = tok.vocab_size();
  GPT model(mc, c.seed);
  TorchGenerator gen(c.seed);
  init_like_nanogpt(model, gen);
  // nanoGPT's first batch: drawn right after the model, before the step-0 estimate.
  std::vector<int64_t> starts;
  for (int64_t b = 0; b < c.batch_size; ++b)
    starts.push_back(gen.randint(static_cast<int64_t>(split.train.size()) - c.model.block_size));
  const Batch batch = batch_at(split.train, starts, c.model.block_size);
  model.loss(model.forward(batch.x), batch.y).backward();
  double sq = 0.0;
  for (const auto& [name, p] : model.named_parameters())
    for (float g : p.grad().to_vector()) sq += static_cast<double>(g) * g;
  const double norm = std::sqrt(sq);
  const double clip = c.grad_clip > 0 && c.grad_clip / (norm + 1e-6) < 1 ? c.grad_clip / (norm + 1e-6) : 1.0;
  const double lr = c.lr;  // warmup 0: step 0 runs at the peak rate
  std::map<std::string, Expected> out;
  for (const auto& [name, p] : model.named_parameters()) {
    const std::vector<float> w = p.to_vector(), g = p.grad().to_vector();
    double gmax = 0.0;
    for (float x : g) gmax = std::max(gmax, std::abs(static_cast<double>(x)) * clip);
    Expected& e = out[name];
    for (size_t i = 0; i < w.size(); ++i) {
      double x = w[i];
      if (p.dim() >= 2) x *= 1.0 - lr * c.weight_decay;
      const double gc = g[i] * clip;
      e.weight.push_back(x - lr * gc / (std::abs(gc) + 1e-8));
      // The trainer sums the gradient over two threads' slices in float32,
      // which moves an element by up to ~1e-6 of its tensor's largest (1e-5
      // allowed). The update u = lr g / (|g| + eps) has du/dg = lr eps /
      // (|g| + eps)^2: negligible for large g, up to the whole update (2 lr)
      // where g is rounding noise (c_attn's key bias has zero gradient in
      // exact arithmetic). Plus float32 rounding of w.
      const double eps = 1e-8, dg = 1e-5 * gmax;
      e.tolerance.push_back(1e-7 + lr * std::min(2.0, eps * dg / ((std::abs(gc) + eps) * (std::abs(gc) + eps))));
    }
  }
  return out;
}

void check_step(double grad_clip) {
  TempDir dir("wiring");
  std::ofstream(dir.str("text.txt")) << small_text();
  const TrainConfig c = step_config(dir.str(), grad_clip);
  train(c);
  const LoadedModel trained = load_model(c.out);
  const auto want = hand_step(c);
  size_t loose = 0, total = 0;
  for (const auto& entry : trained.model->named_parameters()) {
    const std::string& name = entry.first;  // not a structured binding: clang < 16 cannot capture those
    const Tensor& p = entry.second;
    CAPTURE(name);
    const std::vector<float> got = p.to_vector();
    const Expected& e = want.at(name);
    REQUIRE(got.size() == e.weight.size());
    size_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      bad += std::abs(got[i] - e.weight[i]) > e.tolerance[i];
      loose += e.tolerance[i] > 0.1 * 0.1;  // a tenth of lr: such an element tells little
    }
    total += got.size();
    CHECK(bad == 0);
  }
  CHECK(loose * 20 < total);  // the wide bounds stay the exception (the key bias, 16 elements)
}

}  // namespace

TEST_CASE("trainer: step 1 is AdamW's first update at the scheduled rate with decay on 2-D weights, unclipped") {
  check_step(0.0);  // clipping off
  check_step(1e9);  // a bound far above the norm: the same step
}

TEST_CASE("trainer: step 1 uses the gradient clipped to grad_clip") {
  // A bound so small that the clipped gradients are of the order of Adam's
  // eps, where the update depends on their size: unclipped (or clipped to
  // another bound) it would be about lr per element instead.
  check_step(1e-6);
}

TEST_CASE("trainer: the logged learning rate follows warmup, cosine decay and the floor step by step") {
  TempDir dir("schedule");
  std::ofstream(dir.str("text.txt")) << small_text();
  TrainConfig c = step_config(dir.str(), 1.0);
  c.max_iters = 14;
  c.warmup_iters = 3;
  c.lr_decay_iters = 10;
  c.lr = 0.01;
  c.min_lr = 0.001;
  c.log_interval = 1;
  c.eval_interval = 100;
  train(c);
  std::ifstream metrics(c.out + "/metrics.jsonl");
  int64_t checked = 0;
  for (std::string line; std::getline(metrics, line);) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("lr")) continue;
    const int64_t it = j.at("step").get<int64_t>() - 1;  // the line after step s logs the rate step s - 1 used
    double want;
    if (it < 3)
      want = 0.01 * (it + 1) / 4.0;  // linear warmup, nanoGPT's (it + 1) / (warmup + 1)
    else if (it > 10)
      want = 0.001;
    else
      want = 0.001 + 0.5 * (1.0 + std::cos(std::numbers::pi * (it - 3) / 7.0)) * (0.01 - 0.001);
    CAPTURE(it);
    CHECK(j.at("lr").get<double>() == doctest::Approx(want).epsilon(1e-12));
    ++checked;
  }
  CHECK(checked == 14);
}
