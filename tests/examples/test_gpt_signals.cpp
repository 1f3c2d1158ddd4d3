// build/gpt under faults a user causes: SIGKILL at random moments of a run
// that saves every step never leaves a directory that cannot be loaded,
// evaluated and resumed; SIGINT and SIGTERM save and exit 130 / 143, and the
// resumed run repeats the uninterrupted one's losses bit for bit; a
// diverging run stops with exit 3 and keeps its last good checkpoint.
#include <cmath>
#include <fmt/format.h>

#include <random>
#include <sstream>

#include "tests/examples/process.h"
#include "train/safetensors.h"

using namespace ember::testing;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> split_args(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string a; in >> a;) out.push_back(a);
  return out;
}

// The step `latest` names, or -1 while the run has saved nothing.
int64_t latest_step(const std::string& run_dir) {
  const std::string name = read_file(run_dir + "/latest");
  return name.starts_with("ckpt-") ? std::stoll(name.substr(5)) : -1;
}

// metrics.jsonl with the timing field removed: what two runs must share.
std::vector<std::string> metrics_without_timing(const std::string& run_dir) {
  std::vector<std::string> lines;
  std::istringstream in(read_file(run_dir + "/metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    const size_t at = line.find(",\"tokens_per_s\":");
    lines.push_back(at == std::string::npos ? line : line.substr(0, at) + line.substr(line.find('}', at)));
  }
  return lines;
}

int64_t last_logged_step(const std::string& run_dir) {
  const std::vector<std::string> lines = metrics_without_timing(run_dir);
  if (lines.empty()) return -1;
  const size_t at = lines.back().find("\"step\":");
  return at == std::string::npos ? -1 : std::stoll(lines.back().substr(at + 7));
}

}  // namespace

TEST_CASE("gpt train: SIGKILL at 24 random moments never leaves a run that cannot load, evaluate and resume") {
  ScratchDir dir("sigkill");
  const std::string gpt = program("gpt"), text = write_small_text(dir / "text.txt"), run_dir = dir / "run";
  const std::string common = std::string(kTinyModel) + " --eval-interval 1 --eval-iters 1 --log-interval 1";
  std::mt19937 rng(20261130);
  int64_t newest = -1;
  for (int kill_no = 0; kill_no < 24; ++kill_no) {
    CAPTURE(kill_no);
    // The first run starts fresh; every later one resumes the killed one.
    const std::string args = kill_no == 0 ? "train --data " + text + " --out " + run_dir + " " + common +
                                                " --max-iters 100000 --lr-decay-iters 100000"
                                          : "train --resume " + run_dir + " --max-iters 100000";
    Background training(split_args(gpt + " " + args), dir / "train.log");
    if (kill_no == 0) REQUIRE(wait_for([&] { return fs::exists(run_dir + "/latest"); }));
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(20000, 150000)(rng)));
    training.signal(SIGKILL);
    CHECK(training.wait() == 128 + SIGKILL);
    // The newest complete checkpoint is never older than one seen before.
    const int64_t step = latest_step(run_dir);
    CHECK(step >= newest);
    CHECK(step >= 1);
    newest = step;
    const Result eval = run(gpt + " eval --threads 1 --ckpt " + run_dir);
    CHECK_MESSAGE(eval.exit_code == 0, eval.err);
    CHECK(eval.out.starts_with("val_loss "));
  }
  const Result resumed = run(gpt + " train --resume " + run_dir + " --max-iters " + std::to_string(newest + 2));
  CHECK_MESSAGE(resumed.exit_code == 0, resumed.err);
  CHECK(latest_step(run_dir) == newest + 2);
  // Interrupted saves leave no clutter once a save succeeds: two checkpoints, the pointer, the log,
  // the step-0 positional table with the two plots drawn at the end (wpe_init.safetensors, *.svg),
  // and the token cache (its two files).
  int entries = 0;
  for (const auto& e : fs::directory_iterator(run_dir)) entries += !e.path().filename().string().ends_with(".log");
  CHECK(entries == 8);
  CHECK(std::distance(fs::directory_iterator(run_dir + "/tokens"), fs::directory_iterator()) == 2);
}

TEST_CASE("gpt train: SIGINT saves and exits 130, and resuming repeats the uninterrupted run bit for bit") {
  ScratchDir dir("sigint");
  const std::string gpt = program("gpt"), text = write_small_text(dir / "text.txt");
  const std::string args = gpt + " train --data " + text + " " + kTinyModel +
                           " --max-iters 60 --eval-interval 25 --eval-iters 2 --log-interval 1 --dropout 0.1 --out ";
  const Result full = run(args + (dir / "full"));
  REQUIRE(full.exit_code == 0);
  for (int sig : {SIGINT, SIGTERM}) {
    CAPTURE(sig);
    const std::string out = dir / ("stopped" + std::to_string(sig));
    Background training(split_args(args + out), dir / "stopped.log");
    REQUIRE(wait_for([&] { return last_logged_step(out) >= 12; }));
    training.signal(sig);
    CHECK(training.wait() == 128 + sig);
    const std::string said = read_file(dir / "stopped.log");
    CHECK(said.find(sig == SIGINT ? "stopped by SIGINT at step " : "stopped by SIGTERM at step ") !=
          std::string::npos);
    const int64_t stopped_at = latest_step(out);
    CHECK(stopped_at >= 12);
    CHECK(stopped_at < 60);
    const Result rest = run(gpt + " train --threads 1 --resume " + out);  // the same slices as before
    REQUIRE_MESSAGE(rest.exit_code == 0, rest.err);
    CHECK(metrics_without_timing(out) == metrics_without_timing(dir / "full"));
  }
}

