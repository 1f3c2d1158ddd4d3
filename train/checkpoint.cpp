// Checkpoint directories: safetensors for tensors, JSON for everything else,
// saved as a unit (a temporary directory renamed into place, then a pointer).
#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "train/json_text.h"
#include "train/safetensors.h"

namespace ember {
namespace fs = std::filesystem;
namespace {

constexpr const char* kLatest = "latest";
constexpr const char* kFiles[] = {"model.safetensors", "config.json", "tokenizer.json", "optimizer.safetensors",
                                  "trainer.json"};

// Writes text to path and fsyncs it, so a rename of its directory later
// publishes complete bytes.
void write_file_synced(const fs::path& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  EMBER_CHECK(f != nullptr, "checkpoint: cannot create '{}' ({})", path.string(), std::strerror(errno));
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0 &&
                  ::fsync(::fileno(f)) == 0;
  const int err = errno;
  const bool closed = std::fclose(f) == 0;
  EMBER_CHECK(ok && closed, "checkpoint: writing '{}' failed ({})", path.string(), std::strerror(ok ? errno : err));
}

// Makes renames inside dir durable; best effort (some filesystems refuse).
void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string checkpoint_name(int64_t step) { return fmt::format("ckpt-{:06d}", step); }

// The step of a complete checkpoint's directory name (ckpt-000250 -> 250), or -1.
int64_t step_of(const std::string& name) {
  if (!name.starts_with("ckpt-") || name.size() == 5 || name.size() > 5 + 18) return -1;
  int64_t step = 0;
  for (char c : name.substr(5)) {
    if (c < '0' || c > '9') return -1;
    step = step * 10 + (c - '0');
  }
  return step;
}

// Deletes leftovers of interrupted saves, checkpoints newer than the one just
// saved (saved by a run that was killed before it moved `latest`, so never
// named by it), and all but the newest `keep` of the rest.
void prune(const fs::path& run_dir, int64_t saved_step, int64_t keep) {
  std::vector<std::pair<int64_t, fs::path>> kept;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(run_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with("ckpt-") && name.ends_with(".tmp")) {
      fs::remove_all(e.path(), ec);
      continue;
    }
    const int64_t step = step_of(name);
    if (step < 0) continue;
    if (step > saved_step)
      fs::remove_all(e.path(), ec);
    else
      kept.emplace_back(step, e.path());
  }
  std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = static_cast<size_t>(keep); i < kept.size(); ++i) fs::remove_all(kept[i].second, ec);
}

}  // namespace

nlohmann::json read_json_file(const std::string& path) {
  std::error_code ec;
  EMBER_CHECK(fs::is_regular_file(path, ec), "checkpoint: '{}' is missing (or not a regular file)", path);
  std::ifstream in(path, std::ios::binary);
  EMBER_CHECK(in.good(), "checkpoint: cannot read '{}' ({})", path, std::strerror(errno));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EMBER_CHECK(!in.bad(), "checkpoint: error while reading '{}'", path);
  return parse_json_text(text, fmt::format("checkpoint: '{}'", path));
}

nlohmann::json generator_state_to_json(const Generator::State& s) {
  return {{"words", s.words}, {"has_spare", s.has_spare}, {"spare", s.spare}};
}

Generator::State generator_state_from_json(const nlohmann::json& j, const std::string& file, const char* key) {
  const std::string where = fmt::format("{}' field '{}", file, key);  // reads as: 'FILE' field 'KEY' has no field ...
  EMBER_CHECK(j.is_object() && j.contains(key), "checkpoint: '{}' has no field '{}'", file, key);
  const nlohmann::json& r = j.at(key);
  Generator::State s;
  const nlohmann::json& words = r.is_object() && r.contains("words") ? r.at("words") : nlohmann::json();
  EMBER_CHECK(words.is_array() && words.size() == 4, "checkpoint: '{}' field '{}' needs 'words', 4 integers", file,
              key);
  for (size_t i = 0; i < 4; ++i) {
    const nlohmann::json w = {{"w", words[i]}};
    s.words[i] = json_field<uint64_t>(w, "w", where + ".words");
  }
  s.has_spare = json_field<bool>(r, "has_spare", where);
  s.spare = json_field<double>(r, "spare", where);
  return s;
}

