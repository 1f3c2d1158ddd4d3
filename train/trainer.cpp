// The training loop: data, model, optimizer, schedule, evaluation, logging,
// checkpoints. Every random draw comes from seeded generators whose state is
// checkpointed, so a resumed run repeats an uninterrupted one exactly.
#include "train/trainer.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "core/graph_dot.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/data_parallel.h"
#include "train/distributed.h"
#include "train/evaluate.h"
#include "train/interrupt.h"
#include "train/optim.h"
#include "train/plots.h"
#include "train/random_stream.h"
#include "train/token_cache.h"
#include "train/tokenizer.h"

namespace ember {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

// metrics.jsonl: one JSON object a line, flushed and checked at every write,
// so a full disk stops the run with a clear error instead of a silent gap.
class MetricsLog {
 public:
  // Starts a fresh log, or (resuming at `keep_through`) keeps the lines up to
  // that step: lines a killed run logged after its last checkpoint are logged
  // again by the resumed run and must not appear twice.
  MetricsLog(const std::string& dir, std::optional<int64_t> keep_through) : path_((fs::path(dir) / "metrics.jsonl")) {
    std::string kept;
    if (keep_through) {
      std::ifstream in(path_);
      for (std::string line; std::getline(in, line);) {
        const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
            j["step"].get<int64_t>() <= *keep_through)
          kept += line + "\n";
      }
    }
    file_ = std::fopen(path_.c_str(), "w");
    EMBER_CHECK(file_ != nullptr, "metrics: cannot create '{}' ({})", path_.string(), std::strerror(errno));
    write_text(kept);
  }
  ~MetricsLog() {
    if (file_) std::fclose(file_);
  }
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void write(const nlohmann::json& j) { write_text(j.dump() + "\n"); }

 private:
  void write_text(const std::string& text) {
    const bool ok = std::fwrite(text.data(), 1, text.size(), file_) == text.size() && std::fflush(file_) == 0;
    EMBER_CHECK(ok, "metrics: cannot write '{}' ({})", path_.string(), std::strerror(errno));
  }

  fs::path path_;
  std::FILE* file_ = nullptr;
};

// Flushes stdout and turns a failed write (a full disk, a closed pipe) into an Error.
void flush_stdout() {
  EMBER_CHECK(std::fflush(stdout) == 0 && !std::ferror(stdout), "cannot write to standard output ({})",
              std::strerror(errno));
}

struct Run {
  TrainConfig cfg;
  std::unique_ptr<Tokenizer> tokenizer;
  TokenSplit data;
  std::unique_ptr<GPT> model;
  std::unique_ptr<AdamW> optimizer;
  std::unique_ptr<DataParallel> parallel;
  std::vector<NamedTensor> params;  // the model's parameters, listed once (clipping runs every step)
  std::vector<Tensor> param_tensors;
  std::unique_ptr<RandomStream> stream;  // every draw but dropout's: initial weights, batches, estimates
  int64_t step = 0;
  int64_t saved_step = -1;  // the step of the newest checkpoint (-1: none yet)
  std::string checkpoint;   // its directory
  std::unique_ptr<MetricsLog> metrics;
};

// The text's tokens, from the run's token cache (out/tokens) when it matches
// the text and the tokenizer, else streamed from the text into it.
void load_data(Run& run) {
  const TrainConfig& c = run.cfg;
  TokenDataOptions o;
  o.text = c.data;
  o.cache_dir = token_cache_dir(c.out);
  o.stream.quiet = c.quiet;
  o.stream.live_progress = c.live_progress;
  // In an MPI job the ranks take turns: rank 0 builds or checks the token
  // cache first, and each later rank then finds it (a shared filesystem) or
  // builds its own (a machine of its own). Two ranks never write one cache.
  TokenData d;
  for (int turn = 0; turn < world_size(); ++turn) {
    if (turn == world_rank()) d = load_token_data(o, {c.tokenizer, c.bpe_vocab_size}, run.tokenizer.get());
    if (world_size() > 1) allreduce_max(0);  // everyone waits for this turn to end
  }
  if (!run.tokenizer) run.tokenizer = std::move(d.tokenizer);
  run.data = std::move(d.split);
  const int64_t need = run.cfg.model.block_size + 1;
  EMBER_CHECK(static_cast<int64_t>(run.data.val.size()) >= need && static_cast<int64_t>(run.data.train.size()) >= need,
              "train: the train and val splits have {} and {} tokens, but each needs at least block_size + 1 = {}; "
              "use more text or a smaller --block-size",
              run.data.train.size(), run.data.val.size(), need);
}

