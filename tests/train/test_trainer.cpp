// Data, checkpoints, resume and sampling: y is x shifted by one, a saved model
// gives identical logits, a resumed run repeats an uninterrupted one to the
// last bit, seeded sampling is deterministic and top-k 1 is greedy.
#include <filesystem>
#include <fstream>

#include "tests/core/test_helpers.h"
#include "tests/nn/tiny_gpt.h"
#include "tests/train/temp_dir.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/default_corpus.h"
#include "train/evaluate.h"
#include "train/safetensors.h"
#include "train/trainer.h"

using namespace ember;
namespace fs = std::filesystem;

namespace {

// A fresh empty directory under the system temp dir, removed at scope exit.
using ember::testing::TempDir;

TrainConfig tiny_run(const std::string& out, int64_t max_iters) {
  TrainConfig c;
  c.out = out;
  c.model.n_layer = 1;
  c.model.n_head = 2;
  c.model.n_embd = 16;
  c.model.block_size = 16;
  c.model.dropout = 0.1f;  // exercises the dropout generator in resume
  c.batch_size = 4;
  c.max_iters = max_iters;
  c.lr_decay_iters = 12;
  c.warmup_iters = 2;
  c.eval_interval = 3;
  c.eval_iters = 2;
  c.log_interval = 100;
  c.quiet = true;
  return c;
}

}  // namespace

TEST_CASE("data: windows have y equal to x shifted by one, reproducibly from a seed") {
  std::vector<int32_t> data(100);
  for (int i = 0; i < 100; ++i) data[i] = i;
  Generator g1(5), g2(5);
  const Batch a = sample_batch(data, 4, 8, g1), b = sample_batch(data, 4, 8, g2);
  CHECK(a.x.data == b.x.data);
  CHECK(a.x.shape == Shape{4, 8});
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t t = 0; t < 8; ++t) {
      if (t + 1 < 8) CHECK(a.y.data[r * 8 + t] == a.x.data[r * 8 + t + 1]);
      CHECK(a.y.data[r * 8 + t] == a.x.data[r * 8 + t] + 1);  // the data is 0..99, so y = x + 1
    }
  const std::vector<Batch> seq = sequential_batches(data, 5, 8);  // 99 / 8 = 12 windows
  CHECK(seq.size() == 3);
  CHECK(seq[2].x.shape == Shape{2, 8});
  CHECK(seq[1].x.data[0] == 40);
  const TokenSplit split = split_tokens(data);
  CHECK(split.train.size() == 90);
  CHECK(split.val[0] == 90);
  CHECK_THROWS_WITH_AS(sample_batch(std::vector<int32_t>(8), 1, 8, g1),
                       "data: 8 tokens are too few for one window of block_size + 1 = 9 tokens", Error);
  CHECK_THROWS_WITH_AS(read_text_file("/nonexistent/ember.txt"), "data: file '/nonexistent/ember.txt' does not exist",
                       Error);
}

TEST_CASE("default corpus: deterministic text with the promised size") {
  const std::string a = default_corpus(5000, 3), b = default_corpus(5000, 3);
  CHECK(a == b);
  CHECK(a.size() >= 5000);
  CHECK(a.size() < 5200);
  CHECK(default_corpus(5000, 4) != a);
  CHECK(a.find(" chased the ") != std::string::npos);
}

