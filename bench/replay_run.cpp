// Replays a PyTorch shakespeare_char run in ember: the same initial weights and
// the same batches, step for step, so the two final losses differ only by what
// the implementations do, not by which random windows each drew. The run comes
// from `bench/torch_train.py --dump DIR` (init.safetensors, batches.safetensors).
//   /usr/bin/python3 bench/torch_train.py --data FILE --nanogpt-order --dump /tmp/run
//   build/bench/replay_run --data FILE --dir /tmp/run
// The model and hyperparameters are torch_train.py's (nanoGPT's shakespeare_char
// CPU configuration): 4 layers, 4 heads, 128 channels, context 64, batch 12.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "core/ember.h"
#include "nn/gpt.h"
#include "train/data.h"
#include "train/data_parallel.h"
#include "train/evaluate.h"
#include "train/optim.h"
#include "train/safetensors.h"
#include "train/tokenizer.h"

using namespace ember;

namespace {

constexpr int64_t kT = 64;

// The B windows whose starts are row `row` of offsets.
Batch windows(const TokenArray& data, const IntTensor& offsets, int64_t row) {
  const int64_t B = offsets.size(1);
  const std::vector<int64_t> starts(offsets.data.begin() + row * B, offsets.data.begin() + (row + 1) * B);
  return batch_at(data, starts, kT);
}

void replay(const std::string& data_path, const std::string& dir) {
  const std::string text = read_text_file(data_path);
  const CharTokenizer tokenizer = CharTokenizer::train(text);
  const TokenSplit split = split_tokens(tokenizer.encode(text), 0.9);

  GPTConfig cfg;
  cfg.vocab_size = tokenizer.vocab_size();
  cfg.block_size = kT;
  cfg.n_layer = 4;
  cfg.n_head = 4;
  cfg.n_embd = 128;
  cfg.dropout = 0.0f;
  cfg.bias = false;
  cfg.tie_weights = true;
  cfg.pos = PosKind::Learned;
  GPT model(cfg);
  const SafetensorsFile init = load_safetensors(dir + "/init.safetensors");
  model.load_state_dict(std::map<std::string, Tensor>(init.tensors.begin(), init.tensors.end()));
  const SafetensorsFile batches = load_safetensors(dir + "/batches.safetensors");
  const IntTensor& train_offsets = batches.ints("train_offsets");
  const IntTensor& val_offsets = batches.ints("val_offsets");
  EMBER_CHECK(train_offsets.dim() == 2 && val_offsets.dim() == 2 && val_offsets.size(1) == train_offsets.size(1),
              "replay_run: expected train_offsets [steps, B] and val_offsets [n, B]");
  const int64_t steps = train_offsets.size(0);

  model.train();
  AdamW optimizer(decay_groups(model.named_parameters(), 0.1), 1e-3, 0.9, 0.99);
  const std::vector<Tensor> params = model.parameters();
  DataParallel parallel(model);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < steps; ++step) {
    optimizer.set_lr(cosine_lr(step, 1e-3, 1e-4, 100, steps));
    const float loss = parallel.forward_backward(windows(split.train, train_offsets, step));
    clip_grad_norm(params, 1.0f);
    optimizer.step();
    if ((step + 1) % 250 == 0) fmt::print("step {}: train loss {:.4f}\n", step + 1, loss);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  model.eval();
  std::vector<Batch> val_batches;
  for (int64_t i = 0; i < val_offsets.size(0); ++i)
    val_batches.push_back(windows(split.val, val_offsets, i));
  fmt::print("after {} steps ({:.1f} s): val loss {:.4f} over PyTorch's last {} val batches, {:.4f} over every block\n",
             steps, seconds, mean_loss(model, val_batches), val_batches.size(), sequential_loss(model, split.val));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Replay a PyTorch run (bench/torch_train.py --dump) in ember"};
  std::string data, dir;
  app.add_option("--data", data, "the text file the PyTorch run trained on")->required();
  app.add_option("--dir", dir, "the directory torch_train.py --dump wrote")->required();
  try {
    app.parse(argc, argv);
    replay(data, dir);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
  return 0;
}
