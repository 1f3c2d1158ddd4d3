// ember's side of `make bench`: times nanoGPT-style AdamW training steps of
// config S or M (or the seed's input layer with --input-layer) and prints one
// JSON line in bench/torch_bench.py's schema, so run_bench.py can set the two
// side by side. Run: build/bench/bench_gpt --config S --steps 30 --warmup 3
// Built with MPI (build/mpi/bench/bench_gpt) and started by mpirun, the ranks
// split every step's batch as `gpt train` does and rank 0 prints the line.
// --n-layer, --n-head, --n-embd, --block-size and --batch change the
// config's shape (make bench's cost sweep).
#include <fmt/format.h>
#include <sys/resource.h>
#include <time.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/ember.h"
#include "core/parallel.h"
#include "nn/gpt.h"
#include "train/data_parallel.h"
#include "train/distributed.h"
#include "train/optim.h"

using namespace ember;

namespace {

// The same two sizes as torch_bench.py's CONFIGS; vocab 65 (shakespeare_char).
struct BenchConfig {
  int64_t n_layer, n_head, n_embd, block_size, batch;
};
constexpr BenchConfig kConfigS{4, 4, 128, 64, 12};
constexpr BenchConfig kConfigM{6, 6, 384, 256, 16};
constexpr int64_t kVocab = 65;

struct Options {
  std::string config = "S";
  BenchConfig shape{};  // overrides of the config's fields; 0 keeps the config's
  int steps = 20;
  int warmup = 3;
  int threads = 0;  // 0: ember's default (EMBER_NUM_THREADS, else every core)
  uint64_t seed = 1337;
  bool input_layer = false;
  bool no_sharing = false;
  int64_t pass_tokens = DataParallel::kDefaultPassTokens;
};

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// CPU time this process has used (all its threads), in seconds.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Median wall time of `steps` calls after `warmup` untimed ones, in seconds.
// The median, not the mean, so one step disturbed by the OS does not count.
// cpu_per_step gets the process's CPU time per timed step (a mean): on a
// machine shared with other work, it tells how long the step ran on a core.
template <typename Step>
double time_steps(Step& step, int warmup, int steps, double* cpu_per_step = nullptr) {
  for (int i = 0; i < warmup; ++i) step();
  std::vector<double> times;
  times.reserve(steps);
  const double cpu0 = process_cpu_seconds();
  for (int i = 0; i < steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  if (cpu_per_step) *cpu_per_step = (process_cpu_seconds() - cpu0) / steps;
  std::sort(times.begin(), times.end());
  const size_t n = times.size();
  return n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
}

IntTensor random_ids(Generator& gen, int64_t B, int64_t T, int64_t V) {
  std::vector<int64_t> ids(static_cast<size_t>(B * T));
  for (int64_t& id : ids) id = gen.randint(0, V);
  return IntTensor({B, T}, std::move(ids));
}

// nanoGPT's estimate (PaLM appendix B), as torch_bench.py: per token
// 6N + 12 L H D T, N the parameters without wpe (tied wte/lm_head once);
// 6 = 2 flops per multiply-add x 3 matmuls (forward, two backward) per weight,
// 12 L H D T the same for QK^T and att@V. Times B*T tokens per step.
double flops_per_step(const GPT& model, const GPTConfig& cfg, int64_t B) {
  int64_t n = model.num_parameters();
  if (model.transformer->wpe) n -= model.transformer->wpe->weight.numel();
  const double L = cfg.n_layer, H = cfg.n_head, T = cfg.block_size, D = cfg.n_embd / cfg.n_head;
  return (6.0 * n + 12.0 * L * H * D * T) * B * T;
}

// The config with the fields --n-layer etc. set; Error if heads do not divide the width.
BenchConfig shape_of(const Options& opt) {
  BenchConfig c = opt.config == "S" ? kConfigS : kConfigM;
  for (auto [field, given] : {std::pair{&c.n_layer, opt.shape.n_layer},
                              {&c.n_head, opt.shape.n_head},
                              {&c.n_embd, opt.shape.n_embd},
                              {&c.block_size, opt.shape.block_size},
                              {&c.batch, opt.shape.batch}})
    if (given > 0) *field = given;
  EMBER_CHECK(c.n_embd % c.n_head == 0, "--n-embd {} is not divisible by --n-head {}", c.n_embd, c.n_head);
  return c;
}

std::string bench_gpt(const Options& opt) {
  const BenchConfig c = shape_of(opt);
  GPTConfig cfg;
  cfg.vocab_size = kVocab;
  cfg.block_size = c.block_size;
  cfg.n_layer = c.n_layer;
  cfg.n_head = c.n_head;
  cfg.n_embd = c.n_embd;
  cfg.dropout = 0.0f;
  cfg.bias = false;
  cfg.tie_weights = true;
  cfg.pos = PosKind::Learned;
  GPT model(cfg, opt.seed);
  model.train();
  AdamW optimizer(decay_groups(model.named_parameters(), 0.1), 1e-3, 0.9, 0.99);
  const std::vector<Tensor> params = model.parameters();
  const int64_t B = c.batch, T = c.block_size;
  Generator gen(opt.seed);
  DataParallel parallel(model, 0, opt.pass_tokens);  // the trainer's step: one batch slice per thread

  std::vector<double> comm;  // seconds of each step's cross-rank sums (MPI)
  auto step = [&] {
    // Data content does not matter for timing; shapes do.
    const IntTensor idx = random_ids(gen, B, T, kVocab);
    const IntTensor targets = random_ids(gen, B, T, kVocab);
    parallel.forward_backward({idx, targets});
    comm.push_back(parallel.comm_seconds());
    clip_grad_norm(params, 1.0f);
    optimizer.step();
    optimizer.zero_grad();
  };
  double cpu = 0.0;
  const double med = time_steps(step, opt.warmup, opt.steps, &cpu);
  comm.erase(comm.begin(), comm.begin() + opt.warmup);
  std::sort(comm.begin(), comm.end());
  const double flops = flops_per_step(model, cfg, B);
  return fmt::format(
      R"({{"impl": "ember", "config": "{}", "n_layer": {}, "n_head": {}, "n_embd": {}, "block_size": {}, "batch": {}, )"
      R"("median_ms": {:.3f}, "cpu_ms": {:.3f}, "tokens_per_s": {:.1f}, )"
      R"("gflop_per_step": {:.4f}, "gflop_per_s": {:.3f}, "peak_rss_mb": {:.1f}, "peak_tensor_mb": {:.1f}, )"
      R"("steps": {}, "threads": {}, "shared_chunks_per_step": {:.1f}, "ranks": {}, "comm_ms": {:.3f}}})",
      opt.config, c.n_layer, c.n_head, c.n_embd, c.block_size, c.batch, med * 1e3, cpu * 1e3, B * T / med, flops / 1e9,
      flops / med / 1e9, peak_rss_mb(), static_cast<double>(storage_stats().peak_live_bytes) / (1 << 20), opt.steps,
      num_threads(), static_cast<double>(detail::shared_chunks()) / (opt.warmup + opt.steps), world_size(),
      comm[comm.size() / 2] * 1e3);
}

// The seed: token embedding [50257,256] + learned positions [4,256], ids [8,4],
// loss mean(x^2), backward into both tables; gradients dropped every step.
std::string bench_input_layer(const Options& opt) {
  constexpr int64_t V = 50257, C = 256, B = 8, T = 4;
  Generator init(opt.seed);
  Embedding wte(V, C, init);
  PositionalEmbedding wpe(T, C, init);
  Generator gen(opt.seed);
  const IntTensor ids = random_ids(gen, B, T, V);

  auto step = [&] {
    const Tensor x = add(wte.forward(ids), wpe.forward(T));  // [B,T,C] + [T,C]
    Tensor loss = mean(mul(x, x));
    loss.backward();
    wte.zero_grad();
    wpe.zero_grad();
  };
  const double med = time_steps(step, opt.warmup, opt.steps);
  return fmt::format(R"({{"impl": "ember", "config": "input_layer", "median_ms": {:.4f}, "tokens_per_s": {:.1f}, )"
                     R"("peak_rss_mb": {:.1f}, "steps": {}, "threads": {}}})",
                     med * 1e3, B * T / med, peak_rss_mb(), opt.steps, num_threads());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    init_distributed(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpt: %s\n", e.what());
    return 2;
  }
  Options opt;
  CLI::App app{"ember CPU training-step benchmark (PyTorch's side: bench/torch_bench.py)"};
  app.add_option("--config", opt.config, "model size")->check(CLI::IsMember({"S", "M"}))->capture_default_str();
  app.add_option("--steps", opt.steps, "timed steps")->check(CLI::Range(1, 1000000))->capture_default_str();
  app.add_option("--warmup", opt.warmup, "untimed warm-up steps")->check(CLI::Range(0, 1000000))->capture_default_str();
  app.add_option("--threads", opt.threads, "threads (0: EMBER_NUM_THREADS, else all cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  for (auto [flag, field, help] : {std::tuple{"--n-layer", &opt.shape.n_layer, "layers (default: the config's)"},
                                   {"--n-head", &opt.shape.n_head, "attention heads (default: the config's)"},
                                   {"--n-embd", &opt.shape.n_embd, "channels (default: the config's)"},
                                   {"--block-size", &opt.shape.block_size, "context length T (default: the config's)"},
                                   {"--batch", &opt.shape.batch, "sequences per step (default: the config's)"}})
    app.add_option(flag, *field, help)->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--seed", opt.seed, "seed for the weights and the random batches")->capture_default_str();
  app.add_option("--pass-tokens", opt.pass_tokens, "tokens per forward/backward pass on each thread")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40))
      ->capture_default_str();
  app.add_flag("--no-sharing", opt.no_sharing,
               "no work sharing between threads (parallel.h): each thread runs its own slice alone");
  app.add_flag("--input-layer", opt.input_layer, "time the seed's input layer (embedding + positions) instead");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return finish_distributed(rc == 0 ? 0 : 2, true);
  }
  try {
    if (opt.threads > 0) set_num_threads(opt.threads);
    if (opt.no_sharing) detail::set_work_sharing(false);
    const std::string line = opt.input_layer ? bench_input_layer(opt) : bench_gpt(opt);
    if (is_main_rank()) std::puts(line.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpt: %s%s\n", rank_prefix().c_str(), e.what());
    return finish_distributed(2, false);
  }
  return finish_distributed(0, true);
}