TEST_CASE("checkpoint: save then load gives identical logits and the same tokenizer") {
  TempDir dir("ckpt");
  const TrainResult r = train(tiny_run(dir.str(), 3));
  CHECK(r.checkpoint == dir.str("ckpt-000003"));
  CHECK(fs::exists(dir.str("ckpt-000003/model.safetensors")));
  CHECK(fs::exists(dir.str("ckpt-000003/optimizer.safetensors")));
  LoadedModel a = load_model(dir.str()), b = load_model(dir.str());
  const IntTensor ids({2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  a.model->eval();
  b.model->eval();
  CHECK(a.model->forward(ids).to_vector() == b.model->forward(ids).to_vector());
  CHECK(a.tokenizer->encode("the fox") == b.tokenizer->encode("the fox"));
  CHECK(r.losses.size() == 3);
  // A config.json that is not JSON gives one clear error naming the file.
  std::ofstream(dir.str("ckpt-000003/config.json")) << "{ not json";
  CHECK_THROWS_WITH_AS(load_model(dir.str()), doctest::Contains("config.json' is not valid JSON"), Error);
}

TEST_CASE("resume: losses after resuming equal an uninterrupted run's, to the last bit") {
  // Stops at step 6 (an eval step: eval_interval is 3) and at step 5 (off the
  // schedule: the final estimate there must not disturb the training draws).
  for (const char* rng : {"nanogpt", "ember"})
    for (int64_t stop : {6, 5}) {
      CAPTURE(rng);
      CAPTURE(stop);
      TempDir a("resume_a"), b("resume_b");
      TrainConfig full_cfg = tiny_run(a.str(), 12), half_cfg = tiny_run(b.str(), stop);
      full_cfg.rng = half_cfg.rng = parse_rng_kind(rng);
      const TrainResult full = train(full_cfg);
      train(half_cfg);  // stops (and checkpoints) at step `stop`
      const TrainResult rest = resume(b.str(), {.max_iters = 12, .quiet = true});
      REQUIRE(full.losses.size() == 12);
      REQUIRE(static_cast<int64_t>(rest.losses.size()) == 12 - stop);
      for (int64_t i = 0; i < 12 - stop; ++i) CHECK(rest.losses[i] == full.losses[stop + i]);  // exact equality
      CHECK(rest.val_loss == full.val_loss);
    }
}

TEST_CASE("train: rng nanogpt replays PyTorch running nanoGPT's loop on the same text and seed") {
  // tests/reference/data/trainer_nanogpt.safetensors: generate.py's
  // trainer_reference(), nanoGPT train.py's order of draws on TRAIN_TEXT with
  // TRAIN_RUN's settings; the same text and settings here.
  std::string text;
  for (int r = 0; r < 6; ++r)
    for (const char* line : {"the fox saw the hen by the barn.\n", "the owl saw the cat by the well.\n",
                             "the hen saw the fox by the hill.\n", "the cat saw the owl by the gate.\n",
                             "the dog saw the cow by the pond.\n", "the cow saw the dog by the mill.\n"})
      text += line;
  TempDir dir("nanogpt_replay");
  std::ofstream(dir.str("text.txt")) << text;
  TrainConfig c;
  c.data = dir.str("text.txt");
  c.out = dir.str("out");
  c.model.n_layer = 1;
  c.model.n_head = 2;
  c.model.n_embd = 16;
  c.model.block_size = 16;
  c.model.dropout = 0.0f;
  c.batch_size = 4;
  c.max_iters = 6;
  c.eval_interval = 3;
  c.eval_iters = 2;
  c.lr = 1e-2;
  c.min_lr = 1e-3;
  c.warmup_iters = 2;
  c.lr_decay_iters = 6;
  c.seed = 1337;
  c.rng = RngKind::Nanogpt;
  c.quiet = true;
  const TrainResult r = train(c);
  const SafetensorsFile want = load_safetensors("tests/reference/data/trainer_nanogpt.safetensors");
  // Same maths in float32, summed in other orders, over 6 steps: the losses
  // agree to float rounding carried through a few AdamW steps; 1e-5
  // relative is ~100 ulps, while one different batch or init moves them by 1e-2.
  const Tensor& losses = want.tensor("losses");
  REQUIRE(static_cast<int64_t>(r.losses.size()) == losses.numel());
  for (int64_t i = 0; i < losses.numel(); ++i) CHECK(r.losses[i] == doctest::Approx(losses.data()[i]).epsilon(1e-5));
  // The train and val estimates at steps 0, 3 and 6, from metrics.jsonl.
  const Tensor& est = want.tensor("estimates");
  std::ifstream metrics(dir.str("out/metrics.jsonl"));
  int64_t k = 0;
  for (std::string line; std::getline(metrics, line);) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("val_loss")) continue;
    REQUIRE(k < est.size(0));
    CHECK(j.at("train_loss_estimate").get<double>() == doctest::Approx(est.data()[2 * k]).epsilon(1e-5));
    CHECK(j.at("val_loss").get<double>() == doctest::Approx(est.data()[2 * k + 1]).epsilon(1e-5));
    ++k;
  }
  CHECK(k == est.size(0));
}

