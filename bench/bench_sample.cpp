// ember's side of the sampling benchmark: times generate() on a checkpoint
// (with the KV cache, or the recompute path) and prints one JSON line in
// bench/torch_sample.py's schema. --init-ckpt writes the checkpoint both
// sides load: config M (6 layers, 6 heads, 384 channels, context 256) with
// GPT-2's init and shakespeare_char's 65-character vocabulary.
//   build/bench/bench_sample --init-ckpt build/bench/sample_M
//   build/bench/bench_sample --ckpt build/bench/sample_M --tokens 500 --threads 1
#include <fmt/format.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "core/parallel.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/optim.h"

using namespace ember;

namespace {

struct Options {
  std::string ckpt, init_ckpt, prompt = "\n";
  int64_t tokens = 500, top_k = 200, window_shift = 1;
  double temperature = 0.8;  // nanoGPT's sample.py defaults: temperature 0.8, top_k 200
  int threads = 0;
  uint64_t seed = 1337;
  bool kv_cache = true;
};

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // KiB on Linux
}

void init_checkpoint(const std::string& dir, uint64_t seed) {
  GPTConfig cfg;
  cfg.vocab_size = 65;
  cfg.block_size = 256;
  cfg.n_layer = 6;
  cfg.n_head = 6;
  cfg.n_embd = 384;
  cfg.bias = false;
  const std::u32string chars = U"\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  const CharTokenizer tok(std::vector<char32_t>(chars.begin(), chars.end()));
  GPT model(cfg, seed);
  AdamW optimizer(decay_groups(model.named_parameters(), 0.1), 1e-3, 0.9, 0.99);
  save_checkpoint(dir, model, tok, optimizer, TrainerState{});
  std::printf("wrote %s (%ld parameters)\n", dir.c_str(), static_cast<long>(model.num_parameters()));
}

// Records when the last token drawn from an uncropped context arrives: token
// i (from 1) sees prompt + i - 1 tokens, so tokens up to block_size - prompt
// + 1 run without the window sliding; later ones pay for the slide.
struct Clock {
  std::chrono::steady_clock::time_point start, in_context_done;
  int64_t seen = 0, in_context = 0;
};
bool on_token(void* ctx, int32_t) {
  auto* c = static_cast<Clock*>(ctx);
  if (++c->seen == c->in_context) c->in_context_done = std::chrono::steady_clock::now();
  return true;
}

double seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string bench(const Options& o) {
  LoadedModel m = load_model(o.ckpt);
  GenerateOptions g;
  g.temperature = o.temperature;
  g.top_k = o.top_k;
  g.kv_cache = o.kv_cache;
  g.window_shift = o.window_shift;
  Generator gen(o.seed);
  const std::vector<int32_t> prompt = m.tokenizer->encode(o.prompt);
  const auto P = static_cast<int64_t>(prompt.size());
  Clock clock;
  clock.in_context = std::min(o.tokens, std::max<int64_t>(0, m.model->config().block_size - P + 1));
  g.on_token = on_token;
  g.on_token_ctx = &clock;
  clock.start = std::chrono::steady_clock::now();
  generate(*m.model, prompt, o.tokens, g, gen);
  const double s = seconds(clock.start, std::chrono::steady_clock::now());
  const double s_in = clock.in_context > 0 ? seconds(clock.start, clock.in_context_done) : 0.0;
  return fmt::format(R"({{"impl": "ember", "tokens": {}, "prompt_tokens": {}, "seconds": {:.3f}, )"
                     R"("tokens_per_s": {:.2f}, "in_context_tokens": {}, "in_context_seconds": {:.3f}, )"
                     R"("kv_cache": {}, "window_shift": {}, "threads": {}, "block_size": {}, "peak_rss_mb": {:.1f}}})",
                     o.tokens, P, s, static_cast<double>(o.tokens) / s, clock.in_context, s_in, o.kv_cache,
                     o.window_shift, num_threads(), m.model->config().block_size, peak_rss_mb());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"ember sampling benchmark (PyTorch's side: bench/torch_sample.py)"};
  auto* ckpt = app.add_option("--ckpt", o.ckpt, "checkpoint directory to sample from");
  app.add_option("--init-ckpt", o.init_ckpt, "write an initialised config M checkpoint here and exit")->excludes(ckpt);
  app.add_option("--tokens", o.tokens, "tokens to generate")->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app.add_option("--prompt", o.prompt, "text to continue (default: a newline, as sample.py)");
  app.add_option("--temperature", o.temperature, "softmax temperature")->capture_default_str();
  app.add_option("--top-k", o.top_k, "sample among the k likeliest tokens (0: all)")->capture_default_str();
  app.add_option("--threads", o.threads, "threads (0: EMBER_NUM_THREADS, else all cores)")->capture_default_str();
  app.add_option("--seed", o.seed, "seed for the weights (--init-ckpt) and the sampler")->capture_default_str();
  app.add_flag("!--no-kv-cache", o.kv_cache, "recompute the whole window for every token");
  app.add_option("--window-shift", o.window_shift, "see gpt sample --help")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    if (o.threads > 0) set_num_threads(o.threads);
    if (!o.init_ckpt.empty()) {
      init_checkpoint(o.init_ckpt, o.seed);
      return 0;
    }
    EMBER_CHECK(!o.ckpt.empty(), "bench_sample: give --ckpt DIR (or --init-ckpt DIR to write one)");
    std::puts(bench(o).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_sample: %s\n", e.what());
    return 2;
  }
  return 0;
}
