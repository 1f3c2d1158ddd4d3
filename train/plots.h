// Pictures of a training run, written as SVG into the run directory:
//   loss.svg       train and val loss against step (log-scaled loss axis), from metrics.jsonl
//   positions.svg  cosine similarity between the rows of the learned positional
//                  table (wpe), at step 0 and at the newest checkpoint, side by side
// `gpt train` draws both at the end of a run; `gpt plot --ckpt DIR` redraws
// them. The step-0 table is kept as DIR/wpe_init.safetensors by a fresh run.
// Also the autograd graph dump behind `gpt train --dump-graph FILE`.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "nn/gpt.h"

namespace ember {

struct LossCurves {
  std::vector<std::pair<double, double>> train;           // (step, loss of that step's batch)
  std::vector<std::pair<double, double>> train_estimate;  // (step, mean over eval batches), --rng nanogpt runs
  std::vector<std::pair<double, double>> val;             // (step, mean over eval batches)
};
// The losses in a metrics.jsonl file; lines that are not JSON objects (a line
// torn by a kill) are skipped. Error when the file cannot be read.
LossCurves read_metrics(const std::string& path);
std::string loss_svg(const LossCurves& curves, const std::string& title);

// Cosine similarity between every pair of rows of a [T, C] table: [T, T],
// cos(a, b) = a.b / (|a| |b|), 0 where a row is all zeros.
std::vector<std::vector<double>> cosine_similarity_rows(const Tensor& table);
// Heatmaps of the two tables' row similarities side by side with a colour
// scale; `initial` may be undefined (then only the trained panel is drawn).
// Tables longer than 128 rows are shown averaged over blocks of rows.
std::string positions_svg(const Tensor& initial, const Tensor& trained, const std::string& trained_label);

// Keeps the model's initial positional table as run_dir/wpe_init.safetensors
// (for positions.svg), and removes the plots of an earlier run in run_dir.
// A model without a learned table removes any old wpe_init.safetensors.
void save_initial_positions(const std::string& run_dir, const GPT& model);

struct RunPlots {
  std::vector<std::string> written;  // paths of the files drawn
  std::string note;                  // why positions.svg was not drawn ("" if it was)
};
// Draws loss.svg and positions.svg into run_dir from its metrics.jsonl, its
// newest checkpoint and wpe_init.safetensors.
RunPlots write_run_plots(const std::string& run_dir);

// Writes text to path (through path.tmp and a rename); Error naming the file on failure.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace ember
