// The example programs, run as a user runs them: build/embeddings prints the
// walkthrough with the facts it promises, and build/gpt turns bad input into
// one line on stderr and exit code 2. The programs are found beside the test
// binary (build/ or build/asan/).
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

namespace {

std::string program(const std::string& name) {
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / name).string();
}

struct Run {
  int exit_code;
  std::string out;
};

// Runs a shell command, capturing stdout (stderr too when merged with 2>&1).
Run run(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), pipe)) out += buf.data();
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace

TEST_CASE("embeddings example: prints the shapes, the order facts and the gradient check") {
  const Run r = run(program("embeddings"));
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("Input embeddings       tok + pos      [8, 4, 256]") != std::string::npos);
  CHECK(r.out.find("token vectors differ by      0.000000") != std::string::npos);
  CHECK(r.out.find("sum of token embeddings differs by   0.000000") != std::string::npos);
  CHECK(r.out.find("input embeddings differ by           0.000000") == std::string::npos);
  CHECK(r.out.find("max difference 0\n") != std::string::npos);  // wpe.grad equals the batch sum exactly
}

TEST_CASE("gpt command line: bad input gives one line on stderr and exit code 2") {
  const std::string gpt = program("gpt");
  Run r = run(gpt + " train --data /nonexistent/ember.txt 2>&1 >/dev/null");
  CHECK(r.exit_code == 2);
  CHECK(r.out == "error: data: file '/nonexistent/ember.txt' does not exist\n");
  r = run(gpt + " train --pos absolute 2>&1 >/dev/null");
  CHECK(r.exit_code == 2);
  CHECK(r.out.find("unknown positional encoding 'absolute'") != std::string::npos);
  r = run(gpt + " sample --ckpt /nonexistent 2>&1 >/dev/null");
  CHECK(r.exit_code == 2);
  CHECK(r.out == "error: checkpoint: '/nonexistent' is not a directory\n");
  r = run(gpt + " train --no-such-flag 2>&1 >/dev/null");
  CHECK(r.exit_code == 2);
  r = run(gpt + " train --help");
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("--n-layer") != std::string::npos);
}

TEST_CASE("gpt sample: the KV cache prints the recompute path's text, past the context") {
  const std::string gpt = program("gpt");
  const std::string dir = (std::filesystem::temp_directory_path() / "ember_test_sample_kv").string();
  std::filesystem::remove_all(dir);
  Run r = run(gpt + " train --n-layer 1 --n-head 2 --n-embd 16 --block-size 8 --max-iters 1 --eval-iters 1 " +
              "--batch-size 2 --out " + dir + " >/dev/null 2>&1");
  REQUIRE(r.exit_code == 0);
  const std::string sample = gpt + " sample --ckpt " + dir + " --tokens 40 --prompt 'the '";  // 40 > block_size 8
  const Run cached = run(sample), recomputed = run(sample + " --no-kv-cache");
  CHECK(cached.exit_code == 0);
  CHECK(cached.out.rfind("the ", 0) == 0);  // the prompt, then the new text
  CHECK(cached.out.size() > 40);
  CHECK(cached.out == recomputed.out);
  r = run(sample + " --window-shift 9 2>&1 >/dev/null");
  CHECK(r.exit_code == 2);
  CHECK(r.out == "error: sample: the window shift must be in [1, block_size 8], got 9\n");
  std::filesystem::remove_all(dir);
}

TEST_CASE("gpt command line: a bad EMBER_GEMM is one line on stderr and exit code 2, before any training") {
  const std::string out_dir = "/tmp/ember_test_bad_gemm_" + std::to_string(::getpid());
  const Run r = run("EMBER_GEMM=fast " + program("gpt") + " train --max-iters 1 --out " + out_dir + " 2>&1 >/dev/null");
  CHECK(r.exit_code == 2);
  CHECK(r.out == "error: EMBER_GEMM=fast: unknown matmul kernel (expected naive, openblas or ember)\n");
  CHECK(!std::filesystem::exists(out_dir));  // stopped before writing a checkpoint
  std::filesystem::remove_all(out_dir);
}