namespace {

// A non-negative decimal integer stored as a metadata string.
int64_t parse_count(const std::string& text, const std::string& file, const char* key) {
  int64_t v = 0;
  bool ok = !text.empty() && text.size() <= 18;
  for (char c : text) ok = ok && c >= '0' && c <= '9', v = v * 10 + (c - '0');
  EMBER_CHECK(ok, "checkpoint: '{}' metadata '{}' must be a non-negative integer, got '{}'", file, key, text);
  return v;
}

}  // namespace

nlohmann::json config_to_json(const GPTConfig& c) {
  return {{"vocab_size", c.vocab_size},
          {"block_size", c.block_size},
          {"n_layer", c.n_layer},
          {"n_head", c.n_head},
          {"n_embd", c.n_embd},
          {"dropout", c.dropout},
          {"bias", c.bias},
          {"tie_weights", c.tie_weights},
          {"pos", pos_kind_name(c.pos)}};
}

GPTConfig config_from_json(const nlohmann::json& j, const std::string& f) {
  GPTConfig c;
  c.vocab_size = json_field<int64_t>(j, "vocab_size", f);
  c.block_size = json_field<int64_t>(j, "block_size", f);
  c.n_layer = json_field<int64_t>(j, "n_layer", f);
  c.n_head = json_field<int64_t>(j, "n_head", f);
  c.n_embd = json_field<int64_t>(j, "n_embd", f);
  c.dropout = json_field<float>(j, "dropout", f);
  c.bias = json_field<bool>(j, "bias", f);
  c.tie_weights = json_field<bool>(j, "tie_weights", f);
  c.pos = parse_pos_kind(json_field<std::string>(j, "pos", f));
  try {
    c.validate();
  } catch (const Error& e) {
    fail("checkpoint: '{}': {}", f, e.what());  // e is ember's own message
  }
  return c;
}

namespace {

void write_files(const fs::path& dir, const GPT& model, const Tokenizer& tokenizer, Adam& optimizer,
                 const TrainerState& state) {
  const std::string step = std::to_string(state.step);
  SafetensorsFile weights;
  for (const auto& [name, t] : model.state_dict()) weights.tensors[name] = t.detach();
  weights.metadata = {{"format", "pt"}, {"step", step}};
  SafetensorsFile moments;
  size_t k = 0;
  for (const ParamGroup& g : optimizer.groups())
    for (const Tensor& p : g.params) {
      moments.tensors["exp_avg." + p.name()] = optimizer.exp_avg()[k];
      moments.tensors["exp_avg_sq." + p.name()] = optimizer.exp_avg_sq()[k++];
    }
  moments.metadata = {{"step", step}, {"optimizer_steps", std::to_string(optimizer.step_count())}};
  save_safetensors((dir / "model.safetensors").string(), weights);
  write_file_synced(dir / "config.json", config_to_json(model.config()).dump(2) + "\n");
  write_file_synced(dir / "tokenizer.json", tokenizer.to_json().dump(2) + "\n");
  save_safetensors((dir / "optimizer.safetensors").string(), moments);
  const nlohmann::json trainer = {{"step", state.step},
                                  {"dropout_rng", generator_state_to_json(state.dropout_rng)},
                                  {"settings", state.settings},
                                  {"stream", state.stream}};
  write_file_synced(dir / "trainer.json", trainer.dump(2) + "\n");
}

}  // namespace

