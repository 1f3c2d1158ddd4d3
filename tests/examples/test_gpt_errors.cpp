// build/gpt on bad input, as a user meets it: every case exits with the
// promised code and one line on stderr that names the problem, and no line
// shows a C++ exception's type or a library's own words.
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/examples/process.h"
#include "train/safetensors.h"

using namespace ember::testing;
namespace fs = std::filesystem;

namespace {

// Fragments of library or runtime text that must never reach a user.
const char* kForeign[] = {"std::", "json.exception", "what()", "stoll", "stoi", "stoul", "filesystem error",
                          "Resource temporarily unavailable", "basic_string", "terminate", "bad_alloc", "Aborted"};

void check_one_line_error(const Result& r, int exit_code, const std::string& names) {
  CHECK(r.exit_code == exit_code);
  CHECK_MESSAGE(r.err.starts_with("error: "), r.err);
  CHECK_MESSAGE(r.err.find('\n') == r.err.size() - 1, r.err);  // exactly one line
  CHECK_MESSAGE(r.err.find(names) != std::string::npos, "expected '", names, "' in: ", r.err);
  for (const char* f : kForeign) CHECK_MESSAGE(r.err.find(f) == std::string::npos, "library text in: ", r.err);
}

struct Case {
  std::string args;  // after the program's path
  std::string names;
  int exit_code = 2;
};

// Replaces the first occurrence of `from` in a file (which must contain it).
void edit_file(const std::string& path, const std::string& from, const std::string& to) {
  std::string text = read_file(path);
  const size_t at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, from, " not in ", path);
  text.replace(at, from.size(), to);
  std::ofstream(path, std::ios::binary) << text;
}

// A copy of a trained run directory, to damage one file of.
std::string copy_run(const ScratchDir& dir, const std::string& from, const std::string& name) {
  fs::copy(dir / from, dir / name, fs::copy_options::recursive);
  return dir / name;
}

}  // namespace

