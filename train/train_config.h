// The settings of a training run: what `gpt train` takes as flags and what
// trainer.json keeps for --resume. One list (for_each_setting) names every
// setting with its JSON key, its flag and its help text, so the command line,
// the saved file and the validation cannot drift apart.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/gpt.h"
#include "train/random_stream.h"

namespace ember {

struct TrainConfig {
  std::string data;  // text file; empty = the built-in corpus
  std::string out = "out";
  GPTConfig model;                 // vocab_size comes from the tokenizer
  std::string tokenizer = "char";  // char | bpe
  int64_t bpe_vocab_size = 512;
  int64_t batch_size = 12;
  double lr = 1e-3, min_lr = 1e-4;
  int64_t warmup_iters = 100, max_iters = 1500, lr_decay_iters = 1500;  // about a minute on 2 cores
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.99, grad_clip = 1.0;
  int64_t eval_interval = 250, eval_iters = 20, log_interval = 10;
  uint64_t seed = 1337;
  RngKind rng = RngKind::Nanogpt;  // where the random draws come from: train/random_stream.h
  int64_t keep_checkpoints = 2;  // complete checkpoints kept in out/ (the newest ones)

  // Not saved: how this process runs, not what the run is.
  bool overwrite = false;      // a fresh run may replace another run's checkpoints in `out`
  bool live_progress = false;  // a redrawn progress line (on a terminal) instead of plain lines
  bool quiet = false;          // no progress output (tests)
  std::string dump_graph;      // write the first step's autograd graph here (Graphviz DOT)
  // Called with every training batch as its step takes it (a plain function
  // and a context): how `gpt ablate` shows its runs trained on the same batches.
  void (*on_batch)(void* ctx, const Batch& batch) = nullptr;
  void* on_batch_ctx = nullptr;

  // Clear Error naming the flag (or, for settings read from `file`, the file
  // and field) and the rule, for any value a run cannot use.
  void validate(const std::string& file = "") const;
  nlohmann::json to_json() const;
  // Reads and validates the settings saved in `file` (trainer.json).
  static TrainConfig from_json(const nlohmann::json& j, const std::string& file);
};

// For `gpt train --resume`: Error naming the first flag in `given` (flags
// typed on the command line) whose value in `flags` differs from the saved
// run's, unless it is one of `overridable`.
void check_resume_flags(const TrainConfig& flags, const std::vector<std::string>& given, const TrainConfig& saved,
                        const std::vector<std::string>& overridable);

// Calls f(key, flag, help, value&) for every saved setting of `c`, in the
// order `gpt train --help` lists them. Model settings that are not flags
// (vocab_size) are left out; `pos` and `rng` are passed as their enums.
template <typename Config, typename F>
void for_each_setting(Config& c, F&& f) {
  auto& m = c.model;
  f("data", "--data", "text file to train on (default: the built-in corpus)", c.data);
  f("out", "--out", "run directory: checkpoints (ckpt-NNNNNN/, latest) and metrics.jsonl", c.out);
  f("n_layer", "--n-layer", "transformer blocks", m.n_layer);
  f("n_head", "--n-head", "attention heads", m.n_head);
  f("n_embd", "--n-embd", "embedding dimension", m.n_embd);
  f("block_size", "--block-size", "context length", m.block_size);
  f("batch_size", "--batch-size", "sequences per step", c.batch_size);
  f("lr", "--lr", "peak learning rate", c.lr);
  f("min_lr", "--min-lr", "learning rate at the end of the cosine decay", c.min_lr);
  f("warmup_iters", "--warmup-iters", "linear warmup steps", c.warmup_iters);
  f("max_iters", "--max-iters", "training steps", c.max_iters);
  f("lr_decay_iters", "--lr-decay-iters", "step where the cosine decay ends", c.lr_decay_iters);
  f("weight_decay", "--weight-decay", "AdamW decay of 2-D weights", c.weight_decay);
  f("beta1", "--beta1", "AdamW beta1", c.beta1);
  f("beta2", "--beta2", "AdamW beta2", c.beta2);
  f("grad_clip", "--grad-clip", "clip the global gradient norm (0: off)", c.grad_clip);
  f("dropout", "--dropout", "dropout probability", m.dropout);
  f("bias", "--bias", "biases in Linear and LayerNorm layers (--no-bias: none)", m.bias);
  f("tie_weights", "--tie-weights", "share wte and lm_head (--no-tie-weights: separate)", m.tie_weights);
  f("eval_interval", "--eval-interval", "steps between evaluations and checkpoints", c.eval_interval);
  f("eval_iters", "--eval-iters", "batches per loss estimate", c.eval_iters);
  f("log_interval", "--log-interval", "steps between progress lines", c.log_interval);
  f("seed", "--seed", "random seed", c.seed);
  f("rng", "--rng", "random stream: nanogpt (PyTorch's, in nanoGPT's order: same seed, same run) | ember", c.rng);
  f("pos", "--pos", "positional encoding: learned | sinusoidal | rope | alibi | none", m.pos);
  f("tokenizer", "--tokenizer", "char | bpe", c.tokenizer);
  f("bpe_vocab_size", "--vocab-size", "BPE vocabulary size", c.bpe_vocab_size);
  f("keep_checkpoints", "--keep-checkpoints", "complete checkpoints to keep in --out (the newest)",
    c.keep_checkpoints);
}

}  // namespace ember
