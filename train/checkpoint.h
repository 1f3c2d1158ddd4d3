// Checkpoints. A run directory (gpt train --out DIR) holds
//   latest                   one line naming the newest complete checkpoint
//   ckpt-000250/             a complete checkpoint, saved at step 250:
//     model.safetensors        the weights under nanoGPT's names (loadable by PyTorch)
//     config.json              the model's hyperparameters
//     tokenizer.json           the tokenizer
//     optimizer.safetensors    AdamW's moments (exp_avg.<name>, exp_avg_sq.<name>)
//     trainer.json             step, random streams and the training settings
//   ckpt-000500/             the next one (the newest `keep` are kept)
//   metrics.jsonl            the run's log, one JSON object a line
// A save fills ckpt-NNNNNN.tmp/ (every file fsynced), renames it to
// ckpt-NNNNNN, then replaces `latest` by renaming a new pointer file over it,
// and only then deletes checkpoints beyond the newest `keep`. So a kill at any
// instant (SIGKILL, power loss, a full disk) leaves `latest` naming a complete
// checkpoint, and the previous one is never touched before the next is whole.
// A directory that holds the five files itself (a PyTorch script's export, or
// ember before this layout) is read as a single checkpoint.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "core/error.h"
#include "nn/gpt.h"
#include "train/optim.h"
#include "train/tokenizer.h"

namespace ember {

// A JSON file's contents; clear Error when missing or malformed.
nlohmann::json read_json_file(const std::string& path);

// j[key] as a T, checked like a flag: Error naming the file and the field when
// it is missing or of another type (an integer field holding 2.5, an unsigned
// one holding -1, a string where a number belongs).
template <typename T>
T json_field(const nlohmann::json& j, const char* key, const std::string& file) {
  EMBER_CHECK(j.is_object() && j.contains(key), "checkpoint: '{}' has no field '{}'", file, key);
  const nlohmann::json& v = j.at(key);
  bool ok = false;
  const char* expected = "";
  if constexpr (std::is_same_v<T, bool>) {
    ok = v.is_boolean(), expected = "true or false";
  } else if constexpr (std::is_same_v<T, std::string>) {
    ok = v.is_string(), expected = "a string";
  } else if constexpr (std::is_unsigned_v<T>) {
    ok = v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), expected = "an integer >= 0";
  } else if constexpr (std::is_integral_v<T>) {
    ok = v.is_number_integer() && (!v.is_number_unsigned() || v.get<uint64_t>() <= INT64_MAX),
    expected = "an integer";
  } else if constexpr (std::is_floating_point_v<T>) {
    ok = v.is_number(), expected = "a number";
  } else {
    static_assert(sizeof(T) == 0, "json_field: unsupported type");
  }
  EMBER_CHECK(ok, "checkpoint: '{}' field '{}' must be {}, got {}", file, key, expected,
              v.is_primitive() ? v.dump() : std::string("a JSON ") + v.type_name());
  return v.get<T>();
}

nlohmann::json config_to_json(const GPTConfig& c);
// Clear Error naming a missing or bad field of `file`.
GPTConfig config_from_json(const nlohmann::json& j, const std::string& file = "config.json");

struct TrainerState {
  int64_t step = 0;              // optimizer steps taken
  Generator::State dropout_rng;  // the model's dropout masks
  nlohmann::json settings;       // the training command's settings, for --resume
  nlohmann::json stream;         // the run's random stream (RandomStream::state())
};

// A Generator's state as JSON, and back (Error naming file and field).
nlohmann::json generator_state_to_json(const Generator::State& s);
Generator::State generator_state_from_json(const nlohmann::json& j, const std::string& file, const char* key);

// Saves a complete checkpoint as ckpt-<step>/ in run_dir and points `latest`
// at it, keeping the newest `keep` checkpoints. Returns the checkpoint's path.
std::string save_checkpoint(const std::string& run_dir, const GPT& model, const Tokenizer& tokenizer, Adam& optimizer,
                            const TrainerState& state, int64_t keep = 2);

// The directory holding the files of `dir`'s newest checkpoint: the one
// `latest` names, or `dir` itself when it holds config.json. Error otherwise.
std::string resolve_checkpoint(const std::string& dir);
// Whether `dir` holds a checkpoint (a `latest` pointer or checkpoint files).
bool holds_checkpoint(const std::string& dir);
// Removes every checkpoint and the metrics log from a run directory (the
// files ember writes there and nothing else), for `gpt train --overwrite`.
void remove_run_files(const std::string& dir);

// The name of the first tensor holding a NaN or an infinity, or "" if none.
std::string first_non_finite(const std::vector<NamedTensor>& tensors);

struct LoadedModel {
  std::unique_ptr<GPT> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::string path;  // the checkpoint directory the files came from
};
// The model and tokenizer only: enough for `gpt eval` and `gpt sample`, and
// what a PyTorch-written checkpoint provides. Refuses non-finite weights.
LoadedModel load_model(const std::string& dir);
// trainer.json's contents, checked field by field (settings are checked by
// TrainConfig::from_json when a run resumes).
TrainerState trainer_state_from_json(const nlohmann::json& j, const std::string& file);
// The optimizer and trainer state, for --resume; checks they match the model's step.
TrainerState load_training_state(const std::string& dir, Adam& optimizer);

}  // namespace ember
