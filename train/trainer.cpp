// The training loop: data, model, optimizer, schedule, evaluation, logging,
// checkpoints. Every random draw comes from seeded generators whose state is
// checkpointed, so a resumed run repeats an uninterrupted one exactly.
#include "train/trainer.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include "core/error.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/data_parallel.h"
#include "train/default_corpus.h"
#include "train/evaluate.h"
#include "train/optim.h"
#include "train/tokenizer.h"
#include "train/torch_rng.h"

namespace ember {
namespace {

using Clock = std::chrono::steady_clock;

struct Run {
  TrainConfig cfg;
  std::unique_ptr<Tokenizer> tokenizer;
  TokenSplit data;
  std::unique_ptr<GPT> model;
  std::unique_ptr<AdamW> optimizer;
  std::unique_ptr<DataParallel> parallel;
  std::vector<Tensor> params;  // the model's parameters, listed once (clipping runs every step)
  Generator data_gen;
  int64_t step = 0;
  // rng "nanogpt": PyTorch's stream, and the starts of the batch it drew for the next step.
  std::unique_ptr<TorchGenerator> torch_gen;
  std::vector<int64_t> next_starts;
};

// nanoGPT's get_batch draws: B starts from torch.randint(len(data) - T, (B,)).
std::vector<int64_t> torch_starts(Run& run, const std::vector<int32_t>& data) {
  std::vector<int64_t> starts(static_cast<size_t>(run.cfg.batch_size));
  for (int64_t& s : starts) s = run.torch_gen->randint(static_cast<int64_t>(data.size()) - run.cfg.model.block_size);
  return starts;
}

std::unique_ptr<Tokenizer> make_tokenizer(const TrainConfig& cfg, const std::string& text) {
  if (cfg.tokenizer == "char") return std::make_unique<CharTokenizer>(CharTokenizer::train(text));
  if (cfg.tokenizer == "bpe")
    return std::make_unique<BpeTokenizer>(BpeTokenizer::train(text, static_cast<int32_t>(cfg.bpe_vocab_size)));
  fail("train: unknown tokenizer '{}' (choose char or bpe)", cfg.tokenizer);
}

void load_data(Run& run) {
  const std::string text = run.cfg.data.empty() ? default_corpus() : read_text_file(run.cfg.data);
  if (!run.tokenizer) run.tokenizer = make_tokenizer(run.cfg, text);
  run.data = split_tokens(run.tokenizer->encode(text));
  const int64_t need = run.cfg.model.block_size + 1;
  EMBER_CHECK(static_cast<int64_t>(run.data.val.size()) >= need,
              "train: the validation split has {} tokens, fewer than block_size + 1 = {}; use more text or a "
              "smaller --block-size",
              run.data.val.size(), need);
}

// The per-step machinery: one weight-sharing replica per extra thread, and AdamW.
void make_step_machinery(Run& run) {
  run.parallel = std::make_unique<DataParallel>(*run.model);
  run.params = run.model->parameters();
  run.optimizer = std::make_unique<AdamW>(decay_groups(run.model->named_parameters(), run.cfg.weight_decay), run.cfg.lr,
                                          run.cfg.beta1, run.cfg.beta2);
}

struct Estimate {
  double train = std::nan(""), val = 0.0;  // mean losses over eval_iters random batches; train only for nanogpt
};

Estimate estimate_losses(Run& run) {
  const int64_t B = run.cfg.batch_size, T = run.cfg.model.block_size;
  std::vector<Batch> batches;
  if (!run.torch_gen) {
    Generator gen(run.cfg.seed * 1000003 + static_cast<uint64_t>(run.step));  // independent of training draws
    for (int64_t i = 0; i < run.cfg.eval_iters; ++i) batches.push_back(sample_batch(run.data.val, B, T, gen));
    return {std::nan(""), mean_loss(*run.model, batches)};
  }
  Estimate e;
  for (auto [split, loss] : {std::pair{&run.data.train, &e.train}, std::pair{&run.data.val, &e.val}}) {
    batches.clear();
    for (int64_t i = 0; i < run.cfg.eval_iters; ++i) batches.push_back(batch_at(*split, torch_starts(run, *split), T));
    *loss = mean_loss(*run.model, batches);
  }
  return e;
}

void append_metrics(const std::string& out, const nlohmann::json& j) {
  std::ofstream f(std::filesystem::path(out) / "metrics.jsonl", std::ios::app);
  f << j.dump() << "\n";
}

void checkpoint(Run& run) {
  TrainerState s{run.step, run.data_gen.state(), run.model->dropout_generator().state(), run.cfg.to_json(), nullptr};
  if (run.torch_gen) s.torch_stream = {{"state", run.torch_gen->state()}, {"next_starts", run.next_starts}};
  save_checkpoint(run.cfg.out, *run.model, *run.tokenizer, *run.optimizer, s);
}

void print_progress(const Run& run, float loss, double lr, double tokens_per_s, double eta_s) {
  if (run.cfg.quiet) return;
  const std::string line = fmt::format("step {:>5}/{} | loss {:.4f} | lr {:.2e} | {:>6.0f} tok/s | ETA {:>4.0f}s",
                                       run.step, run.cfg.max_iters, loss, lr, tokens_per_s, eta_s);
  if (run.cfg.live_progress)
    fmt::print("\r{}\x1b[K", line);
  else
    fmt::print("{}\n", line);
  std::fflush(stdout);
}

// One optimizer step on a fresh batch; returns the loss.
float train_step(Run& run) {
  const TrainConfig& c = run.cfg;
  run.optimizer->set_lr(cosine_lr(run.step, c.lr, c.min_lr, c.warmup_iters, c.lr_decay_iters));
  const Batch batch = run.torch_gen ? batch_at(run.data.train, run.next_starts, c.model.block_size)
                                    : sample_batch(run.data.train, c.batch_size, c.model.block_size, run.data_gen);
  const float loss = run.parallel->forward_backward(batch);
  if (run.torch_gen) run.next_starts = torch_starts(run, run.data.train);  // nanoGPT fetches it here
  if (c.grad_clip > 0.0) clip_grad_norm(run.params, static_cast<float>(c.grad_clip));
  run.optimizer->step();
  ++run.step;
  return loss;
}

TrainResult loop(Run& run) {
  const TrainConfig& c = run.cfg;
  std::filesystem::create_directories(c.out);
  TrainResult result;
  result.out_dir = c.out;
  const auto start = Clock::now();
  auto window_start = start;
  int64_t window_steps = 0;
  auto report = [&](const Estimate& e) {
    if (!c.quiet) {
      fmt::print("{}step {}: ", c.live_progress ? "\n" : "", run.step);
      if (!std::isnan(e.train)) fmt::print("train loss {:.4f}, ", e.train);
      fmt::print("val loss {:.4f}\n", e.val);
    }
    nlohmann::json m = {{"step", run.step}, {"val_loss", e.val}};
    if (!std::isnan(e.train)) m["train_loss_estimate"] = e.train;
    append_metrics(c.out, m);
    result.val_loss = e.val;
  };
  if (run.torch_gen && run.step == 0) report(estimate_losses(run));  // nanoGPT estimates before step 0 too
  while (run.step < c.max_iters) {
    const float loss = train_step(run);
    result.losses.push_back(loss);
    ++window_steps;
    const double elapsed = std::chrono::duration<double>(Clock::now() - window_start).count();
    const double tok_s = static_cast<double>(window_steps * c.batch_size * c.model.block_size) / elapsed;
    if (run.step % c.log_interval == 0 || run.step == c.max_iters) {
      print_progress(run, loss, run.optimizer->lr(), tok_s, (c.max_iters - run.step) * elapsed / window_steps);
      append_metrics(c.out,
                     {{"step", run.step}, {"train_loss", loss}, {"lr", run.optimizer->lr()}, {"tokens_per_s", tok_s}});
      window_start = Clock::now();
      window_steps = 0;
    }
    const bool scheduled = run.step % c.eval_interval == 0;
    if (scheduled || run.step == c.max_iters) {
      // nanoGPT makes no estimate off the schedule: draw this one from a copy of
      // the stream, so a run resumed from here goes on as an uninterrupted one.
      const std::optional<TorchGenerator> stream =
          run.torch_gen && !scheduled ? std::optional<TorchGenerator>(*run.torch_gen) : std::nullopt;
      report(estimate_losses(run));
      if (stream) *run.torch_gen = *stream;
      checkpoint(run);
    }
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json j = config_to_json(model);
  j.update({{"data", data},
            {"out", out},
            {"tokenizer", tokenizer},
            {"bpe_vocab_size", bpe_vocab_size},
            {"batch_size", batch_size},
            {"lr", lr},
            {"min_lr", min_lr},
            {"warmup_iters", warmup_iters},
            {"max_iters", max_iters},
            {"lr_decay_iters", lr_decay_iters},
            {"weight_decay", weight_decay},
            {"beta1", beta1},
            {"beta2", beta2},
            {"grad_clip", grad_clip},
            {"eval_interval", eval_interval},
            {"eval_iters", eval_iters},
            {"log_interval", log_interval},
            {"seed", seed},
            {"rng", rng}});
  return j;
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j) {
  TrainConfig c;
  try {
    c.model = config_from_json(j);
    c.data = j.at("data"), c.out = j.at("out"), c.tokenizer = j.at("tokenizer");
    c.bpe_vocab_size = j.at("bpe_vocab_size"), c.batch_size = j.at("batch_size");
    c.lr = j.at("lr"), c.min_lr = j.at("min_lr"), c.warmup_iters = j.at("warmup_iters");
    c.max_iters = j.at("max_iters"), c.lr_decay_iters = j.at("lr_decay_iters");
    c.weight_decay = j.at("weight_decay"), c.beta1 = j.at("beta1"), c.beta2 = j.at("beta2");
    c.grad_clip = j.at("grad_clip"), c.eval_interval = j.at("eval_interval"), c.eval_iters = j.at("eval_iters");
    c.log_interval = j.at("log_interval"), c.seed = j.at("seed");
    c.rng = j.value("rng", "ember");  // checkpoints from before the setting used ember's generators
  } catch (const nlohmann::json::exception& e) {
    fail("resume: the saved training settings are incomplete or malformed ({})", e.what());
  }
  return c;
}

TrainResult train(const TrainConfig& cfg) {
  EMBER_CHECK(
      cfg.batch_size > 0 && cfg.max_iters >= 0 && cfg.eval_interval > 0 && cfg.log_interval > 0 && cfg.eval_iters > 0,
      "train: batch size, eval interval, eval iters and log interval must be positive, max iters >= 0");
  EMBER_CHECK(cfg.rng == "nanogpt" || cfg.rng == "ember", "train: unknown rng '{}' (choose nanogpt or ember)", cfg.rng);
  EMBER_CHECK(cfg.rng != "nanogpt" || cfg.seed < (uint64_t{1} << 32),
              "train: with rng nanogpt the seed must be below 2^32 (torch.manual_seed's range here), got {}", cfg.seed);
  Run run{cfg, nullptr, {}, nullptr, nullptr, nullptr, {}, Generator(cfg.seed), 0, nullptr, {}};
  load_data(run);
  run.cfg.model.vocab_size = run.tokenizer->vocab_size();
  run.model = std::make_unique<GPT>(run.cfg.model, cfg.seed);
  if (cfg.rng == "nanogpt") {
    run.torch_gen = std::make_unique<TorchGenerator>(cfg.seed);
    init_like_nanogpt(*run.model, *run.torch_gen);
    run.next_starts = torch_starts(run, run.data.train);  // nanoGPT's first get_batch, before the loop
  }
  make_step_machinery(run);
  if (!cfg.quiet)
    fmt::print("ember: {} parameters, {} train / {} val tokens, vocabulary {} ({})\n", run.model->num_parameters(),
               run.data.train.size(), run.data.val.size(), run.tokenizer->vocab_size(), run.tokenizer->kind());
  return loop(run);
}

TrainResult resume(const std::string& dir, int64_t max_iters, bool quiet) {
  LoadedModel loaded = load_model(dir);
  Run run;
  run.model = std::move(loaded.model);
  run.tokenizer = std::move(loaded.tokenizer);
  const nlohmann::json trainer = read_json_file((std::filesystem::path(dir) / "trainer.json").string());
  EMBER_CHECK(trainer.is_object() && trainer.contains("settings"),
              "resume: '{}/trainer.json' has no training settings (not a training checkpoint)", dir);
  run.cfg = TrainConfig::from_json(trainer.at("settings"));
  run.cfg.out = dir;
  if (max_iters > 0) run.cfg.max_iters = max_iters;
  run.cfg.quiet = quiet;
  make_step_machinery(run);
  const TrainerState s = load_training_state(dir, *run.optimizer);
  run.step = s.step;
  run.data_gen.set_state(s.data_rng);
  run.model->dropout_generator().set_state(s.dropout_rng);
  if (run.cfg.rng == "nanogpt") {
    EMBER_CHECK(
        s.torch_stream.is_object() && s.torch_stream.contains("state") && s.torch_stream.contains("next_starts"),
        "resume: '{}/trainer.json' has no torch_stream, which rng nanogpt needs", dir);
    run.torch_gen = std::make_unique<TorchGenerator>(run.cfg.seed);
    run.torch_gen->set_state(s.torch_stream.at("state").get<std::string>());
    run.next_starts = s.torch_stream.at("next_starts").get<std::vector<int64_t>>();
  }
  load_data(run);
  if (!quiet) fmt::print("ember: resuming '{}' at step {} of {}\n", dir, run.step, run.cfg.max_iters);
  return loop(run);
}

}  // namespace ember
