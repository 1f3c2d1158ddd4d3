// The training loop behind `gpt train`: tokenize a text file (or the built-in
// corpus), train a GPT with AdamW, warmup + cosine LR and gradient clipping,
// evaluate, log metrics, checkpoint, and resume bit for bit.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/gpt.h"

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
  // Where the random draws come from. "nanogpt" (default): PyTorch's CPU
  // stream in nanoGPT train.py's order (the model initialised as nanoGPT's
  // GPT(config) after torch.manual_seed(seed), the first batch drawn before
  // step 0, train and val estimates at step 0 and every eval_interval, each
  // next batch right after a step), so with dropout 0 a run replays nanoGPT's
  // with the same seed (train/torch_rng.h). "ember": ember's own generators,
  // val estimates on separately seeded batches.
  std::string rng = "nanogpt";
  bool live_progress = false;  // a redrawn progress line (on a terminal) instead of plain lines
  bool quiet = false;          // no progress output (tests)

  nlohmann::json to_json() const;
  static TrainConfig from_json(const nlohmann::json& j);
};

struct TrainResult {
  std::vector<float> losses;  // training loss of every step this run took, in order
  double val_loss = 0.0;      // mean over eval_iters random val batches at the end
  double seconds = 0.0;
  std::string out_dir;
};

// Trains from scratch. Prints progress to stdout; metrics go to out/metrics.jsonl.
TrainResult train(const TrainConfig& cfg);
// Continues the run saved in `dir` up to max_iters (0: the saved max_iters).
TrainResult resume(const std::string& dir, int64_t max_iters = 0, bool quiet = false);

}  // namespace ember
