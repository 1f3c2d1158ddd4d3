// embedding: row lookup by ids of any shape, the scatter-add backward
// (repeated ids accumulate, unused rows get exactly zero), id range errors,
// and PyTorch's golden values.
#include <functional>

#include "tests/core/test_helpers.h"
#include "train/safetensors.h"

using namespace ember;
using ember::testing::check_values;
using ember::testing::leaf;

TEST_CASE("embedding: forward gathers the rows the ids name") {
  const Tensor w = arange(12).view({4, 3});  // row v holds 3v, 3v+1, 3v+2
  const Tensor out = embedding(w, IntTensor({3}, {2, 0, 2}));
  CHECK(out.shape() == Shape{3, 3});
  check_values(out, {6, 7, 8, 0, 1, 2, 6, 7, 8}, 0.0f);  // copies: exact
  // A transposed table (columns strided) and a narrowed one (rows further apart).
  const Tensor wt = arange(12).view({3, 4}).transpose(0, 1);  // [4, 3], row v = v, v+4, v+8
  check_values(embedding(wt, IntTensor({2}, {3, 1})), {3, 7, 11, 1, 5, 9}, 0.0f);
  const Tensor wn = arange(20).view({4, 5}).narrow(1, 1, 3);  // row v = 5v+1 .. 5v+3
  check_values(embedding(wn, IntTensor({2}, {0, 3})), {1, 2, 3, 16, 17, 18}, 0.0f);
}

TEST_CASE("embedding: ids of shape [2, 3] give [2, 3, C]") {
  const Tensor w = arange(8).view({4, 2});
  const Tensor out = embedding(w, IntTensor({2, 3}, {0, 1, 2, 3, 3, 0}));
  CHECK(out.shape() == Shape{2, 3, 2});
  check_values(out, {0, 1, 2, 3, 4, 5, 6, 7, 6, 7, 0, 1}, 0.0f);
  CHECK(embedding(w, IntTensor({0}, {})).shape() == Shape{0, 2});
}

TEST_CASE("embedding: repeated ids accumulate and unused rows get exactly zero gradient") {
  Tensor w = zeros({5, 2});
  w.requires_grad_();
  const Tensor out = embedding(w, IntTensor({4}, {1, 3, 1, 1}));
  out.backward(tensor({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8}));
  // Row 1 collects upstream rows 0, 2 and 3: (1+5+7, 2+6+8); row 3 row 1; rows 0, 2, 4 nothing.
  check_values(w.grad(), {0, 0, 13, 16, 0, 0, 3, 4, 0, 0}, 0.0f);  // small integer sums are exact
}

TEST_CASE("embedding: a large scatter split across threads matches a serial scatter") {
  // 4096 ids x 64 columns crosses the threshold where columns are split over threads.
  Generator gen(3);
  std::vector<int64_t> ids(4096);
  for (int64_t& id : ids) id = static_cast<int64_t>(gen.uniform() * 50) % 50;
  Tensor w = randn({50, 64}, &gen);
  w.requires_grad_();
  const Tensor g = randn({4096, 64}, &gen);
  const Tensor out = embedding(w, IntTensor({4096}, ids));
  check_values(out.narrow(0, 4095, 1), w.detach().narrow(0, ids.back(), 1).to_vector(), 0.0f);
  out.backward(g);
  std::vector<float> expected(50 * 64, 0.0f);
  const std::vector<float> gv = g.to_vector();
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t c = 0; c < 64; ++c) expected[ids[i] * 64 + c] += gv[i * 64 + c];
  check_values(w.grad(), expected, 0.0f);  // same adds in the same order per element
}

TEST_CASE("embedding: backward matches finite differences") {
  const IntTensor ids({2, 3}, {4, 0, 4, 2, 2, 4});
  const std::function<Tensor(const std::vector<Tensor>&)> fn = [&ids](const std::vector<Tensor>& x) {
    return embedding(x[0], ids);
  };
  CHECK_GRADCHECK("embedding", fn, (std::vector<Tensor>{leaf({5, 3}, 1)}));
}

TEST_CASE("embedding: bad tables and ids throw clear errors") {
  const IntTensor ids({4}, {0, 1, 2, 70000});
  CHECK_THROWS_WITH_AS(embedding(zeros({50257, 1}), ids),
                       "embedding: id 70000 at position 3 is out of range for a table of 50257 rows", Error);
  CHECK_THROWS_WITH_AS(embedding(zeros({4, 2}), IntTensor({2}, {1, -1})),
                       "embedding: id -1 at position 1 is out of range for a table of 4 rows", Error);
  CHECK_THROWS_WITH_AS(embedding(zeros({4}), IntTensor({1}, {0})),
                       "embedding: weight must be a 2-D table [V, C] but has shape [4]", Error);
  IntTensor broken({2}, {0, 1});
  broken.data.push_back(2);  // fields are public: a caller can break the invariant
  CHECK_THROWS_WITH_AS(embedding(zeros({4, 2}), broken), "embedding: ids claim shape [2] (2 ids) but hold 3", Error);
}

TEST_CASE("embedding: forward and gradient match PyTorch's golden values") {
  const SafetensorsFile f = load_safetensors("tests/reference/data/ops.safetensors");
  Tensor w = f.tensor("embedding.repeat.weight").clone();
  w.requires_grad_();
  const Tensor out = embedding(w, f.ints("embedding.repeat.ids"));
  CHECK(out.shape() == Shape{2, 5, 6});
  check_values(out, f.tensor("embedding.repeat.out").to_vector(), 0.0f);  // a copy: exact
  out.backward(f.tensor("embedding.repeat.gout"));
  // Up to three rows summed per id; PyTorch may add them in another order: 1 ulp.
  check_values(w.grad(), f.tensor("embedding.repeat.grad_weight").to_vector(), 1e-6f);
}
