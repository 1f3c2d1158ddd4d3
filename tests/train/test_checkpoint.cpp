// Checkpoints: the run-directory layout (ckpt-NNNNNN/ + latest, the newest
// `keep` kept, leftovers of killed saves cleared), a loaded checkpoint equal
// to the model and optimizer still in memory, a failed save that leaves the
// previous checkpoint as it was, and PyTorch-written checkpoint directories
// that load with PyTorch's own logits.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "tests/nn/tiny_gpt.h"
#include "tests/train/temp_dir.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/safetensors.h"
#include "train/tokenizer.h"

using namespace ember;
namespace fs = std::filesystem;

namespace {

using ember::testing::TempDir;

// A tiny model after two AdamW steps on a fixed batch: every tensor a
// checkpoint holds (weights, both moments, the step count) is non-trivial.
struct Trained {
  GPT model{ember::testing::tiny_gpt(13, 1), 5};
  CharTokenizer tokenizer = CharTokenizer::train("abcdefghijklm");
  AdamW optimizer{decay_groups(model.named_parameters(), 0.1), 1e-2, 0.9, 0.95};
  Trained() {
    const IntTensor x({2, 8}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 1, 2, 3});
    const IntTensor y({2, 8}, {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 1, 2, 3, 4});
    for (int step = 0; step < 2; ++step) {
      optimizer.zero_grad();
      model.loss(model.forward(x), y).backward();
      optimizer.step();
    }
  }
  TrainerState state(int64_t step) const {
    TrainerState s;
    s.step = step;
    s.dropout_rng = Generator(2).state();
    s.settings = s.stream = nlohmann::json::object();
    return s;
  }
};

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A tokenizer whose serialisation fails, to break a save half-way.
struct FailingTokenizer : CharTokenizer {
  FailingTokenizer() : CharTokenizer(CharTokenizer::train("abcdefghijklm")) {}
  nlohmann::json to_json() const override { fail("tokenizer: disk full (simulated)"); }
};

}  // namespace

TEST_CASE("checkpoint: a loaded checkpoint equals the model and optimizer still in memory, bit for bit") {
  TempDir dir("equal");
  Trained t;
  const std::string path = save_checkpoint(dir.str(), t.model, t.tokenizer, t.optimizer, t.state(2));
  CHECK(path == dir.str("ckpt-000002"));
  const LoadedModel loaded = load_model(dir.str());
  CHECK(loaded.path == path);
  const auto mine = t.model.state_dict(), theirs = loaded.model->state_dict();
  REQUIRE(mine.size() == theirs.size());
  for (size_t i = 0; i < mine.size(); ++i) {
    CAPTURE(mine[i].first);
    CHECK(mine[i].first == theirs[i].first);
    CHECK(mine[i].second.to_vector() == theirs[i].second.to_vector());
  }
  CHECK(loaded.model->config().tie_weights);  // tied: one tensor under two names again
  CHECK(loaded.model->lm_head->weight.is_same(loaded.model->transformer->wte->weight));
  const IntTensor ids({1, 6}, {3, 1, 4, 1, 5, 9});
  t.model.eval();
  loaded.model->eval();
  CHECK(loaded.model->forward(ids).to_vector() == t.model.forward(ids).to_vector());
  CHECK(loaded.tokenizer->encode("jam") == t.tokenizer.encode("jam"));
  // The optimizer's moments and step count come back too.
  AdamW fresh(decay_groups(loaded.model->named_parameters(), 0.1), 1e-2, 0.9, 0.95);
  const TrainerState s = load_training_state(dir.str(), fresh);
  CHECK(s.step == 2);
  CHECK(fresh.step_count() == t.optimizer.step_count());
  REQUIRE(fresh.exp_avg().size() == t.optimizer.exp_avg().size());
  for (size_t k = 0; k < fresh.exp_avg().size(); ++k) {
    CHECK(fresh.exp_avg()[k].to_vector() == t.optimizer.exp_avg()[k].to_vector());
    CHECK(fresh.exp_avg_sq()[k].to_vector() == t.optimizer.exp_avg_sq()[k].to_vector());
  }
}