std::string save_checkpoint(const std::string& run_dir, const GPT& model, const Tokenizer& tokenizer, Adam& optimizer,
                            const TrainerState& state, int64_t keep) {
  EMBER_CHECK(keep >= 1, "checkpoint: keep must be >= 1, got {}", keep);
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  EMBER_CHECK(fs::is_directory(run_dir), "checkpoint: cannot create the run directory '{}' ({})", run_dir,
              ec ? ec.message() : "a file of that name is in the way");
  const fs::path dir(run_dir), final_path = dir / checkpoint_name(state.step);
  const fs::path tmp = final_path.string() + ".tmp";
  fs::remove_all(tmp, ec);
  EMBER_CHECK(fs::create_directory(tmp, ec), "checkpoint: cannot create '{}' ({})", tmp.string(), ec.message());
  try {
    write_files(tmp, model, tokenizer, optimizer, state);
    sync_directory(tmp);
  } catch (...) {
    fs::remove_all(tmp, ec);  // the previous checkpoint is untouched; leave no half-written one
    throw;
  }
  // A directory of this step that `latest` does not name is a leftover of a
  // killed run (it never became the newest); `latest` itself names an older step.
  fs::remove_all(final_path, ec);
  fs::rename(tmp, final_path, ec);
  EMBER_CHECK(!ec, "checkpoint: cannot rename '{}' to '{}' ({})", tmp.string(), final_path.string(), ec.message());
  sync_directory(dir);
  const fs::path pointer_tmp = dir / (std::string(kLatest) + ".tmp");
  write_file_synced(pointer_tmp, checkpoint_name(state.step) + "\n");
  fs::rename(pointer_tmp, dir / kLatest, ec);
  EMBER_CHECK(!ec, "checkpoint: cannot update '{}' ({})", (dir / kLatest).string(), ec.message());
  sync_directory(dir);
  prune(dir, state.step, keep);
  return final_path.string();
}

std::string resolve_checkpoint(const std::string& dir) {
  EMBER_CHECK(!dir.empty(), "checkpoint: the directory name is empty");
  std::error_code ec;
  EMBER_CHECK(fs::is_directory(dir, ec), "checkpoint: '{}' is not a directory", dir);
  const fs::path pointer = fs::path(dir) / kLatest;
  if (fs::exists(pointer, ec)) {
    std::ifstream in(pointer);
    std::string name;
    std::getline(in, name);
    EMBER_CHECK(step_of(name) >= 0, "checkpoint: '{}' should name a checkpoint (ckpt-NNNNNN), but holds '{}'",
                pointer.string(), name.substr(0, 40));
    const fs::path path = fs::path(dir) / name;
    EMBER_CHECK(fs::is_directory(path, ec), "checkpoint: '{}' names '{}', which is missing", pointer.string(), name);
    return path.string();
  }
  EMBER_CHECK(fs::exists(fs::path(dir) / "config.json", ec),
              "checkpoint: '{}' holds no checkpoint (no 'latest' file and no config.json)", dir);
  return dir;
}

bool holds_checkpoint(const std::string& dir) {
  std::error_code ec;
  if (fs::exists(fs::path(dir) / kLatest, ec)) return true;
  for (const char* f : kFiles)
    if (fs::exists(fs::path(dir) / f, ec)) return true;
  return false;
}

void remove_run_files(const std::string& dir) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with("ckpt-") || name == kLatest || name == std::string(kLatest) + ".tmp" ||
        name == "metrics.jsonl" || std::find(std::begin(kFiles), std::end(kFiles), name) != std::end(kFiles)) {
      fs::remove_all(e.path(), ec);
      EMBER_CHECK(!ec, "train: cannot remove '{}' ({})", e.path().string(), ec.message());
    }
  }
}

std::string first_non_finite(const std::vector<NamedTensor>& tensors) {
  for (const auto& [name, t] : tensors) {
    if (!t.defined()) continue;
    const Tensor c = t.contiguous();
    const float* d = c.data();
    bool finite = true;
    for (int64_t i = 0; i < c.numel(); ++i) finite &= std::isfinite(d[i]);
    if (!finite) return name;
  }
  return "";
}

