// Checkpoints: one directory holding
//   model.safetensors      the weights under nanoGPT's names (loadable by PyTorch)
//   config.json            the model's hyperparameters
//   tokenizer.json         the tokenizer
//   optimizer.safetensors  AdamW's moments (exp_avg.<name>, exp_avg_sq.<name>)
//   trainer.json           step, RNG states and the training settings
// Every file is written to a temporary name and renamed into place, trainer.json
// last; each records the step, so a checkpoint torn by a crash is detected on load.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "nn/gpt.h"
#include "train/optim.h"
#include "train/tokenizer.h"

namespace ember {

// A JSON file's contents; clear Error when missing or malformed.
nlohmann::json read_json_file(const std::string& path);

nlohmann::json config_to_json(const GPTConfig& c);
GPTConfig config_from_json(const nlohmann::json& j);  // clear Error naming a missing or bad field

struct TrainerState {
  int64_t step = 0;              // optimizer steps taken
  Generator::State data_rng;     // batch sampling
  Generator::State dropout_rng;  // the model's dropout masks
  nlohmann::json settings;       // the training command's settings, for --resume
  nlohmann::json torch_stream;   // rng "nanogpt": the PyTorch generator's state and the next batch (null otherwise)
};

// Writes a full checkpoint (model, config, tokenizer, optimizer, trainer state).
void save_checkpoint(const std::string& dir, const GPT& model, const Tokenizer& tokenizer, Adam& optimizer,
                     const TrainerState& state);

struct LoadedModel {
  std::unique_ptr<GPT> model;
  std::unique_ptr<Tokenizer> tokenizer;
};
// The model and tokenizer only: enough for `gpt eval` and `gpt sample`, and
// what a PyTorch-written checkpoint provides.
LoadedModel load_model(const std::string& dir);
// The optimizer and trainer state, for --resume; checks they match the model's step.
TrainerState load_training_state(const std::string& dir, Adam& optimizer);

}  // namespace ember
