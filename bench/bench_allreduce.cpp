// MPI_Allreduce against message size, and the gradient sum of configs S and M
// as a training step does it (train/data_parallel.h: bucketed, in place),
// for the scaling model in bench/README.md. Rank 0 prints one JSON line per
// measurement. Run: tools/mpi_local.sh mpirun -np 2 build/mpi/bench/bench_allreduce
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "nn/gpt.h"
#include "train/data_parallel.h"
#include "train/distributed.h"

using namespace ember;

namespace {

// Median and minimum seconds of `reps` calls after two untimed ones; ranks
// meet at a one-number sum before each call, so every rank times the same call.
template <typename F>
std::pair<double, double> time_calls(F&& call, int reps) {
  std::vector<double> t;
  for (int i = -2; i < reps; ++i) {
    allreduce_max(0);
    const auto t0 = std::chrono::steady_clock::now();
    call();
    if (i >= 0) t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return {t[t.size() / 2], t.front()};
}

void print_line(const std::string& what, int64_t floats, std::pair<double, double> t) {
  if (!is_main_rank()) return;
  fmt::print(R"({{"what": "{}", "floats": {}, "mb": {:.3f}, "median_ms": {:.3f}, "min_ms": {:.3f}, "ranks": {}}})"
             "\n",
             what, floats, floats * 4.0 / 1e6, t.first * 1e3, t.second * 1e3, world_size());
  std::fflush(stdout);
}

// Configs S and M of bench_gpt.cpp (vocab 65, no bias, tied weights).
GPTConfig config(const std::string& name) {
  GPTConfig c;
  c.vocab_size = 65;
  c.bias = false;
  c.n_layer = name == "S" ? 4 : 6;
  c.n_head = name == "S" ? 4 : 6;
  c.n_embd = name == "S" ? 128 : 384;
  c.block_size = name == "S" ? 64 : 256;
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    init_distributed(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_allreduce: %s\n", e.what());
    return 2;
  }
  int reps = 15;
  int64_t max_floats = int64_t{1} << 24;
  CLI::App app{"MPI_Allreduce time against size, and configs S and M's gradient sums"};
  app.add_option("--reps", reps, "timed calls per size")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--max-floats", max_floats, "largest message (floats; sizes go up by 4x from 256)")
      ->check(CLI::Range(int64_t{256}, int64_t{1} << 28))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return finish_distributed(rc == 0 ? 0 : 2, true);
  }
  try {
    std::vector<float> buffer(static_cast<size_t>(max_floats), 1.0f);
    for (int64_t n = 256; n <= max_floats; n *= 4)
      print_line("allreduce", n, time_calls([&] { allreduce_sum(std::span<float>(buffer.data(), n)); }, reps));
    for (const std::string name : {"S", "M"}) {
      GPT model(config(name), 1337);
      int64_t floats = 0;
      for (Tensor& p : model.parameters()) {
        p.set_grad(zeros(p.shape()));
        floats += p.numel();
      }
      DataParallel parallel(model, 1);
      print_line("gradients " + name, floats, time_calls([&] { parallel.sum_across_ranks(); }, reps));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_allreduce: %s%s\n", rank_prefix().c_str(), e.what());
    return finish_distributed(2, false);
  }
  return finish_distributed(0, true);
}
