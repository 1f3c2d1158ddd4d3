// `gpt train --debug-step`: one training step taken to be followed in a
// debugger. A tiny GPT (1 layer, 2 heads, C=8, T=4, a batch of 2, unless the
// flags say otherwise) on one thread, with no evaluation before or after and
// nothing saved, so a breakpoint in the input layer or in a backward fires
// once. docs/debugging.md walks through it in gdb.
#pragma once

#include <string>
#include <vector>

#include "train/train_config.h"

namespace ember {

// Sets the tiny sizes for each size flag not in `given` (the flags typed).
void apply_debug_step_sizes(TrainConfig& cfg, const std::vector<std::string>& given);

struct DebugStepResult {
  float loss = 0.0f;
  // max |wpe.grad[t] - sum over the batch of dloss/dx[b, t]| over the rows the
  // batch used: 0 when add's backward summed as it should (NaN without a learned table).
  float batch_sum_difference = 0.0f;
};

// The step: embed (x = tok + pos), the rest of the forward, the mean
// next-token loss, backward, the check above, one AdamW step. Prints what it
// did. With dump_graph non-empty, writes the graph (graph_dot) after the
// backward, gradients included.
DebugStepResult debug_step(const TrainConfig& cfg, const std::string& dump_graph);

}  // namespace ember