TEST_CASE("checkpoint: the newest `keep` are kept, latest names the newest, leftovers of killed saves go") {
  TempDir dir("layout");
  Trained t;
  for (int64_t step : {10, 20, 30}) save_checkpoint(dir.str(), t.model, t.tokenizer, t.optimizer, t.state(step), 2);
  CHECK(entries(dir.str()) == std::vector<std::string>{"ckpt-000020", "ckpt-000030", "latest"});
  CHECK(resolve_checkpoint(dir.str()) == dir.str("ckpt-000030"));
  // A killed save leaves a .tmp directory; a save killed between its rename and
  // the pointer update leaves a newer complete directory `latest` never named.
  fs::create_directories(dir.str("ckpt-000040.tmp"));
  fs::create_directories(dir.str("ckpt-000041"));
  CHECK(resolve_checkpoint(dir.str()) == dir.str("ckpt-000030"));  // neither is read
  save_checkpoint(dir.str(), t.model, t.tokenizer, t.optimizer, t.state(40), 3);
  CHECK(entries(dir.str()) == std::vector<std::string>{"ckpt-000020", "ckpt-000030", "ckpt-000040", "latest"});
  CHECK(resolve_checkpoint(dir.str()) == dir.str("ckpt-000040"));
  CHECK(holds_checkpoint(dir.str()));
  // --overwrite removes ember's files and nothing else.
  std::ofstream(dir.str("notes.txt")) << "mine";
  std::ofstream(dir.str("metrics.jsonl")) << "{}\n";
  remove_run_files(dir.str());
  CHECK(entries(dir.str()) == std::vector<std::string>{"notes.txt"});
  CHECK_FALSE(holds_checkpoint(dir.str()));
  CHECK_THROWS_WITH_AS(resolve_checkpoint(dir.str()), doctest::Contains("holds no checkpoint"), Error);
}

TEST_CASE("checkpoint: a save that fails half-way leaves the previous checkpoint as it was") {
  TempDir dir("failed");
  Trained t;
  save_checkpoint(dir.str(), t.model, t.tokenizer, t.optimizer, t.state(7));
  const FailingTokenizer broken;
  CHECK_THROWS_WITH_AS(save_checkpoint(dir.str(), t.model, broken, t.optimizer, t.state(8)),
                       "tokenizer: disk full (simulated)", Error);
  CHECK(entries(dir.str()) == std::vector<std::string>{"ckpt-000007", "latest"});  // no half-written ckpt-000008
  const LoadedModel loaded = load_model(dir.str());
  CHECK(loaded.path == dir.str("ckpt-000007"));
}

TEST_CASE("checkpoint: a directory PyTorch wrote (flat files, tied matrix stored once) loads with PyTorch's logits") {
  // The golden file holds a PyTorch GPT's weights (param.*), input ids and its
  // logits; here they become the directory interop.py's write_checkpoint makes.
  const SafetensorsFile golden = load_safetensors("tests/reference/data/gpt_learned.safetensors");
  const auto& m = golden.metadata;
  REQUIRE(m.at("tie_weights") == "true");
  for (bool drop_lm_head : {false, true}) {
    CAPTURE(drop_lm_head);
    TempDir dir("torch");
    SafetensorsFile weights;
    for (const auto& [name, t] : golden.tensors)
      if (name.starts_with("param.") && !(drop_lm_head && name == "param.lm_head.weight"))
        weights.tensors[name.substr(6)] = t;
    weights.metadata = {{"format", "pt"}};
    save_safetensors(dir.str("model.safetensors"), weights);
    std::ofstream(dir.str("config.json")) << nlohmann::json{
        {"vocab_size", std::stoll(m.at("vocab_size"))},
        {"block_size", std::stoll(m.at("block_size"))},
        {"n_layer", std::stoll(m.at("n_layer"))},
        {"n_head", std::stoll(m.at("n_head"))},
        {"n_embd", std::stoll(m.at("n_embd"))},
        {"dropout", 0.0},
        {"bias", m.at("bias") == "true"},
        {"tie_weights", true},
        {"pos", "learned"}}.dump();
    std::string chars;
    for (int i = 0; i < std::stoi(m.at("vocab_size")); ++i) chars += static_cast<char>('A' + i);
    save_tokenizer(CharTokenizer::train(chars), dir.str("tokenizer.json"));
    const LoadedModel loaded = load_model(dir.str());
    CHECK(loaded.path == dir.str());
    loaded.model->eval();
    const std::vector<float> got = loaded.model->forward(golden.ints("idx")).to_vector();
    const std::vector<float> want = golden.tensor("logits").to_vector();
    REQUIRE(got.size() == want.size());
    // The same float32 maths in other summation orders: test_reference_gpt's 1e-5 of the largest logit.
    float scale = 0.0f, worst = 0.0f;
    for (size_t i = 0; i < got.size(); ++i) {
      scale = std::max(scale, std::abs(want[i]));
      worst = std::max(worst, std::abs(got[i] - want[i]));
    }
    CHECK(worst <= 1e-5f * scale);
  }
}