TEST_CASE("gpt: bad flags, bad files and failed writes give one clear line and exit 2") {
  ScratchDir dir("errors");
  const std::string gpt = program("gpt"), text = write_small_text(dir / "text.txt");
  const std::string tiny = std::string(kTinyModel) + " --data " + text;
  Result r = run(gpt + " train " + tiny + " --max-iters 3 --eval-interval 3 --out " + (dir / "run"));
  REQUIRE(r.exit_code == 0);
  const std::string run_dir = dir / "run", ckpt = run_dir + "/ckpt-000003";
  REQUIRE(fs::exists(ckpt + "/trainer.json"));

  // Damaged copies of the run, one fault each.
  const std::string zero_batch = copy_run(dir, "run", "zero_batch");
  edit_file(zero_batch + "/ckpt-000003/trainer.json", "\"batch_size\": 4", "\"batch_size\": 0");
  const std::string string_lr = copy_run(dir, "run", "string_lr");
  edit_file(string_lr + "/ckpt-000003/trainer.json", "\"lr\": 0.001", "\"lr\": \"fast\"");
  const std::string bad_heads = copy_run(dir, "run", "bad_heads");
  edit_file(bad_heads + "/ckpt-000003/config.json", "\"n_head\": 2", "\"n_head\": 0");
  const std::string bad_tok = copy_run(dir, "run", "bad_tok");
  std::ofstream(bad_tok + "/ckpt-000003/tokenizer.json") << "{\"kind\": \"char\", \"chars\": [";
  const std::string dangling = copy_run(dir, "run", "dangling");
  std::ofstream(dangling + "/latest") << "ckpt-000099\n";
  const std::string garbled = copy_run(dir, "run", "garbled");
  std::ofstream(garbled + "/latest") << "../../etc\n";
  const std::string steps = copy_run(dir, "run", "steps");
  {
    ember::SafetensorsFile f = ember::load_safetensors(steps + "/ckpt-000003/optimizer.safetensors");
    f.metadata["optimizer_steps"] = "three";
    ember::save_safetensors(steps + "/ckpt-000003/optimizer.safetensors", f);
  }
  const std::string nan_weights = copy_run(dir, "run", "nan_weights");
  {
    ember::SafetensorsFile f = ember::load_safetensors(nan_weights + "/ckpt-000003/model.safetensors");
    f.tensors.at("transformer.h.0.mlp.c_fc.weight").data()[5] = std::nanf("");
    ember::save_safetensors(nan_weights + "/ckpt-000003/model.safetensors", f);
  }
  const std::string flipped = copy_run(dir, "run", "flipped");
  {
    std::string bytes = read_file(flipped + "/ckpt-000003/model.safetensors");
    bytes[bytes.size() - 100] ^= 0x10;
    std::ofstream(flipped + "/ckpt-000003/model.safetensors", std::ios::binary) << bytes;
  }
  const std::string trailing = copy_run(dir, "run", "trailing");
  std::ofstream(trailing + "/ckpt-000003/model.safetensors", std::ios::app | std::ios::binary) << "junk";
  const std::string full_metrics = dir / "full_metrics";
  fs::create_directories(full_metrics);
  fs::create_symlink("/dev/full", full_metrics + "/metrics.jsonl");

  const std::vector<Case> cases = {
      {"train --resume ''", "--resume needs the run directory"},
      {"train --data ''", "--data was given an empty file name"},
      {"train --out ''", "--out is empty"},
      {"train --warmup-iters -1", "--warmup-iters must be >= 0, got -1"},
      {"train --lr-decay-iters -5", "--lr-decay-iters must be >= 0, got -5"},
      {"train --max-iters -1", "--max-iters must be >= 0, got -1"},
      {"train --grad-clip -1", "--grad-clip must be a finite number >= 0"},
      {"train --grad-clip nan", "--grad-clip must be a finite number >= 0 (0: off), got nan"},
      {"train --weight-decay nan", "--weight-decay must be a finite number >= 0, got nan"},
      {"train --lr inf", "--lr must be a finite number >= 0, got inf"},
      {"train --batch-size 0", "--batch-size must be in [1, 16777216], got 0"},
      {"train --eval-interval 0", "--eval-interval must be >= 1, got 0"},
      {"train --eval-iters 0", "--eval-iters must be >= 1, got 0"},
      {"train --log-interval 0", "--log-interval must be >= 1, got 0"},
      {"train --beta1 1", "--beta1 must be in [0, 1), got 1"},
      {"train --dropout 1", "--dropout must be in [0, 1), got 1"},
      {"train --n-embd 30 --n-head 4", "--n-embd must be a multiple of n_head 4, got 30"},
      {"train --n-layer 0", "--n-layer must be in [1, 16777216], got 0"},
      {"train --keep-checkpoints 0", "--keep-checkpoints must be >= 1, got 0"},
      {"train --tokenizer words", "--tokenizer must be char or bpe, got words"},
      {"train --tokenizer bpe --vocab-size 100", "--vocab-size must be in [256, 65536], got 100"},
      {"train --rng numpy", "unknown random stream 'numpy' (choose nanogpt or ember)"},
      {"train --seed 5000000000", "--seed must be below 2^32 with rng nanogpt"},
      {"train --pos absolute", "unknown positional encoding 'absolute'"},
      {"train --threads 0", "the thread count must be in [1, 1024], got 0"},
      {"train --threads 5000", "the thread count must be in [1, 1024], got 5000"},
      {"train --data /dev/zero", "'/dev/zero' is not a regular file"},
      {"train --data " + dir.path.string(), "is a directory, not a text file"},
      {"train --data " + (dir / "missing.txt"), "does not exist"},
      {"train " + tiny + " --out " + run_dir, "already holds a run's checkpoint"},
      {"train --resume " + run_dir + " --lr 0.5", "--lr 0.5 differs from the resumed run's lr = 0.001"},
      {"train --resume " + run_dir + " --n-layer 2", "--n-layer 2 differs from the resumed run's n_layer = 1"},
      {"train --resume " + run_dir + " --out elsewhere", "--out cannot be combined with --resume"},
      {"train --resume " + run_dir + " --overwrite", "--overwrite cannot be combined with --resume"},
      {"train --resume " + (dir / "missing"), "is not a directory"},
      {"train --resume " + dir.path.string(), "holds no checkpoint"},
      {"train --resume " + zero_batch, "field 'batch_size' must be in [1, 16777216], got 0"},
      {"train --resume " + string_lr, "field 'lr' must be a number, got \"fast\""},
      {"train --resume " + bad_heads, "config.json"},
      {"train --resume " + steps, "metadata 'optimizer_steps' must be a non-negative integer, got 'three'"},
      {"sample --ckpt " + bad_tok, "tokenizer.json' is not valid JSON (error at byte"},
      {"sample --ckpt " + dangling, "names 'ckpt-000099', which is missing"},
      {"sample --ckpt " + garbled, "should name a checkpoint (ckpt-NNNNNN), but holds '../../etc'"},
      {"sample --ckpt " + run_dir + " --top-k -1", "--top-k must be >= 0"},
      {"sample --ckpt " + run_dir + " --temperature 0", "--temperature must be a finite number > 0, got 0"},
      {"sample --ckpt " + run_dir + " --temperature nan", "--temperature must be a finite number > 0, got nan"},
      {"sample --ckpt " + run_dir + " --tokens -1", "--tokens must be >= 0, got -1"},
      {"sample --ckpt " + run_dir + " > /dev/full", "cannot write to standard output"},
      {"eval --ckpt " + nan_weights, "weight 'transformer.h.0.mlp.c_fc.weight' holds NaN or infinite values"},
      {"eval --ckpt " + flipped, "does not match its checksum"},
      {"eval --ckpt " + trailing, "4 trailing bytes after the last tensor"},
      {"eval --ckpt " + run_dir + " --data ''", "--data was given an empty file name"},
      {"train " + tiny + " --max-iters 2 --out " + (dir / "stdout_full") + " > /dev/full",
       "cannot write to standard output"},
      {"train " + tiny + " --max-iters 2 --out " + full_metrics + " --overwrite", "metrics: cannot write"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.args);
    check_one_line_error(run(gpt + " " + c.args), c.exit_code, c.names);
  }
  for (const char* env : {"abc", "0", "-3", "99999", ""}) {
    CAPTURE(env);
    check_one_line_error(run(std::string("EMBER_NUM_THREADS='") + env + "' " + gpt + " eval --ckpt " + run_dir),
                         2, "EMBER_NUM_THREADS must be an integer in [1, 1024]");
  }
  // The intact run still evaluates: the failures above touched only copies.
  r = run(gpt + " eval --ckpt " + run_dir);
  CHECK(r.exit_code == 0);
  CHECK(r.out.starts_with("val_loss "));
}

TEST_CASE("gpt train: out of memory while building a model is one line naming the size, exit 2") {
#if defined(__SANITIZE_ADDRESS__)
  MESSAGE("skipped under AddressSanitizer, whose shadow memory needs an unlimited address space");
#else
  // 48 blocks of width 4096 need about 40 GB of weights; 2 GB of address space is far too little.
  const Result r = run("ulimit -v 2000000; " + program("gpt") +
                       " train --n-layer 48 --n-head 4 --n-embd 4096 --max-iters 1 --threads 1 --out /nonexistent/x");
  check_one_line_error(r, 2, "out of memory while training: a tensor of ");
  CHECK(r.err.find(" floats (") != std::string::npos);
  CHECK(r.err.ends_with("B) could not be allocated\n"));
#endif
}
