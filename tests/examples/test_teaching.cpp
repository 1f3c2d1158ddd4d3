// The teaching commands, run as a user runs them: embeddings --small prints
// the vectors and shows wpe.grad equal to the batch sum; gpt train
// --debug-step takes one step and says so; --dump-graph and --dot write a
// graph with gradients; gpt train draws its plots and gpt plot redraws them;
// misuse gives one line and exit code 2.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "tests/examples/process.h"

namespace fs = std::filesystem;
using namespace ember::testing;

namespace {

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("embeddings --small: every vector, the next-token loss, and wpe.grad equal to the batch sum") {
  ScratchDir dir("embeddings_small");
  const Result r = run(program("embeddings") + " --small --dot " + (dir / "input_layer.dot"));
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out.find("B=2 sequences of T=3 tokens, C=4 channels") != std::string::npos);
  CHECK(count_of(r.out, "   pos[") == 3);
  CHECK(count_of(r.out, " = tok + pos[") == 6);  // one sum per (sequence, position)
  CHECK(r.out.find("Broadcasting: shapes are aligned on the right, [2, 3, 4] against [3, 4]") != std::string::npos);
  // Untrained (weights ~ N(0, 0.02)): the loss is close to ln 4 = 1.3863.
  CHECK(r.out.find("loss = cross-entropy of the next word = 1.386") != std::string::npos);
  CHECK(count_of(r.out, "       sum over b     ") == 3);
  CHECK(r.out.find("wpe.grad[3]        [         0,         0,         0,         0]") != std::string::npos);
  CHECK(r.out.find("max |wpe.grad[t] - sum over b of dloss/dx[b,t]| = 0\n") != std::string::npos);
  const std::string dot = read_file(dir / "input_layer.dot");
  CHECK(dot.find("add_backward") != std::string::npos);
  CHECK(dot.find("wpe.weight\\n[4, 4]") != std::string::npos);
  CHECK(count_of(dot, " -> ") == 4);  // wte -> embedding, wpe -> narrow, both -> add
  const Result bad = run(program("embeddings") + " --tiny 2>&1");
  CHECK(bad.exit_code == 2);
  CHECK(bad.out.starts_with("error: embeddings: unknown argument '--tiny'"));
  CHECK(run(program("embeddings") + " --dot x.dot 2>&1").out ==
        "error: embeddings: --dot draws the --small example; give both\n");
}

TEST_CASE("gpt train --debug-step: one step of a tiny model, its graph, and nothing saved") {
  ScratchDir dir("debug_step");
  const std::string gpt = program("gpt");
  const Result r = run("cd " + dir.path.string() + " && " + gpt + " train --debug-step --dump-graph step.dot");
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out.starts_with("debug step: a 1-layer GPT (C=8, 2 heads, T=4, vocabulary "));
  CHECK(r.out.find("wpe.grad rows 0..3 = sum over the batch of dloss/dx (max difference 0)") != std::string::npos);
  CHECK(r.out.find("one AdamW step taken") != std::string::npos);
  CHECK(!fs::exists(dir / "out"));  // no run directory, no checkpoint
  const std::string dot = read_file(dir / "step.dot");
  CHECK(dot.find("transformer.wpe.weight\\n[4, 8]") != std::string::npos);
  CHECK(count_of(dot, "\\ngrad mean ") >= 8);  // every parameter of the layer has its gradient
  // Given sizes win over the tiny ones.
  const Result wider = run(gpt + " train --debug-step --n-embd 16 --block-size 6");
  CHECK(wider.out.starts_with("debug step: a 1-layer GPT (C=16, 2 heads, T=6, "));
  const Result resume = run(gpt + " train --debug-step --resume " + (dir / "nothing") + " 2>&1");
  CHECK(resume.exit_code == 2);
  CHECK(resume.out ==
        "error: train: --debug-step cannot be combined with --resume (it takes a fresh model's first step)\n");
}

TEST_CASE("gpt train draws loss.svg and positions.svg, --dump-graph keeps step 1's graph, gpt plot redraws") {
  ScratchDir dir("plots_cli");
  const std::string gpt = program("gpt"), text = write_small_text(dir / "text.txt"), out = dir / "run";
  const Result r =
      run(gpt + " train --data " + text + " --out " + out + " " + kTinyModel +
          " --max-iters 8 --eval-interval 4 --eval-iters 1 --log-interval 2 --dump-graph " + (dir / "g.dot"));
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out.find("graph of step 1 written to " + (dir / "g.dot")) != std::string::npos);
  CHECK(r.out.find("plots: " + out + "/loss.svg, " + out + "/positions.svg\n") != std::string::npos);
  CHECK(read_file(dir / "g.dot").find("cross_entropy_backward") != std::string::npos);
  fs::remove(out + "/loss.svg");
  fs::remove(out + "/positions.svg");
  const Result plot = run(gpt + " plot --ckpt " + out);
  CHECK_MESSAGE(plot.exit_code == 0, plot.err);
  CHECK(fs::file_size(out + "/loss.svg") > 1000);
  CHECK(fs::file_size(out + "/positions.svg") > 1000);
  const Result missing = run(gpt + " plot --ckpt " + (dir / "nowhere") + " 2>&1");
  CHECK(missing.exit_code == 2);
  CHECK(missing.out.starts_with("error: plot: cannot read '"));
  CHECK(count_of(missing.out, "\n") == 1);
  const Result resumed = run(gpt + " train --resume " + out + " --dump-graph x.dot 2>&1");
  CHECK(resumed.exit_code == 2);
  CHECK(resumed.out ==
        "error: train: --dump-graph cannot be combined with --resume (it draws a fresh run's first step)\n");
}
