// The training loop behind `gpt train`: tokenize a text file (or the built-in
// corpus), train a GPT with AdamW, warmup + cosine LR and gradient clipping,
// evaluate, log metrics, checkpoint, and resume bit for bit. A run stops
// cleanly on SIGINT/SIGTERM (train/interrupt.h) and refuses to go on when the
// loss or the gradients stop being finite.
#pragma once

#include <string>
#include <vector>

#include "core/error.h"
#include "train/train_config.h"

namespace ember {

// The loss or a gradient went NaN or infinite: training cannot go on. The
// message names the step and the first parameter with a non-finite gradient;
// `gpt train` exits with code 3 on it. The last checkpoint is left as it was.
struct Diverged : Error {
  using Error::Error;
};

struct TrainResult {
  std::vector<float> losses;  // training loss of every step this run took, in order
  double val_loss = 0.0;      // the last estimate (mean over eval_iters random val batches)
  double seconds = 0.0;
  std::string out_dir;
  int64_t step = 0;        // the step the run ended at
  std::string checkpoint;  // the newest checkpoint's directory ("" if the run saved none)
  int stopped_by = 0;      // the signal that stopped the run early (0: it ran to max_iters)
};

// Trains from scratch into cfg.out. Refuses an --out that holds another run's
// checkpoint unless cfg.overwrite. Prints progress to stdout; metrics go to
// out/metrics.jsonl (started afresh).
TrainResult train(const TrainConfig& cfg);

// What may differ from the saved run when it is resumed (0 / unset: as saved).
struct ResumeOptions {
  int64_t max_iters = 0;
  int64_t log_interval = 0;
  int64_t keep_checkpoints = 0;
  bool quiet = false;
  bool live_progress = false;
};
// The flags `gpt train --resume` accepts with a value other than the saved one.
inline constexpr const char* kResumeOverridable[] = {"--max-iters", "--log-interval", "--keep-checkpoints"};

// The settings of the run saved in `dir` (its newest checkpoint's trainer.json), validated.
TrainConfig saved_run_settings(const std::string& dir);

// Continues the run saved in `dir` (its newest checkpoint) up to max_iters.
// metrics.jsonl loses any lines logged after that checkpoint's step.
TrainResult resume(const std::string& dir, const ResumeOptions& options = {});

}  // namespace ember
