// Where a training run's random draws come from, behind one interface, so
// the trainer never asks which stream it has:
//   nanogpt  PyTorch's CPU stream (TorchGenerator) in nanoGPT train.py's
//            order: the weights of nanoGPT's GPT(config) after
//            torch.manual_seed(seed), the first batch drawn before step 0,
//            train and val estimates at step 0 and every eval_interval, each
//            next batch drawn right after a step. With dropout 0 a run
//            replays nanoGPT's for the same seed, line by line.
//   ember    ember's own generators: the weights GPT's constructor draws,
//            batches from a seeded Generator, val estimates on batches of a
//            generator seeded by the step (so they never disturb training).
// Dropout masks come from the model's own generator in both.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/gpt.h"
#include "train/data.h"
#include "train/torch_generator.h"

namespace ember {

enum class RngKind { Nanogpt, Ember };
RngKind parse_rng_kind(const std::string& name);  // "nanogpt" or "ember"; anything else is an Error
std::string rng_kind_name(RngKind kind);

// The batches one loss estimate averages over.
struct EstimateBatches {
  std::vector<Batch> train;  // empty when the stream estimates the val loss only
  std::vector<Batch> val;
};

class RandomStream {
 public:
  virtual ~RandomStream() = default;
  // Draws the initial weights of a freshly built model (the ember stream
  // keeps what GPT's constructor drew) and anything drawn before step 0.
  virtual void init_model(GPT& model) = 0;
  // The batch for the coming training step.
  virtual Batch next_batch() = 0;
  // Whether the run estimates its losses before the first step.
  virtual bool estimates_at_start() const = 0;
  // The batches of the estimate made after `step` steps; `scheduled` is false
  // for an estimate off the eval schedule (the run's last step), which must
  // not change the draws that follow.
  virtual EstimateBatches estimate_batches(int64_t step, bool scheduled) = 0;
  // Everything needed to go on drawing where this stream is, for checkpoints.
  virtual nlohmann::json state() const = 0;
  virtual void set_state(const nlohmann::json& state, const std::string& file) = 0;
};

struct StreamSettings {
  RngKind kind = RngKind::Nanogpt;
  uint64_t seed = 1337;
  int64_t batch_size = 12, block_size = 64, eval_iters = 20;
};
// A stream drawing from `data` (kept by reference: it must outlive the stream).
std::unique_ptr<RandomStream> make_random_stream(const StreamSettings& s, const TokenSplit& data);

// Sets every parameter of `model` exactly as PyTorch builds nanoGPT's GPT
// after torch.manual_seed, walking the model's modules in order as nanoGPT's
// code does: first the draws nn.Embedding and nn.Linear make when constructed
// (values then overwritten), then _init_weights on every module (normal(0,
// 0.02) on Linear and Embedding weights, a tied wte/lm_head drawn twice and
// the lm_head draw kept; zero biases; LayerNorm 1 and 0), last normal(0,
// 0.02 / sqrt(2 n_layer)) on each parameter named *c_proj.weight. Leaves `gen`
// where PyTorch's generator would be after the model's constructor.
void init_like_nanogpt(GPT& model, TorchGenerator& gen);

}  // namespace ember
