// DataParallel: slicing the batch across weight-sharing replicas gives the
// full batch's loss and gradients, deterministically.
#include "core/parallel.h"
#include "tests/core/test_helpers.h"
#include "tests/nn/tiny_gpt.h"
#include "train/data_parallel.h"

using namespace ember;

namespace {

Batch random_batch(int64_t B, uint64_t seed, int64_t T = 8) {
  Generator g(seed);
  std::vector<int64_t> x(static_cast<size_t>(B * T)), y(x.size());
  for (auto& v : x) v = g.randint(0, 13);
  for (auto& v : y) v = g.randint(0, 13);
  return {IntTensor({B, T}, x), IntTensor({B, T}, y)};
}

std::vector<std::vector<float>> grads_of(GPT& model) {
  std::vector<std::vector<float>> g;
  for (const Tensor& p : model.parameters()) g.push_back(p.grad().to_vector());
  return g;
}

}  // namespace

TEST_CASE("DataParallel: sliced loss and gradients equal the whole batch's") {
  // Sequences are 8 tokens: pass_tokens 8 and 16 put one and two rows in each
  // pass (several passes per slice), 512 the whole slice in one.
  for (int threads : {1, 2, 3})
    for (int64_t pass_tokens : {8, 16, 512}) {
      CAPTURE(threads);
      CAPTURE(pass_tokens);
      GPT model(ember::testing::tiny_gpt(), 5);
      const Batch batch = random_batch(5, 6);  // 5 rows: slices of unequal size for 2 and 3 threads
      Tensor loss = model.loss(model.forward(batch.x), batch.y);
      loss.backward();
      std::vector<std::vector<float>> expected;
      for (const Tensor& p : model.parameters()) expected.push_back(p.grad().to_vector());
      DataParallel parallel(model, threads, pass_tokens);
      const float sliced = parallel.forward_backward(batch);
      // Same maths summed in a different order: float32 rounding, well under 1e-5.
      CHECK(sliced == doctest::Approx(loss.item()).epsilon(1e-5));
      const std::vector<Tensor> params = model.parameters();
      for (size_t i = 0; i < params.size(); ++i) ember::testing::check_values(params[i].grad(), expected[i], 1e-5f);
      // The replicas' weights are the model's: an update is seen by every slice.
      params[0].data()[0] += 1.0f;
      const float after = parallel.forward_backward(batch);
      CHECK(after != sliced);
    }
}

TEST_CASE("DataParallel: pass_tokens must be positive") {
  GPT model(ember::testing::tiny_gpt(), 5);
  CHECK_THROWS_WITH_AS(DataParallel(model, 2, 0), "DataParallel: pass_tokens must be positive, got 0", Error);
}

TEST_CASE("DataParallel: two runs from the same state give bit-identical gradients") {
  GPT a(ember::testing::tiny_gpt(), 7), b(ember::testing::tiny_gpt(), 7);
  DataParallel pa(a, 2), pb(b, 2);
  const Batch batch = random_batch(4, 8);
  CHECK(pa.forward_backward(batch) == pb.forward_backward(batch));
  const auto ga = a.parameters(), gb = b.parameters();
  for (size_t i = 0; i < ga.size(); ++i) CHECK(ga[i].grad().to_vector() == gb[i].grad().to_vector());
}

TEST_CASE("DataParallel: work sharing between uneven slices leaves loss and gradients bit-identical") {
  // Slices of 2 and 3 sequences of 32 tokens at 64 channels: the thread with
  // the shorter slice finishes first and takes part of the other's nested
  // calls (sgemm, attention heads, layer norm rows; parallel.h) when it gets
  // a core. The result must equal, bit for bit, the same two slices run one
  // after the other on a one-thread pool, where nothing is shared. Steps
  // repeat until some sharing happened, at most 60; on a machine whose cores
  // are taken by other processes the two threads rarely run at once, so no
  // sharing is then only reported (the pool's own test forces some).
  GPTConfig cfg = ember::testing::tiny_gpt();
  cfg.block_size = 32;
  cfg.n_embd = 64;
  const Batch batch = random_batch(5, 9, 32);
  const int saved_threads = num_threads();
  set_num_threads(1);
  GPT ref_model(cfg, 3);
  DataParallel ref(ref_model, 2);
  const float ref_loss = ref.forward_backward(batch);
  const auto ref_grads = grads_of(ref_model);
  set_num_threads(2);
  GPT model(cfg, 3);
  DataParallel parallel(model, 2);
  const int64_t before = detail::shared_chunks();
  int steps = 0, mismatches = 0;
  for (; steps < 60 && (steps < 3 || detail::shared_chunks() == before); ++steps) {
    const float loss = parallel.forward_backward(batch);
    mismatches += loss != ref_loss || grads_of(model) != ref_grads;
  }
  set_num_threads(saved_threads);
  CAPTURE(steps);
  CHECK(mismatches == 0);
  WARN_MESSAGE(detail::shared_chunks() > before, "no work was shared in ", steps, " steps (a busy machine?)");
}
