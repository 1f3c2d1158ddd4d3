// Checkpoint directories: safetensors for tensors, JSON for everything else.
#include "train/checkpoint.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "train/safetensors.h"

namespace ember {
namespace fs = std::filesystem;
namespace {

void write_json_atomic(const fs::path& path, const nlohmann::json& j) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp);
    EMBER_CHECK(out.good(), "checkpoint: cannot write '{}'", tmp.string());
    out << j.dump(2) << "\n";
    out.flush();
    EMBER_CHECK(out.good(), "checkpoint: error while writing '{}'", tmp.string());
  }
  fs::rename(tmp, path);
}

}  // namespace

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  EMBER_CHECK(in.good(), "checkpoint: cannot read '{}'", path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("checkpoint: '{}' is not valid JSON ({})", path, e.what());
  }
}

namespace {

template <typename T>
T field(const nlohmann::json& j, const char* key, const char* file) {
  EMBER_CHECK(j.is_object() && j.contains(key), "checkpoint: {} has no field '{}'", file, key);
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("checkpoint: {} field '{}' has the wrong type ({})", file, key, j.at(key).dump());
  }
}

nlohmann::json rng_to_json(const Generator::State& s) {
  return {{"words", s.words}, {"has_spare", s.has_spare}, {"spare", s.spare}};
}

Generator::State rng_from_json(const nlohmann::json& j) {
  Generator::State s;
  s.words = field<std::array<uint64_t, 4>>(j, "words", "trainer.json rng");
  s.has_spare = field<bool>(j, "has_spare", "trainer.json rng");
  s.spare = field<double>(j, "spare", "trainer.json rng");
  return s;
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

GPTConfig config_from_json(const nlohmann::json& j) {
  const char* f = "config.json";
  GPTConfig c;
  c.vocab_size = field<int64_t>(j, "vocab_size", f);
  c.block_size = field<int64_t>(j, "block_size", f);
  c.n_layer = field<int64_t>(j, "n_layer", f);
  c.n_head = field<int64_t>(j, "n_head", f);
  c.n_embd = field<int64_t>(j, "n_embd", f);
  c.dropout = field<float>(j, "dropout", f);
  c.bias = field<bool>(j, "bias", f);
  c.tie_weights = field<bool>(j, "tie_weights", f);
  c.pos = parse_pos_kind(field<std::string>(j, "pos", f));
  c.validate();
  return c;
}

void save_checkpoint(const std::string& dir, const GPT& model, const Tokenizer& tokenizer, Adam& optimizer,
                     const TrainerState& state) {
  fs::create_directories(dir);
  const std::string step = std::to_string(state.step);
  SafetensorsFile weights;
  for (const auto& [name, t] : model.state_dict()) weights.tensors[name] = t.detach();
  weights.metadata = {{"format", "pt"}, {"step", step}};
  SafetensorsFile moments;
  const auto params = model.named_parameters();
  size_t k = 0;
  for (const ParamGroup& g : optimizer.groups())
    for (const Tensor& p : g.params) {
      moments.tensors["exp_avg." + p.name()] = optimizer.exp_avg()[k];
      moments.tensors["exp_avg_sq." + p.name()] = optimizer.exp_avg_sq()[k++];
    }
  moments.metadata = {{"step", step}, {"optimizer_steps", std::to_string(optimizer.step_count())}};
  save_safetensors((fs::path(dir) / "model.safetensors").string(), weights);
  write_json_atomic(fs::path(dir) / "config.json", config_to_json(model.config()));
  write_json_atomic(fs::path(dir) / "tokenizer.json", tokenizer.to_json());
  save_safetensors((fs::path(dir) / "optimizer.safetensors").string(), moments);
  nlohmann::json trainer = {{"step", state.step},
                            {"data_rng", rng_to_json(state.data_rng)},
                            {"dropout_rng", rng_to_json(state.dropout_rng)},
                            {"settings", state.settings}};
  if (!state.torch_stream.is_null()) trainer["torch_stream"] = state.torch_stream;
  write_json_atomic(fs::path(dir) / "trainer.json", trainer);
}

LoadedModel load_model(const std::string& dir) {
  EMBER_CHECK(fs::is_directory(dir), "checkpoint: '{}' is not a directory", dir);
  const GPTConfig cfg = config_from_json(read_json_file((fs::path(dir) / "config.json").string()));
  LoadedModel out;
  out.tokenizer = load_tokenizer((fs::path(dir) / "tokenizer.json").string());
  EMBER_CHECK(out.tokenizer->vocab_size() <= cfg.vocab_size,
              "checkpoint: the tokenizer has {} tokens but the model's vocab_size is {}", out.tokenizer->vocab_size(),
              cfg.vocab_size);
  out.model = std::make_unique<GPT>(cfg);
  const SafetensorsFile weights = load_safetensors((fs::path(dir) / "model.safetensors").string());
  std::map<std::string, Tensor> state(weights.tensors.begin(), weights.tensors.end());
  // Tools that deduplicate shared tensors store a tied matrix once.
  if (cfg.tie_weights && !state.count("lm_head.weight") && state.count("transformer.wte.weight"))
    state["lm_head.weight"] = state["transformer.wte.weight"];
  out.model->load_state_dict(state);
  return out;
}

TrainerState load_training_state(const std::string& dir, Adam& optimizer) {
  const nlohmann::json j = read_json_file((fs::path(dir) / "trainer.json").string());
  TrainerState s;
  s.step = field<int64_t>(j, "step", "trainer.json");
  s.data_rng = rng_from_json(j.at("data_rng"));
  s.dropout_rng = rng_from_json(j.at("dropout_rng"));
  s.settings = j.contains("settings") ? j.at("settings") : nlohmann::json::object();
  if (j.contains("torch_stream")) s.torch_stream = j.at("torch_stream");
  const SafetensorsFile weights = load_safetensors((fs::path(dir) / "model.safetensors").string());
  const SafetensorsFile moments = load_safetensors((fs::path(dir) / "optimizer.safetensors").string());
  const std::string step = std::to_string(s.step);
  EMBER_CHECK(weights.metadata.count("step") && weights.metadata.at("step") == step && moments.metadata.count("step") &&
                  moments.metadata.at("step") == step,
              "checkpoint: '{}' is torn: trainer.json is at step {} but the weight or optimizer file is not "
              "(a save was interrupted)",
              dir, step);
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
  optimizer.set_step_count(
      std::stoll(moments.metadata.count("optimizer_steps") ? moments.metadata.at("optimizer_steps") : step));
  return s;
}

}  // namespace ember