LoadedModel load_model(const std::string& dir) {
  LoadedModel out;
  out.path = resolve_checkpoint(dir);
  const fs::path path(out.path);
  const std::string config_file = (path / "config.json").string();
  const GPTConfig cfg = config_from_json(read_json_file(config_file), config_file);
  out.tokenizer = load_tokenizer((path / "tokenizer.json").string());
  EMBER_CHECK(out.tokenizer->vocab_size() <= cfg.vocab_size,
              "checkpoint: the tokenizer has {} tokens but the model's vocab_size is {}", out.tokenizer->vocab_size(),
              cfg.vocab_size);
  out.model = std::make_unique<GPT>(cfg);
  const SafetensorsFile weights = load_safetensors((path / "model.safetensors").string());
  std::map<std::string, Tensor> state(weights.tensors.begin(), weights.tensors.end());
  // Tools that deduplicate shared tensors store a tied matrix once.
  if (cfg.tie_weights && !state.count("lm_head.weight") && state.count("transformer.wte.weight"))
    state["lm_head.weight"] = state["transformer.wte.weight"];
  out.model->load_state_dict(state);
  const std::string bad = first_non_finite(out.model->named_parameters());
  EMBER_CHECK(bad.empty(),
              "checkpoint: '{}': weight '{}' holds NaN or infinite values (the run that saved it diverged)",
              (path / "model.safetensors").string(), bad);
  return out;
}

TrainerState trainer_state_from_json(const nlohmann::json& j, const std::string& file) {
  EMBER_CHECK(j.is_object(), "checkpoint: '{}' must hold a JSON object", file);
  TrainerState s;
  s.step = json_field<int64_t>(j, "step", file);
  EMBER_CHECK(s.step >= 0, "checkpoint: '{}' field 'step' must be >= 0, got {}", file, s.step);
  s.dropout_rng = generator_state_from_json(j, file, "dropout_rng");
  EMBER_CHECK(j.contains("settings"), "checkpoint: '{}' has no field 'settings' (not a training checkpoint)", file);
  s.settings = j.at("settings");
  if (j.contains("stream")) {
    s.stream = j.at("stream");
  } else {  // saved before the streams had one interface: data_rng and torch_stream at the top
    s.stream = nlohmann::json::object();
    if (j.contains("data_rng")) s.stream["data_rng"] = j.at("data_rng");
    const nlohmann::json& t = j.contains("torch_stream") ? j.at("torch_stream") : nlohmann::json();
    if (t.is_object() && t.contains("state")) s.stream["torch_state"] = t.at("state");
    if (t.is_object() && t.contains("next_starts")) s.stream["next_starts"] = t.at("next_starts");
  }
  EMBER_CHECK(s.stream.is_object(), "checkpoint: '{}' field 'stream' must be a JSON object", file);
  return s;
}

TrainerState load_training_state(const std::string& dir, Adam& optimizer) {
  const fs::path path(resolve_checkpoint(dir));
  const std::string file = (path / "trainer.json").string();
  const TrainerState s = trainer_state_from_json(read_json_file(file), file);
  const std::string weights_file = (path / "model.safetensors").string();
  const std::string moments_file = (path / "optimizer.safetensors").string();
  const SafetensorsFile weights = load_safetensors(weights_file);
  const SafetensorsFile moments = load_safetensors(moments_file);
  const std::string step = std::to_string(s.step);
  EMBER_CHECK(weights.metadata.count("step") && weights.metadata.at("step") == step && moments.metadata.count("step") &&
                  moments.metadata.at("step") == step,
              "checkpoint: '{}' is torn: trainer.json is at step {} but the weight or optimizer file is not "
              "(a save was interrupted)",
              path.string(), step);
  size_t k = 0;
  for (const ParamGroup& g : optimizer.groups())
    for (const Tensor& p : g.params) {
      for (auto [prefix, dst] :
           {std::pair{"exp_avg.", optimizer.exp_avg()[k]}, {"exp_avg_sq.", optimizer.exp_avg_sq()[k]}}) {
        const Tensor& src = moments.tensor(prefix + p.name());
        EMBER_CHECK(src.shape() == dst.shape(), "checkpoint: optimizer moment '{}{}' has shape {} but expected {}",
                    prefix, p.name(), shape_str(src.shape()), shape_str(dst.shape()));
        std::copy(src.data(), src.data() + src.numel(), dst.data());
      }
      ++k;
    }
  const auto steps = moments.metadata.find("optimizer_steps");
  optimizer.set_step_count(steps == moments.metadata.end() ? s.step
                                                           : parse_count(steps->second, moments_file, "optimizer_steps"));
  return s;
}

}  // namespace ember