TEST_CASE("gpt train: a second SIGINT quits at once and leaves the saved checkpoint loadable") {
  ScratchDir dir("sigint2");
  const std::string gpt = program("gpt"), text = write_small_text(dir / "text.txt"), out = dir / "run";
  Background training(split_args(gpt + " train --data " + text + " " + kTinyModel +
                                 " --max-iters 100000 --eval-interval 1 --eval-iters 1 --out " + out),
                      dir / "run.log");
  REQUIRE(wait_for([&] { return latest_step(out) >= 3; }));
  training.signal(SIGINT);
  training.signal(SIGINT);
  CHECK(training.wait() == 130);
  const Result eval = run(gpt + " eval --threads 1 --ckpt " + out);
  CHECK_MESSAGE(eval.exit_code == 0, eval.err);
}

TEST_CASE("gpt train --lr 1e6 diverges: exit 3 naming the step, and the last checkpoint still evaluates") {
  ScratchDir dir("diverge");
  const std::string gpt = program("gpt"), out = dir / "run";
  // The built-in corpus, a small model, a checkpoint every step.
  const Result r = run(gpt + " train --lr 1e6 --n-layer 1 --n-embd 32 --threads 1 --eval-interval 1 --eval-iters 1 "
                             "--max-iters 200 --out " + out);
  CHECK(r.exit_code == 3);
  CHECK_MESSAGE(r.err.starts_with("error: train: step "), r.err);
  // Which check stops it (the step's loss and gradient norm, the estimate, the
  // weights before a save) depends on where the overflow shows first; the
  // test below pins the first one.
  CHECK_MESSAGE(r.err.find("not finite") != std::string::npos, r.err);
  CHECK(r.err.find("is untouched") != std::string::npos);
  const int64_t saved = latest_step(out);
  REQUIRE(saved >= 1);
  CHECK(r.err.find("ckpt-" + fmt::format("{:06d}", saved)) != std::string::npos);
  const Result eval = run(gpt + " eval --threads 1 --ckpt " + out);
  REQUIRE_MESSAGE(eval.exit_code == 0, eval.err);
  CHECK(std::isfinite(std::stod(eval.out.substr(9))));
}

TEST_CASE("gpt sample: tokens go out as they are made, and a closed pipe ends it quietly") {
  ScratchDir dir("pipe");
  const std::string gpt = program("gpt"), text = write_small_text(dir / "text.txt"), out = dir / "run";
  REQUIRE(run(gpt + " train --data " + text + " " + kTinyModel + " --max-iters 1 --out " + out).exit_code == 0);
  const Result r = run(gpt + " sample --ckpt " + out + " --tokens 5000000 --threads 1 | head -c 5");
  CHECK(r.exit_code == 0);  // head's status; ember's is checked below
  CHECK(r.out.size() == 5);
  CHECK(r.err.empty());
  const Result status =
      run("bash -c 'set -o pipefail; " + gpt + " sample --ckpt " + out + " --tokens 5000000 | head -c 5'");
  CHECK(status.exit_code == 0);  // ember stopped quietly with status 0 long before 5 million tokens
}

TEST_CASE("gpt train: a loss that overflows at the first resumed step stops there, naming the step and gradient") {
  ScratchDir dir("overflow");
  const std::string gpt = program("gpt"), text = write_small_text(dir / "text.txt"), out = dir / "run";
  REQUIRE(run(gpt + " train --data " + text + " " + kTinyModel + " --max-iters 3 --eval-interval 3 --out " + out)
              .exit_code == 0);
  // A finite but huge final LayerNorm gain: the logits overflow to infinity on the next forward pass.
  const std::string weights = out + "/ckpt-000003/model.safetensors";
  ember::SafetensorsFile f = ember::load_safetensors(weights);
  f.tensors.at("transformer.ln_f.weight").data()[0] = 3e38f;
  ember::save_safetensors(weights, f);
  const Result r = run(gpt + " train --resume " + out + " --max-iters 6");
  CHECK(r.exit_code == 3);
  CHECK_MESSAGE(r.err.starts_with("error: train: step 4: the loss is "), r.err);
  CHECK_MESSAGE(r.err.find("first non-finite gradient: '") != std::string::npos, r.err);
  CHECK(r.err.find("The last checkpoint, " + out + "/ckpt-000003, is untouched.") != std::string::npos);
}
