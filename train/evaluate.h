// Loss evaluation without recording a graph (in eval mode: no dropout), sampling from a trained model,
// and the positional-table ablations that show learned positions are used.
#pragma once

#include <vector>

#include "nn/gpt.h"
#include "train/data.h"

namespace ember {

// Mean loss over all target tokens of the batches (each batch weighted by its size).
double mean_loss(GPT& model, const std::vector<Batch>& batches);

// `gpt eval`: the mean loss over every non-overlapping block_size window of `tokens`.
double sequential_loss(GPT& model, const std::vector<int32_t>& tokens, int64_t batch_size = 32);

// Val loss as trained, with the learned positional table zeroed, and with its
// rows shuffled (seeded), each over the first `max_blocks` non-overlapping
// blocks of `val` (enough to separate the three clearly, and three passes over
// all of tinyshakespeare's val split would add seconds to every run). The
// model is restored afterwards. Learned pos only.
struct PositionAblation {
  double trained, zeroed, shuffled;
  int64_t blocks;  // how many blocks were evaluated
};
PositionAblation position_ablation(GPT& model, const std::vector<int32_t>& val, uint64_t seed,
                                   int64_t max_blocks = 512);

// Appends n tokens after `prompt` (cropped to the last block_size tokens as
// context), sampling softmax(logits / temperature) restricted to the top_k
// most likely tokens (top_k <= 0: all). top_k = 1 is greedy decoding.
std::vector<int32_t> generate(GPT& model, std::vector<int32_t> prompt, int64_t n, double temperature, int64_t top_k,
                              Generator& gen);

}  // namespace ember