// The per-step machinery: the random stream, one weight-sharing replica per
// extra thread, and AdamW.
void make_step_machinery(Run& run) {
  const TrainConfig& c = run.cfg;
  run.stream = make_random_stream({c.rng, c.seed, c.batch_size, c.model.block_size, c.eval_iters}, run.data);
  run.parallel = std::make_unique<DataParallel>(*run.model);
  run.params = run.model->named_parameters();
  run.param_tensors = run.model->parameters();
  run.optimizer =
      std::make_unique<AdamW>(decay_groups(run.params, run.cfg.weight_decay), run.cfg.lr, run.cfg.beta1, run.cfg.beta2);
}

struct Estimate {
  double train = std::nan(""), val = 0.0;  // mean losses over eval_iters batches; train only if the stream draws it
};

Estimate estimate_losses(Run& run, bool scheduled) {
  const EstimateBatches b = run.stream->estimate_batches(run.step, scheduled);
  Estimate e;
  if (!b.train.empty()) e.train = run.parallel->mean_loss(b.train);
  e.val = run.parallel->mean_loss(b.val);
  return e;
}

// Stops the run at `step`, naming the first parameter whose gradient (or,
// when every gradient is finite, whose value) is not finite.
[[noreturn]] void diverged(const Run& run, int64_t step, const std::string& what) {
  std::vector<NamedTensor> grads;
  for (const auto& [name, p] : run.params) grads.emplace_back(name, p.grad());
  std::string culprit = first_non_finite(grads);
  if (!culprit.empty())
    culprit = fmt::format("; first non-finite gradient: '{}'", culprit);
  else if (const std::string w = first_non_finite(run.params); !w.empty())
    culprit = fmt::format("; first non-finite weight: '{}'", w);
  const char* advice = run.cfg.grad_clip > 0.0 ? "lower --lr" : "lower --lr or use --grad-clip";
  throw Diverged(fmt::format("train: step {}: {}{}; stopping ({}). {}", step, what, culprit, advice,
                             run.checkpoint.empty() ? std::string("No checkpoint was saved.")
                                                    : "The last checkpoint, " + run.checkpoint + ", is untouched."));
}

// The weights, hashed: ranks that sum the same gradients hold the same ones.
uint64_t hash_weights(const Run& run) {
  uint64_t h = hash_bytes(nullptr, 0);
  for (const Tensor& p : run.param_tensors) h = hash_bytes(p.data(), static_cast<size_t>(p.numel()) * sizeof(float), h);
  return h;
}

// Token ids, hashed: all of them up to 2^20, else 2^20 evenly spaced ones and
// the count (enough to tell two files apart without reading gigabytes).
uint64_t hash_tokens(const TokenArray& tokens, uint64_t h) {
  const int64_t n = tokens.size(), stride = std::max<int64_t>(1, n >> 20);
  h = hash_bytes(&n, sizeof(n), h);
  for (int64_t i = 0; i < n; i += stride) {
    const int64_t id = tokens[i];
    h = hash_bytes(&id, sizeof(id), h);
  }
  return h;
}

// In an MPI job, first of all: JobError unless every rank runs the same
// program with the same settings, before anything (the token cache) is written.
void check_ranks_run_alike(const TrainConfig& cfg) {
  if (world_size() == 1) return;
  StartFingerprint f;
  f.binary = executable_hash();
  const std::string settings = cfg.to_json().dump();
  f.settings = hash_bytes(settings.data(), settings.size());
  check_same_start(f, cfg.data, cfg.out);
}

// In an MPI job: JobError unless every rank runs the same program with the
// same settings, data and starting state (train/distributed.h).
void check_ranks_agree(Run& run) {
  if (world_size() == 1) return;
  StartFingerprint f;
  f.binary = executable_hash();
  const std::string settings = run.cfg.to_json().dump(), tokenizer = run.tokenizer->to_json().dump();
  f.settings = hash_bytes(settings.data(), settings.size());
  f.data = hash_tokens(run.data.val, hash_tokens(run.data.train, hash_bytes(tokenizer.data(), tokenizer.size())));
  const std::string streams = run.stream->state().dump() +
                              generator_state_to_json(run.model->dropout_generator().state()).dump() +
                              std::to_string(run.step);
  f.state = hash_bytes(streams.data(), streams.size(), hash_weights(run));
  for (auto* moments : {&run.optimizer->exp_avg(), &run.optimizer->exp_avg_sq()})
    for (const Tensor& m : *moments)
      if (m.defined()) f.state = hash_bytes(m.data(), static_cast<size_t>(m.numel()) * sizeof(float), f.state);
  check_same_start(f, run.cfg.data, run.cfg.out);
}

