// Loss evaluation without recording a graph (in eval mode: no dropout), sampling from a trained model,
// and the positional-table ablations that show learned positions are used.
#pragma once

#include <span>
#include <vector>

#include "nn/gpt.h"
#include "train/data.h"

namespace ember {

// Mean loss over all target tokens of the batches (each batch weighted by its size).
double mean_loss(GPT& model, const std::vector<Batch>& batches);
// Its two halves: each batch's mean loss, and their mean weighted by batch size.
std::vector<double> batch_losses(GPT& model, std::span<const Batch> batches);
double weighted_mean_loss(const std::vector<double>& losses, const std::vector<Batch>& batches);

// `gpt eval`: the mean loss over every non-overlapping block_size window of
// `tokens`. Batches are built a group at a time, so memory does not grow with
// the number of tokens; the sum runs in the same order as mean_loss's.
double sequential_loss(GPT& model, const TokenArray& tokens, int64_t batch_size = 32);

// Val loss as trained, with the learned positional table zeroed, and with its
// rows shuffled (seeded), each over the first `max_blocks` non-overlapping
// blocks of `val` (enough to separate the three clearly, and three passes over
// all of tinyshakespeare's val split would add seconds to every run). The
// model is restored afterwards. Learned pos only.
struct PositionAblation {
  double trained, zeroed, shuffled;
  int64_t blocks;  // how many blocks were evaluated
};
PositionAblation position_ablation(GPT& model, const TokenArray& val, uint64_t seed, int64_t max_blocks = 512);

// One token id drawn from softmax(logits / temperature) over the top_k
// largest of the V logits (top_k <= 0: all; ties keep the lower id first, so
// top_k = 1 is a deterministic argmax). One uniform draw from gen unless top_k is 1.
int32_t sample_token(const float* logits, int64_t V, double temperature, int64_t top_k, Generator& gen);

// Called with each token as generate() samples it, so a caller can print
// tokens as they come: a plain function and a context pointer. Returning
// false stops generation there (say, the reader closed the pipe); generate
// then returns the tokens so far.
using TokenCallback = bool (*)(void* ctx, int32_t token);

struct GenerateOptions {
  double temperature = 1.0;  // > 0
  int64_t top_k = 0;         // sample among the k likeliest tokens; <= 0: all; 1: greedy
  // true: keep each layer's keys and values (nn/kv_cache.h) and run one new
  // token per step; false: a full forward over the window for every token,
  // as nanoGPT's sample.py does. Both give the same tokens.
  bool kv_cache = true;
  // With the cache, once the window holds block_size tokens: how many
  // positions it advances before the cache is rebuilt. 1 (the default) is
  // nanoGPT's crop: the model always sees exactly the last block_size tokens
  // at positions 0..block_size-1, so every token past the context costs a
  // forward over the whole window (every cached key depends on its position
  // and on the dropped token). s > 1 rebuilds from the last block_size - s + 1
  // tokens and steps from there, one rebuild per s tokens: much faster, but
  // the model then sees between block_size - s + 1 and block_size tokens, so
  // its tokens differ from the crop's. Ignored without the cache.
  int64_t window_shift = 1;
  TokenCallback on_token = nullptr;  // optional
  void* on_token_ctx = nullptr;
};

// Appends n tokens after `prompt` (cropped to the last block_size tokens as
// context), sampling softmax(logits / temperature) restricted to the top_k
// most likely tokens. Runs in eval mode without recording a graph.
std::vector<int32_t> generate(GPT& model, std::vector<int32_t> prompt, int64_t n, const GenerateOptions& options,
                              Generator& gen);
// The same with the KV cache and no callback.
std::vector<int32_t> generate(GPT& model, std::vector<int32_t> prompt, int64_t n, double temperature, int64_t top_k,
                              Generator& gen);

}  // namespace ember
