// DataParallel: slicing the batch across weight-sharing replicas gives the
// full batch's loss and gradients, deterministically.
#include "tests/core/test_helpers.h"
#include "tests/nn/tiny_gpt.h"
#include "train/data_parallel.h"

using namespace ember;

namespace {

Batch random_batch(int64_t B, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> x(static_cast<size_t>(B * 8)), y(x.size());
  for (auto& v : x) v = g.randint(0, 13);
  for (auto& v : y) v = g.randint(0, 13);
  return {IntTensor({B, 8}, x), IntTensor({B, 8}, y)};
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