void checkpoint(Run& run) {
  if (!first_non_finite(run.params).empty())
    diverged(run, run.step, "a weight is no longer finite, so it is not saved");
  run.saved_step = run.step;
  if (world_size() > 1) check_same_weights(hash_weights(run), run.step);
  if (!is_main_rank()) return;  // rank 0 alone writes; the others hold the same state
  TrainerState s;
  s.step = run.step;
  s.dropout_rng = run.model->dropout_generator().state();
  s.settings = run.cfg.to_json();
  s.stream = run.stream->state();
  run.checkpoint =
      save_checkpoint(run.cfg.out, *run.model, *run.tokenizer, *run.optimizer, s, run.cfg.keep_checkpoints);
}

void print_progress(const Run& run, float loss, double lr, double tokens_per_s, double eta_s) {
  if (run.cfg.quiet) return;
  const std::string line = fmt::format("step {:>5}/{} | loss {:.4f} | lr {:.2e} | {:>6.0f} tok/s | ETA {:>4.0f}s",
                                       run.step, run.cfg.max_iters, loss, lr, tokens_per_s, eta_s);
  if (run.cfg.live_progress)
    fmt::print("\r{}\x1b[K", line);
  else
    fmt::print("{}\n", line);
  flush_stdout();
}

// --dump-graph: the graph of the step just taken (its first slice), with the
// batch's gradients on the leaves, as Graphviz DOT.
void dump_first_graph(Run& run) {
  if (is_main_rank()) {  // the rank that ran slice 0
    write_text_file(run.cfg.dump_graph, graph_dot(run.parallel->take_graph()));
    if (!run.cfg.quiet) fmt::print("graph of step {} written to {}\n", run.step + 1, run.cfg.dump_graph);
  }
  run.cfg.dump_graph.clear();
}

// One optimizer step on a fresh batch; returns the loss.
float train_step(Run& run) {
  const TrainConfig& c = run.cfg;
  run.optimizer->set_lr(cosine_lr(run.step, c.lr, c.min_lr, c.warmup_iters, c.lr_decay_iters));
  const Batch batch = run.stream->next_batch();
  if (c.on_batch) c.on_batch(c.on_batch_ctx, batch);
  const bool dump = !c.dump_graph.empty();  // --dump-graph: this process's first step
  if (dump) run.parallel->keep_next_graph();
  const float loss = run.parallel->forward_backward(batch);
  if (dump) dump_first_graph(run);
  const float norm = c.grad_clip > 0.0 ? clip_grad_norm(run.param_tensors, static_cast<float>(c.grad_clip))
                                       : grad_norm(run.param_tensors);
  if (!std::isfinite(loss) || !std::isfinite(norm))
    diverged(run, run.step + 1, fmt::format("the loss is {} and the gradient norm {}", loss, norm));
  run.optimizer->step();
  ++run.step;
  return loss;
}

TrainResult loop(Run& run) {
  const TrainConfig& c = run.cfg;
  TrainResult result;
  result.out_dir = c.out;
  const auto start = Clock::now();
  auto window_start = start;
  int64_t window_steps = 0;
  auto report = [&](const Estimate& e) {
    if (!std::isfinite(e.val) || (!std::isnan(e.train) && !std::isfinite(e.train)))
      diverged(run, run.step, fmt::format("the loss estimate is not finite (train {}, val {})", e.train, e.val));
    if (!c.quiet) {
      fmt::print("{}step {}: ", c.live_progress ? "\n" : "", run.step);
      if (!std::isnan(e.train)) fmt::print("train loss {:.4f}, ", e.train);
      fmt::print("val loss {:.4f}\n", e.val);
      flush_stdout();
    }
    nlohmann::json m = {{"step", run.step}, {"val_loss", e.val}};
    if (!std::isnan(e.train)) m["train_loss_estimate"] = e.train;
    if (run.metrics) run.metrics->write(m);  // rank 0's
    result.val_loss = e.val;
  };
  if (run.step == 0 && run.stream->estimates_at_start()) report(estimate_losses(run, true));
  if (run.step == 0 && c.max_iters == 0) checkpoint(run);  // a run of no steps saves its initial model
  while (run.step < c.max_iters) {
    const float loss = train_step(run);
    result.losses.push_back(loss);
    ++window_steps;
    const double elapsed = std::chrono::duration<double>(Clock::now() - window_start).count();
    const double tok_s = static_cast<double>(window_steps * c.batch_size * c.model.block_size) / elapsed;
    if (run.step % c.log_interval == 0 || run.step == c.max_iters) {
      print_progress(run, loss, run.optimizer->lr(), tok_s, (c.max_iters - run.step) * elapsed / window_steps);
      if (run.metrics)
        run.metrics->write(
            {{"step", run.step}, {"train_loss", loss}, {"lr", run.optimizer->lr()}, {"tokens_per_s", tok_s}});
      window_start = Clock::now();
      window_steps = 0;
    }
    const bool scheduled = run.step % c.eval_interval == 0;
    if (scheduled || run.step == c.max_iters) {
      report(estimate_losses(run, scheduled));
      checkpoint(run);
    }
    if (const int sig = allreduce_max(stop_requested())) {  // a signal to any rank stops them all here
      if (run.saved_step != run.step) checkpoint(run);
      result.stopped_by = sig;
      break;
    }
  }
  if (!c.quiet && c.live_progress && result.stopped_by) fmt::print("\n");
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.step = run.step;
  result.checkpoint = run.checkpoint;
  return result;
}

}  // namespace