TEST_CASE("resume: a torn checkpoint (files from different steps) is refused") {
  TempDir a("torn");
  train(tiny_run(a.str(), 3));
  const std::string saved = a.str("ckpt-000003/trainer.json");
  std::ifstream in(saved);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  text.replace(text.find("\"step\": 3"), 9, "\"step\": 4");
  std::ofstream(saved) << text;
  CHECK_THROWS_WITH_AS(resume(a.str(), {.max_iters = 6, .quiet = true}), doctest::Contains("is torn"), Error);
}

TEST_CASE("sample: seeded sampling is deterministic and top-k 1 is greedy") {
  const GPTConfig c = ember::testing::tiny_gpt(13, 1);
  GPT model(c, 3);
  Generator g1(9), g2(9), g3(10);
  const std::vector<int32_t> prompt{1, 2, 3};
  const auto s1 = generate(model, prompt, 20, 1.0, 0, g1), s2 = generate(model, prompt, 20, 1.0, 0, g2);
  CHECK(s1 == s2);
  CHECK(s1.size() == 23);
  CHECK(generate(model, prompt, 20, 1.0, 0, g3) != s1);
  // top_k = 1: each new token is the argmax of the logits given the context so far.
  Generator g4(11);
  const auto greedy = generate(model, prompt, 12, 0.7, 1, g4);
  for (size_t i = 3; i < greedy.size(); ++i) {
    const int64_t T = std::min<int64_t>(static_cast<int64_t>(i), 8);
    const IntTensor ctx(
        {1, T}, std::vector<int64_t>(greedy.begin() + static_cast<long>(i) - T, greedy.begin() + static_cast<long>(i)));
    const std::vector<float> logits = model.forward(ctx).narrow(1, T - 1, 1).to_vector();
    CHECK(greedy[i] == std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  CHECK_THROWS_WITH_AS(generate(model, prompt, 5, 0.0, 0, g1), "sample: temperature must be > 0, got 0", Error);
}

TEST_CASE("position_ablation: evaluates zeroed and shuffled tables, then restores the model") {
  const GPTConfig c = ember::testing::tiny_gpt(13, 1);
  GPT model(c, 4);
  // Scale the positional table up so that it matters to a random model.
  Tensor wpe = model.transformer->wpe->weight;
  for (int64_t i = 0; i < wpe.numel(); ++i) wpe.data()[i] *= 50.0f;
  const std::vector<float> before = wpe.to_vector();
  std::vector<int32_t> val(8 * 20 + 1);
  for (size_t i = 0; i < val.size(); ++i) val[i] = static_cast<int32_t>((i * 7) % 13);
  const PositionAblation a = position_ablation(model, val, 1, 10);
  CHECK(a.blocks == 10);
  CHECK(a.trained == doctest::Approx(sequential_loss(model, std::vector<int32_t>(val.begin(), val.begin() + 81))));
  CHECK(a.zeroed != a.trained);
  CHECK(a.shuffled != a.trained);
  CHECK(wpe.to_vector() == before);  // restored exactly
  GPTConfig rope = c;
  rope.pos = PosKind::Rope;
  GPT no_table(rope);
  CHECK_THROWS_WITH_AS(position_ablation(no_table, val, 1),
                       "ablation: the model has no learned positional table (pos is rope)", Error);
}

TEST_CASE("eval windows: every target is the next token, and gpt eval's loss is the mean over those windows") {
  std::vector<int32_t> data(61);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<int32_t>((i * 5 + 3) % 13);
  const int64_t T = 8;
  const std::vector<Batch> batches = sequential_batches(data, 3, T);  // (61 - 1) / 8 = 7 windows: 3 + 3 + 1
  REQUIRE(batches.size() == 3);
  int64_t window = 0;
  for (const Batch& b : batches)
    for (int64_t r = 0; r < b.x.size(0); ++r, ++window)
      for (int64_t t = 0; t < T; ++t) {
        CHECK(b.x.data[r * T + t] == data[window * T + t]);
        CHECK(b.y.data[r * T + t] == data[window * T + t + 1]);
      }
  CHECK(window == 7);
  // sequential_loss: the token-weighted mean of each window's loss, each computed on its own.
  GPT model(ember::testing::tiny_gpt(13, 1), 2);
  model.eval();
  double total = 0.0;
  for (int64_t w = 0; w < 7; ++w) {
    std::vector<int64_t> x(data.begin() + w * T, data.begin() + w * T + T);
    std::vector<int64_t> y(data.begin() + w * T + 1, data.begin() + w * T + T + 1);
    total += model.loss(model.forward(IntTensor({1, T}, x)), IntTensor({1, T}, y)).item();
  }
  CHECK(sequential_loss(model, data, 3) == doctest::Approx(total / 7).epsilon(1e-6));
  // Past one group of 64 batches it builds batches a group at a time, summing in
  // the same order as mean_loss over all of them at once: equal to the last bit,
  // from uint8 ids as from int32 ones.
  std::vector<int32_t> many(150 * T + 5);
  for (size_t i = 0; i < many.size(); ++i) many[i] = static_cast<int32_t>((i * 7 + i / 13) % 13);
  const auto held = std::make_shared<std::vector<uint8_t>>(many.begin(), many.end());
  const TokenArray narrow_ids(held, held->data(), static_cast<int64_t>(held->size()), 1);
  const double all_at_once = mean_loss(model, sequential_batches(many, 1, T));
  CHECK(sequential_loss(model, many, 1) == all_at_once);
  CHECK(sequential_loss(model, narrow_ids, 1) == all_at_once);
}

TEST_CASE("train: a step whose gradient norm overflows stops the run although its loss is finite") {
  // ln_f's gain at 1e25 keeps the logits (about 1e24) and the loss finite, but
  // the gradients that pass back through it are about 1e21 to 1e23, whose
  // squares overflow float: the norm is infinite, and clipping by it would zero
  // every gradient and go on as if nothing happened.
  TempDir d("overflow");
  TrainConfig c = tiny_run(d.str(), 3);
  c.model.dropout = 0.0f;
  train(c);
  const std::string weights = resolve_checkpoint(d.str()) + "/model.safetensors";
  SafetensorsFile f = load_safetensors(weights);
  Tensor& gain = f.tensors.at("transformer.ln_f.weight");
  std::fill(gain.data(), gain.data() + gain.numel(), 1e25f);
  save_safetensors(weights, f);
  try {
    resume(d.str(), {.max_iters = 5, .quiet = true});
    FAIL("the run went on past an infinite gradient norm");
  } catch (const Diverged& e) {
    const std::string msg = e.what();
    CAPTURE(msg);
    CHECK(msg.find("step 4") != std::string::npos);
    CHECK(msg.find("gradient norm inf") != std::string::npos);
    CHECK(msg.find("the loss is inf") == std::string::npos);
    CHECK(msg.find("the loss is nan") == std::string::npos);
    CHECK(msg.find("(lower --lr)") != std::string::npos);  // clipping is on: no advice to turn it on
  }
}
