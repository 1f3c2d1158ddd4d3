// `gpt ablate`: which positional encodings serve sequences longer than the
// ones they were trained on. Every kind trains the same model on the same
// batches (only GPTConfig::pos differs), each run a normal run directory, and
// each trained model is evaluated on the whole val split at multiples of its
// training length. Also the model surgery that evaluation needs: the same
// weights at another context length, and a learned table stretched to one.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/gpt.h"
#include "train/train_config.h"

namespace ember {

struct AblationConfig {
  TrainConfig base;                  // what every run shares; pos, out and seed are set per run; rng must be ember
  std::string out = "out/ablation";  // the runs go to out/<kind>-seed<S>/, the results to out/ablation.*
  std::vector<PosKind> kinds = {PosKind::Learned, PosKind::Sinusoidal, PosKind::Rope, PosKind::Alibi, PosKind::None};
  int64_t seeds = 1;                              // base.seed, base.seed + 1, ...
  std::vector<int64_t> eval_lengths = {1, 2, 4};  // multiples of base.model.block_size, increasing
  // Clear Error naming the flag (--kinds, --seeds, --eval-lengths, --rng, or
  // a model flag a kind cannot use, such as an odd head size with rope).
  void validate() const;
};

// "learned,rope" -> {Learned, Rope}; Error on an unknown or repeated name.
std::vector<PosKind> parse_pos_kinds(const std::string& list);
// "1,2,4" -> {1, 2, 4}; Error unless each is an integer in [1, 64], increasing.
std::vector<int64_t> parse_eval_lengths(const std::string& list);

// One trained model and its evaluation. Losses are NaN where they do not apply.
struct AblationRun {
  PosKind kind = PosKind::Learned;
  uint64_t seed = 0;
  std::string dir;  // its run directory (gpt eval / gpt sample --ckpt DIR)
  int64_t parameters = 0;
  double seconds = 0.0;                                   // training time
  std::vector<double> val_loss;                           // one per eval length; NaN past a learned table's rows
  std::vector<double> stretched;                          // learned only: the table interpolated to each length
  double zeroed = std::nan(""), shuffled = std::nan("");  // learned, sinusoidal: table zeroed / rows permuted, at 1x
  int64_t batches = 0;                                    // training batches the run took
  uint32_t batches_crc32 = 0;                             // CRC-32 of their tokens (x then y of each batch, in order)
};

struct AblationResult {
  int64_t block_size = 0;
  std::vector<int64_t> eval_lengths;  // multiples of block_size
  int64_t val_tokens = 0;
  nlohmann::json settings;        // the shared training settings (trainer.json's form, less pos, out, seed)
  std::vector<AblationRun> runs;  // seed by seed, kinds in the order given
  int stopped_by = 0;             // the signal that stopped a run (then runs holds those finished before it)
  std::string stopped_run;        // that run's directory
};

// Trains and evaluates every kind and seed, printing progress unless
// base.quiet. A run directory that an earlier ablation finished with the same
// settings is reused (its ablation-run.json holds its training time and batch
// record); one it left unfinished is trained again; one with other settings
// is an Error unless base.overwrite, which trains every run again. Does not
// write the result files (write_ablation does).
AblationResult run_ablation(const AblationConfig& cfg);

// The table's rows: mean and sample standard deviation over seeds.
struct Spread {
  double mean = std::nan(""), sd = std::nan("");
  int64_t n = 0;  // 0: not applicable
};
struct AblationRow {
  std::string label;  // the kind, or "learned, table stretched"
  PosKind kind = PosKind::Learned;
  bool stretched = false;
  int64_t parameters = 0;
  std::vector<Spread> val_loss;  // one per eval length
  Spread zeroed, shuffled, seconds;
};
std::vector<AblationRow> ablation_rows(const AblationResult& r);

std::string ablation_markdown(const AblationResult& r);  // the table and what its columns mean
nlohmann::json ablation_json(const AblationResult& r);   // every run's numbers (NaN as null)
std::string ablation_svg(const AblationResult& r);       // val loss against evaluation length, a line per row
// The result ablation_json wrote, read back (`gpt ablate --redraw`); Error
// naming `file` and the field that is missing or malformed.
AblationResult ablation_from_json(const nlohmann::json& j, const std::string& file);
// out/ablation.md, out/ablation.json and out/ablation.svg.
void write_ablation(const std::string& out, const AblationResult& r);

// A model with the same weights that reads windows of `block_size` tokens.
// Sinusoidal, rope, alibi and none hold nothing tied to a length; a learned
// table serves any length up to its rows (a longer one is an Error naming both).
std::unique_ptr<GPT> at_context_length(const GPT& model, int64_t block_size);
// The [rows, C] table stretched to [length, C]: row p is read at p (rows - 1)
// / (length - 1), linearly interpolated between the two rows around it.
Tensor stretch_table(const Tensor& table, int64_t length);
// A learned model at `block_size` with its table stretched (learned only).
std::unique_ptr<GPT> with_stretched_table(const GPT& model, int64_t block_size);
// A sinusoidal model rebuilt as a learned one whose table holds the sinusoidal
// values: the same function, with a table position_ablation can zero and shuffle.
std::unique_ptr<GPT> sinusoidal_as_table(const GPT& model);

}  // namespace ember
