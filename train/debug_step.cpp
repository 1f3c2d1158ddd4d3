// One training step, written out so that each stage has a line to break on
// and a named local to print (tok + pos in GPT::input_embeddings, x, logits,
// loss, wpe).
#include "train/debug_step.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/graph_dot.h"
#include "core/ops.h"
#include "train/data.h"
#include "train/default_corpus.h"
#include "train/optim.h"
#include "train/plots.h"
#include "train/tokenizer.h"

namespace ember {
namespace {

std::unique_ptr<Tokenizer> tokenizer_for(const TrainConfig& cfg, const std::string& text) {
  if (cfg.tokenizer == "bpe")
    return std::make_unique<BpeTokenizer>(BpeTokenizer::train(text, static_cast<int32_t>(cfg.bpe_vocab_size)));
  return std::make_unique<CharTokenizer>(CharTokenizer::train(text));
}

// max |wpe.grad[t, :] - sum_b x.grad[b, t, :]| over the T rows the batch used.
float batch_sum_difference(const Tensor& wpe_grad, const Tensor& x_grad) {
  const int64_t T = x_grad.size(1);
  const std::vector<float> table = wpe_grad.narrow(0, 0, T).to_vector(),
                           sum = sum_to(x_grad, {T, x_grad.size(2)}).to_vector();
  float worst = 0.0f;
  for (size_t i = 0; i < sum.size(); ++i) worst = std::max(worst, std::abs(table[i] - sum[i]));
  return worst;
}

}  // namespace

void apply_debug_step_sizes(TrainConfig& cfg, const std::vector<std::string>& given) {
  const auto unless_given = [&](const char* flag, int64_t& value, int64_t tiny) {
    if (std::find(given.begin(), given.end(), flag) == given.end()) value = tiny;
  };
  unless_given("--n-layer", cfg.model.n_layer, 1);
  unless_given("--n-head", cfg.model.n_head, 2);
  unless_given("--n-embd", cfg.model.n_embd, 8);
  unless_given("--block-size", cfg.model.block_size, 4);
  unless_given("--batch-size", cfg.batch_size, 2);
}

DebugStepResult debug_step(const TrainConfig& cfg, const std::string& dump_graph) {
  cfg.validate();
  const std::string text = cfg.data.empty() ? default_corpus() : read_text_file(cfg.data);
  const std::unique_ptr<Tokenizer> tokenizer = tokenizer_for(cfg, text);
  const TokenSplit data = split_tokens(tokenizer->encode(text));
  GPTConfig mc = cfg.model;
  mc.vocab_size = tokenizer->vocab_size();
  const int64_t B = cfg.batch_size, T = mc.block_size;
  EMBER_CHECK(static_cast<int64_t>(data.train.size()) > T,
              "train: --debug-step needs more than block_size = {} tokens of training text, got {}", T,
              data.train.size());
  GPT model(mc, cfg.seed);
  model.train();
  Generator gen(cfg.seed);
  const Batch batch = sample_batch(data.train, B, T, gen);
  AdamW optimizer(decay_groups(model.named_parameters(), cfg.weight_decay),
                  cosine_lr(0, cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters), cfg.beta1, cfg.beta2);
  const Tensor wpe = model.transformer->wpe ? model.transformer->wpe->weight : Tensor();
  fmt::print("debug step: a {}-layer GPT (C={}, {} heads, T={}, vocabulary {}), a batch of B={}, one thread\n",
             mc.n_layer, mc.n_embd, mc.n_head, T, mc.vocab_size, B);

  Tensor x = model.input_embeddings(batch.x);              // [B,T,C] = tok + pos (break ember::GPT::input_embeddings)
  x.retain_grad();                                         // keep dloss/dx to compare with wpe.grad
  const Tensor logits = model.forward_from_embeddings(x);  // [B,T,V]
  const Tensor loss = model.loss(logits, batch.y);         // mean next-token cross-entropy
  loss.backward(/*retain_graph=*/!dump_graph.empty());     // break add_backward, narrow_backward, ...

  DebugStepResult r{loss.item(), std::nanf("")};
  fmt::print("loss {:.4f} (ln {} = {:.4f}: the untrained model guesses nearly uniformly)\n", r.loss, mc.vocab_size,
             std::log(static_cast<double>(mc.vocab_size)));
  if (wpe.defined()) {
    r.batch_sum_difference = batch_sum_difference(wpe.grad(), x.grad());
    fmt::print("wpe.grad rows 0..{} = sum over the batch of dloss/dx (max difference {:.3g})\n", T - 1,
               r.batch_sum_difference);
  }
  if (!dump_graph.empty()) {
    write_text_file(dump_graph, graph_dot(loss));
    fmt::print("graph of the step written to {} (dot -Tsvg {} -o graph.svg)\n", dump_graph, dump_graph);
  }
  optimizer.step();
  fmt::print("one AdamW step taken (lr {:.3g}); nothing saved\n", optimizer.lr());
  return r;
}

}  // namespace ember