TrainResult train(const TrainConfig& cfg) {
  cfg.validate();
  if (!cfg.data.empty()) check_text_file(cfg.data);  // the input's problems before the output's
  if (is_main_rank() && holds_checkpoint(cfg.out))   // rank 0 owns the run directory
    EMBER_CHECK(cfg.overwrite,
                "train: '{}' already holds a run's checkpoint; resume it with --resume {}, choose another --out, or "
                "give --overwrite to replace it",
                cfg.out, cfg.out);
  Run run;
  run.cfg = cfg;
  run.cfg.quiet = cfg.quiet || !is_main_rank();
  check_ranks_run_alike(run.cfg);
  load_data(run);
  run.cfg.model.vocab_size = run.tokenizer->vocab_size();
  run.model = std::make_unique<GPT>(run.cfg.model, cfg.seed);
  make_step_machinery(run);
  run.stream->init_model(*run.model);
  check_ranks_agree(run);  // before rank 0 touches the run directory
  if (is_main_rank()) {
    if (holds_checkpoint(cfg.out)) remove_run_files(cfg.out);
    std::error_code ec;
    fs::create_directories(cfg.out, ec);
    EMBER_CHECK(fs::is_directory(cfg.out), "train: cannot create the run directory '{}' ({})", cfg.out,
                ec ? ec.message() : "a file of that name is in the way");
    run.metrics = std::make_unique<MetricsLog>(cfg.out, std::nullopt);
    save_initial_positions(cfg.out, *run.model);  // the step-0 table, for positions.svg
  }
  if (!run.cfg.quiet) {
    fmt::print("ember: {} parameters, {} train / {} val tokens, vocabulary {} ({})\n", run.model->num_parameters(),
               run.data.train.size(), run.data.val.size(), run.tokenizer->vocab_size(), run.tokenizer->kind());
    flush_stdout();
  }
  return loop(run);
}

TrainConfig saved_run_settings(const std::string& dir) {
  const std::string trainer_file = (fs::path(resolve_checkpoint(dir)) / "trainer.json").string();
  const nlohmann::json trainer = read_json_file(trainer_file);
  EMBER_CHECK(trainer.is_object() && trainer.contains("settings"),
              "resume: '{}' has no training settings (not a training checkpoint)", trainer_file);
  return TrainConfig::from_json(trainer.at("settings"), trainer_file);
}

TrainResult resume(const std::string& dir, const ResumeOptions& options) {
  LoadedModel loaded = load_model(dir);
  Run run;
  run.model = std::move(loaded.model);
  run.tokenizer = std::move(loaded.tokenizer);
  const std::string trainer_file = (fs::path(loaded.path) / "trainer.json").string();
  run.cfg = saved_run_settings(dir);
  EMBER_CHECK(config_to_json(run.cfg.model) == config_to_json(run.model->config()),
              "resume: '{}' describes another model than its config.json", trainer_file);
  run.cfg.out = dir;
  if (options.max_iters > 0) run.cfg.max_iters = options.max_iters;
  if (options.log_interval > 0) run.cfg.log_interval = options.log_interval;
  if (options.keep_checkpoints > 0) run.cfg.keep_checkpoints = options.keep_checkpoints;
  run.cfg.quiet = options.quiet || !is_main_rank();
  run.cfg.live_progress = options.live_progress;
  check_ranks_run_alike(run.cfg);
  load_data(run);
  make_step_machinery(run);
  const TrainerState s = load_training_state(dir, *run.optimizer);
  run.step = run.saved_step = s.step;
  run.checkpoint = loaded.path;
  run.model->dropout_generator().set_state(s.dropout_rng);
  run.stream->set_state(s.stream, trainer_file);
  check_ranks_agree(run);
  if (is_main_rank()) run.metrics = std::make_unique<MetricsLog>(dir, s.step);
  if (!run.cfg.quiet) {
    fmt::print("ember: resuming '{}' at step {} of {}\n", loaded.path, run.step, run.cfg.max_iters);
    flush_stdout();
  }
  return loop(run);
}

}  // namespace ember
