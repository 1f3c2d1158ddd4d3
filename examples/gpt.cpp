// build/gpt: train a toy GPT on a text file, sample from it, evaluate it.
//   gpt train [--data FILE] [--out DIR] [hyperparameters...]   (no --data: the built-in corpus)
//   gpt sample --ckpt DIR [--prompt TEXT] [--tokens N] [--temperature X] [--top-k K] [--seed S] [--no-kv-cache]
//   gpt eval --ckpt DIR --data FILE [--dump-logits FILE]
// Errors print one line on stderr and exit with code 2.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "core/autograd.h"
#include "core/parallel.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/default_corpus.h"
#include "train/evaluate.h"
#include "train/safetensors.h"
#include "train/trainer.h"

using namespace ember;

namespace {

struct SampleArgs {
  std::string ckpt, prompt = "\n";
  int64_t tokens = 300, top_k = 0;
  double temperature = 0.8;
  uint64_t seed = 1337;
  bool kv_cache = true;
  int64_t window_shift = 1;
};

void add_train_options(CLI::App& cmd, TrainConfig& c, std::string& pos, std::string& resume) {
  GPTConfig& m = c.model;
  cmd.add_option("--data", c.data, "text file to train on (default: the built-in corpus)");
  cmd.add_option("--out", c.out, "output directory for checkpoints and metrics")->capture_default_str();
  cmd.add_option("--n-layer", m.n_layer, "transformer blocks")->capture_default_str();
  cmd.add_option("--n-head", m.n_head, "attention heads")->capture_default_str();
  cmd.add_option("--n-embd", m.n_embd, "embedding dimension")->capture_default_str();
  cmd.add_option("--block-size", m.block_size, "context length")->capture_default_str();
  cmd.add_option("--batch-size", c.batch_size, "sequences per step")->capture_default_str();
  cmd.add_option("--lr", c.lr, "peak learning rate")->capture_default_str();
  cmd.add_option("--min-lr", c.min_lr, "learning rate at the end of the cosine decay")->capture_default_str();
  cmd.add_option("--warmup-iters", c.warmup_iters, "linear warmup steps")->capture_default_str();
  cmd.add_option("--max-iters", c.max_iters, "training steps")->capture_default_str();
  cmd.add_option("--lr-decay-iters", c.lr_decay_iters, "step where the cosine decay ends")->capture_default_str();
  cmd.add_option("--weight-decay", c.weight_decay, "AdamW decay of 2-D weights")->capture_default_str();
  cmd.add_option("--beta1", c.beta1, "AdamW beta1")->capture_default_str();
  cmd.add_option("--beta2", c.beta2, "AdamW beta2")->capture_default_str();
  cmd.add_option("--grad-clip", c.grad_clip, "clip the global gradient norm (0: off)")->capture_default_str();
  cmd.add_option("--dropout", m.dropout, "dropout probability")->capture_default_str();
  cmd.add_flag("--bias,!--no-bias", m.bias, "biases in Linear and LayerNorm layers")->capture_default_str();
  cmd.add_flag("--tie-weights,!--no-tie-weights", m.tie_weights, "share wte and lm_head")->capture_default_str();
  cmd.add_option("--eval-interval", c.eval_interval, "steps between evaluations and checkpoints")
      ->capture_default_str();
  cmd.add_option("--eval-iters", c.eval_iters, "val batches per evaluation")->capture_default_str();
  cmd.add_option("--log-interval", c.log_interval, "steps between progress lines")->capture_default_str();
  cmd.add_option("--seed", c.seed, "random seed")->capture_default_str();
  cmd.add_option("--rng", c.rng, "random stream: nanogpt (PyTorch's, in nanoGPT's order: same seed, same run) | ember")
      ->check(CLI::IsMember({"nanogpt", "ember"}))
      ->capture_default_str();
  cmd.add_option("--pos", pos, "positional encoding: learned | sinusoidal | rope | alibi | none")
      ->capture_default_str();
  cmd.add_option("--tokenizer", c.tokenizer, "char | bpe")->capture_default_str();
  cmd.add_option("--vocab-size", c.bpe_vocab_size, "BPE vocabulary size")->capture_default_str();
  cmd.add_option("--resume", resume, "continue the run saved in this directory");
}

// Prints each token as it is drawn. Both tokenizers decode id by id to the
// same bytes as all at once, so the text is the same as printing at the end.
bool print_token(void* tokenizer, int32_t id) {
  fmt::print("{}", static_cast<const Tokenizer*>(tokenizer)->decode(std::span<const int32_t>(&id, 1)));
  std::fflush(stdout);
  return true;
}

void print_sample(GPT& model, const Tokenizer& tok, const SampleArgs& a) {
  Generator gen(a.seed);
  std::vector<int32_t> prompt = tok.encode(a.prompt);
  GenerateOptions o;
  o.temperature = a.temperature;
  o.top_k = a.top_k;
  o.kv_cache = a.kv_cache;
  o.window_shift = a.window_shift;
  o.on_token = print_token;
  o.on_token_ctx = const_cast<Tokenizer*>(&tok);
  fmt::print("{}", tok.decode(prompt));
  generate(model, prompt, a.tokens, o, gen);
  fmt::print("\n");
}

void report_positions(GPT& model, const std::string& data, const Tokenizer& tok, uint64_t seed) {
  if (!model.transformer->wpe) return;
  const std::string text = data.empty() ? default_corpus() : read_text_file(data);
  const PositionAblation a = position_ablation(model, split_tokens(tok.encode(text)).val, seed);
  fmt::print("positional table check (val loss over the first {} blocks of the val split):\n", a.blocks);
  fmt::print("  as trained         {:.4f}\n  table zeroed       {:.4f}\n  rows shuffled      {:.4f}\n", a.trained,
             a.zeroed, a.shuffled);
}

// --dump-logits: the first val batch's ids (I64 [B,T]) and the model's logits for
// them (F32 [B,T,V]), so tests/reference/interop.py can compare with PyTorch's.
void dump_logits(GPT& model, const std::vector<int32_t>& val, const std::string& path) {
  const Batch first = sequential_batches(val, 32, model.config().block_size).front();
  NoGradGuard no_grad;
  model.eval();
  SafetensorsFile out;
  out.int_tensors["idx"] = first.x;
  out.tensors["logits"] = model.forward(first.x);
  save_safetensors(path, out);
}

int run_train(const TrainConfig& cfg_in, const std::string& pos, const std::string& resume_dir, int64_t max_iters) {
  TrainConfig cfg = cfg_in;
  cfg.model.pos = parse_pos_kind(pos);
  cfg.live_progress = isatty(STDOUT_FILENO);
  const TrainResult r = resume_dir.empty() ? train(cfg) : resume(resume_dir, max_iters);
  fmt::print("trained in {:.1f} s; final val loss {:.4f}; checkpoint in {}\n", r.seconds, r.val_loss, r.out_dir);
  LoadedModel m = load_model(r.out_dir);
  const nlohmann::json settings = read_json_file(r.out_dir + "/trainer.json").at("settings");
  report_positions(*m.model, settings.at("data").get<std::string>(), *m.tokenizer, cfg.seed);
  fmt::print("sample:\n");
  print_sample(*m.model, *m.tokenizer, SampleArgs{});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ember gpt: train a toy GPT on a text file, sample from it, evaluate it"};
  app.require_subcommand(1);
  TrainConfig cfg;
  std::string pos = "learned", resume_dir, eval_data;
  int threads = 0;
  SampleArgs sample;
  CLI::App* train_cmd = app.add_subcommand("train", "train a GPT (no --data: the built-in corpus)");
  add_train_options(*train_cmd, cfg, pos, resume_dir);
  CLI::App* sample_cmd = app.add_subcommand("sample", "generate text from a checkpoint");
  sample_cmd->add_option("--ckpt", sample.ckpt, "checkpoint directory")->required();
  sample_cmd->add_option("--prompt", sample.prompt, "text to continue");
  sample_cmd->add_option("--tokens", sample.tokens, "tokens to generate")->capture_default_str();
  sample_cmd->add_option("--temperature", sample.temperature, "softmax temperature (> 0)")->capture_default_str();
  sample_cmd->add_option("--top-k", sample.top_k, "sample among the k likeliest tokens (0: all)")
      ->capture_default_str();
  sample_cmd->add_option("--seed", sample.seed, "random seed")->capture_default_str();
  sample_cmd->add_flag("!--no-kv-cache", sample.kv_cache, "recompute the whole window for every token (same tokens)");
  sample_cmd
      ->add_option("--window-shift", sample.window_shift,
                   "past the context, rebuild the cache every N tokens (1: nanoGPT's crop, exact; larger is "
                   "faster but sees fewer tokens)")
      ->capture_default_str();
  std::string eval_ckpt, dump_path;
  CLI::App* eval_cmd = app.add_subcommand("eval", "mean loss over every block of a file's val split");
  eval_cmd->add_option("--ckpt", eval_ckpt, "checkpoint directory")->required();
  eval_cmd->add_option("--data", eval_data, "text file (its last 10% is the val split)")->required();
  eval_cmd->add_option("--dump-logits", dump_path, "also write the first val batch's idx and logits (safetensors)");
  for (CLI::App* cmd : {train_cmd, sample_cmd, eval_cmd})
    cmd->add_option("--threads", threads, "threads (default: all cores, or EMBER_NUM_THREADS)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
  try {
    if (threads > 0) set_num_threads(threads);
    if (*train_cmd) return run_train(cfg, pos, resume_dir, train_cmd->count("--max-iters") ? cfg.max_iters : 0);
    if (*sample_cmd) {
      LoadedModel m = load_model(sample.ckpt);
      print_sample(*m.model, *m.tokenizer, sample);
    }
    if (*eval_cmd) {
      LoadedModel m = load_model(eval_ckpt);
      const std::vector<int32_t> tokens = m.tokenizer->encode(read_text_file(eval_data));
      const std::vector<int32_t> val = split_tokens(tokens).val;
      fmt::print("val_loss {:.6f}\n", sequential_loss(*m.model, val));
      if (!dump_path.empty()) dump_logits(*m.model, val, dump_path);
    }
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
}
