// matmul and linear: hand-computed products, broadcasting batch dims, strided
// and transposed operands against contiguous copies and a naive loop, gradient
// checks, error messages, and PyTorch's golden values.
#include <functional>

#include "core/parallel.h"
#include "core/storage.h"
#include "tests/core/test_helpers.h"
#include "train/safetensors.h"

using namespace ember;
using ember::testing::check_values;
using ember::testing::leaf;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Plain triple loop over contiguous copies, accumulated in double: the
// reference the BLAS paths are compared with. Broadcasts like matmul.
std::vector<float> naive_matmul(const Tensor& a, const Tensor& b) {
  const int64_t N = a.size(-2), K = a.size(-1), M = b.size(-1);
  Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                 Shape(b.shape().begin(), b.shape().end() - 2), "naive");
  Shape sa = batch, sb = batch;
  sa.insert(sa.end(), {N, K});
  sb.insert(sb.end(), {K, M});
  const std::vector<float> va = a.expand(sa).to_vector(), vb = b.expand(sb).to_vector();
  std::vector<float> out;
  for (int64_t i = 0; i < numel_of(batch); ++i)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t m = 0; m < M; ++m) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += double(va[(i * N + n) * K + k]) * vb[(i * K + k) * M + m];
        out.push_back(static_cast<float>(s));
      }
  return out;
}

Tensor randn_seeded(const Shape& shape, uint64_t seed) {
  Generator g(seed);
  return randn(shape, &g);
}

}  // namespace

TEST_CASE("matmul: 2-D forward matches hand-computed values") {
  const Tensor a = tensor({2, 3}, {1, 2, 3, 4, 5, 6}), b = tensor({3, 2}, {7, 8, 9, 10, 11, 12});
  const Tensor out = matmul(a, b);
  CHECK(out.shape() == Shape{2, 2});
  // [1 2 3] . [7 9 11] = 58, [1 2 3] . [8 10 12] = 64, [4 5 6] . [7 9 11] = 139, ... = 154
  check_values(out, {58, 64, 139, 154}, 0.0f);  // small integers: float sums are exact
}

TEST_CASE("matmul: batched forward multiplies each batch by its own matrix") {
  const Tensor a = tensor({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  const Tensor b = tensor({2, 2, 2}, {1, 0, 0, 1, 0, 1, 1, 0});  // identity, then the column swap
  check_values(matmul(a, b), {1, 2, 3, 4, 6, 5, 8, 7}, 0.0f);
  // A 2-D b is shared by every batch: [1 2; 3 4; 5 6; 7 8] @ [1; 2] stacked as one product.
  const Tensor col = tensor({2, 1}, {1, 2});
  const Tensor out = matmul(a, col);
  CHECK(out.shape() == Shape{2, 2, 1});
  check_values(out, {5, 11, 17, 23}, 0.0f);
  // A 2-D a is shared too: [1 1] @ each batch of b sums its rows.
  check_values(matmul(tensor({1, 2}, {1, 1}), b), {1, 1, 1, 1}, 0.0f);
}

TEST_CASE("matmul: batch dims broadcast as in PyTorch") {
  const Tensor a = randn_seeded({2, 1, 3, 4}, 1), b = randn_seeded({5, 4, 2}, 2);
  const Tensor out = matmul(a, b);
  CHECK(out.shape() == Shape{2, 5, 3, 2});
  // Sums of 4 products of N(0,1) values: float32 rounding stays below 1e-6.
  check_values(out, naive_matmul(a, b), 1e-5f);
  // Every out[i, j] is a[i, 0] @ b[j].
  const Tensor slice = out.narrow(0, 1, 1).narrow(1, 3, 1).reshape({3, 2});
  check_values(slice, naive_matmul(a.narrow(0, 1, 1).reshape({3, 4}), b.narrow(0, 3, 1).reshape({4, 2})), 1e-5f);
  CHECK(matmul(randn_seeded({3, 4}, 3), randn_seeded({2, 2, 4, 5}, 4)).shape() == Shape{2, 2, 3, 5});
  CHECK(matmul(randn_seeded({1, 3, 4}, 5), randn_seeded({6, 1, 4, 5}, 6)).shape() == Shape{6, 1, 3, 5});
}

TEST_CASE("matmul: strided and transposed operands give the same result as contiguous copies") {
  // Sums of up to 16 N(0,1) products: the BLAS kernels may order them differently
  // from the naive double loop, a few float32 ulps of values near 4, far below 1e-4.
  const float tol = 1e-4f;
  const Tensor at = randn_seeded({4, 3}, 1).transpose(0, 1), bt = randn_seeded({5, 4}, 2).transpose(0, 1);
  check_values(matmul(at, bt), naive_matmul(at.contiguous(), bt.contiguous()), tol);
  check_values(matmul(at, bt), matmul(at.contiguous(), bt.contiguous()).to_vector(), tol);
  // Column slices: rows further apart than their length (ld > cols).
  const Tensor narrow_a = randn_seeded({3, 7}, 3).narrow(1, 2, 4);
  check_values(matmul(narrow_a, bt), naive_matmul(narrow_a.contiguous(), bt), tol);
  // Batched transposes, a batch stride that does not continue the rows, and an
  // expanded (stride 0) batch: the per-batch loop instead of one stacked product.
  const Tensor ba = randn_seeded({3, 4, 5}, 4).transpose(1, 2);           // [3, 5, 4], rows unit-stride
  const Tensor interleaved = randn_seeded({5, 3, 4}, 5).transpose(0, 1);  // [3, 5, 4], batch stride 4
  const Tensor expanded = randn_seeded({1, 5, 4}, 6).expand({3, 5, 4});
  const Tensor b2 = randn_seeded({4, 6}, 7), b3t = randn_seeded({3, 6, 4}, 8).transpose(1, 2);
  for (const Tensor& x : {ba, interleaved, expanded}) {
    check_values(matmul(x, b2), naive_matmul(x.contiguous(), b2), tol);
    check_values(matmul(x, b3t), naive_matmul(x.contiguous(), b3t.contiguous()), tol);
  }
  // Last two dims both non-unit-stride (the unit stride is the batch dim): the
  // one layout that is copied before sgemm.
  const Tensor no_unit = randn_seeded({4, 3, 2}, 9).permute({2, 0, 1});  // [2, 4, 3], strides [1, 6, 2]
  const Tensor b34 = randn_seeded({3, 4}, 10);
  check_values(matmul(no_unit, b34), naive_matmul(no_unit.contiguous(), b34), tol);
  check_values(matmul(b34.transpose(0, 1).unsqueeze(0), no_unit.transpose(1, 2)),
               naive_matmul(b34.transpose(0, 1).unsqueeze(0), no_unit.transpose(1, 2).contiguous()), tol);
}

TEST_CASE("matmul: large and many-batch products agree with the naive loop on every threading path") {
  // Many small batches (one thread per batch), few large ones (sgemm splits each),
  // and broadcast gradients where several products sum onto one matrix.
  // Sums of up to 128 N(0,1) products have magnitude ~11 and rounding errors near 1e-5;
  // 1e-3 leaves a wide margin yet still catches any misplaced or missing product.
  const float tol = 1e-3f;
  const Tensor many_a = randn_seeded({64, 16, 16}, 1), many_b = randn_seeded({64, 16, 16}, 2);
  check_values(matmul(many_a, many_b), naive_matmul(many_a, many_b), tol);
  const Tensor big_a = randn_seeded({2, 128, 128}, 3), big_b = randn_seeded({2, 128, 128}, 4);
  check_values(matmul(big_a, big_b), naive_matmul(big_a, big_b), tol);
  // With more threads than batches, the batches run in turn and sgemm splits each.
  const int threads = num_threads();
  set_num_threads(4);
  const std::vector<float> split = matmul(big_a, big_b).to_vector();
  set_num_threads(threads);
  check_values(tensor({2, 128, 128}, split), naive_matmul(big_a, big_b), tol);
  Tensor a = randn_seeded({4, 1, 8, 8}, 5), b = randn_seeded({1, 6, 8, 8}, 6);
  a.requires_grad_();
  b.requires_grad_();
  const Tensor g = randn_seeded({4, 6, 8, 8}, 7);
  matmul(a, b).backward(g);
  // grad_a[i] = sum_j g[i, j] @ b[0, j]^T and grad_b[j] = sum_i a[i, 0]^T @ g[i, j]:
  // the naive per-pair products, summed over the broadcast dim.
  const Tensor pairs_a = tensor({4, 6, 8, 8}, naive_matmul(g, b.detach().transpose(-2, -1).contiguous()));
  const Tensor pairs_b = tensor({4, 6, 8, 8}, naive_matmul(a.detach().transpose(-2, -1).contiguous(), g));
  check_values(a.grad(), sum(pairs_a, {1}, true).to_vector(), tol);
  check_values(b.grad(), sum(pairs_b, {0}, true).to_vector(), tol);
}

TEST_CASE("matmul: empty dims give empty or all-zero results") {
  const Tensor k0 = matmul(zeros({2, 0}), zeros({0, 3}));  // an empty sum is 0
  CHECK(k0.shape() == Shape{2, 3});
  check_values(k0, {0, 0, 0, 0, 0, 0}, 0.0f);
  CHECK(matmul(zeros({0, 3}), zeros({3, 2})).shape() == Shape{0, 2});
  CHECK(matmul(zeros({2, 0, 3, 4}), zeros({1, 4, 2})).shape() == Shape{2, 0, 3, 2});
  Tensor b = ones({1, 4, 2});
  b.requires_grad_();
  matmul(ones({0, 3, 4}), b).backward(zeros({0, 3, 2}));
  check_values(b.grad(), std::vector<float>(8, 0.0f), 0.0f);  // no batch contributed
}

#ifndef EMBER_NO_STORAGE_CACHE  // the sanitizer build bypasses the counted cache
namespace {
// Buffers allocated while running f (from the system or the cache).
int64_t buffers_allocated(const std::function<void()>& f) {
  const StorageStats before = storage_stats();
  f();
  const StorageStats after = storage_stats();
  return after.system_allocations + after.cache_hits - before.system_allocations - before.cache_hits;
}
}  // namespace

TEST_CASE("matmul: transposed views and stacked batches allocate only the output") {
  const Tensor at = randn_seeded({32, 16}, 1).transpose(0, 1), bt = randn_seeded({24, 32}, 2).transpose(0, 1);
  CHECK(buffers_allocated([&] { matmul(at, bt); }) == 1);
  const Tensor a3 = randn_seeded({4, 16, 32}, 3);
  CHECK(buffers_allocated([&] { matmul(a3, bt); }) == 1);
  CHECK(buffers_allocated([&] { matmul(a3.transpose(1, 2), a3); }) == 1);
  const Tensor w = randn_seeded({8, 32}, 4), bias = randn_seeded({8}, 5);
  CHECK(buffers_allocated([&] { linear(a3, w, bias); }) == 1);
}
#endif

TEST_CASE("matmul: backward matches finite differences") {
  const Fn mm = [](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); };
  CHECK_GRADCHECK("matmul 2-D", mm, (std::vector<Tensor>{leaf({3, 4}, 1), leaf({4, 5}, 2)}));
  // a broadcasts over b's 5 batches and b over a's 2.
  CHECK_GRADCHECK("matmul broadcast", mm, (std::vector<Tensor>{leaf({2, 1, 3, 4}, 3), leaf({5, 4, 2}, 4)}));
  // A 2-D b shared by every batch (stacked products), and a 2-D a shared likewise.
  CHECK_GRADCHECK("matmul 3-D @ 2-D", mm, (std::vector<Tensor>{leaf({2, 3, 4}, 5), leaf({4, 2}, 6)}));
  CHECK_GRADCHECK("matmul 2-D @ 3-D", mm, (std::vector<Tensor>{leaf({3, 4}, 7), leaf({2, 4, 2}, 8)}));
  const Fn mm_t = [](const std::vector<Tensor>& x) { return matmul(x[0].transpose(-2, -1), x[1].transpose(-2, -1)); };
  CHECK_GRADCHECK("matmul transposed", mm_t, (std::vector<Tensor>{leaf({2, 4, 3}, 9), leaf({5, 4}, 10)}));
  // Only one input requiring grad leaves the other's gradient alone.
  Tensor fixed = randn_seeded({4, 5}, 11);
  CHECK_GRADCHECK("matmul one input", mm, (std::vector<Tensor>{leaf({3, 4}, 12), fixed}));
}

TEST_CASE("matmul: bad operands throw errors naming both shapes") {
  CHECK_THROWS_WITH_AS(matmul(zeros({8, 4, 256}), zeros({128, 65})),
                       "matmul: inner dimensions differ: a [8, 4, 256] vs b [128, 65] (256 != 128)", Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({4}), zeros({4, 2})),
                       "matmul: both operands need at least 2 dims: a [4] vs b [4, 2] (unsqueeze a vector into a "
                       "matrix)",
                       Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 3, 4}), zeros({5, 4, 2})),
                       "matmul: batch dims cannot be broadcast: a [2, 3, 4] vs b [5, 4, 2] (batch dim 0: 2 vs 5; "
                       "sizes must match or be 1)",
                       Error);
  CHECK_THROWS_WITH_AS(matmul(Tensor(), zeros({2, 2})), "tensor: use of an undefined tensor", Error);
}

TEST_CASE("linear: forward matches hand-computed values, with and without bias") {
  const Tensor x = tensor({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor w = tensor({2, 3}, {1, 0, -1, 0.5f, 0.5f, 0.5f});
  const Tensor b = tensor({2}, {10, -10});
  // x W^T = [1-3, 0.5*6; 4-6, 0.5*15] = [-2, 3; -2, 7.5]; exact in float.
  check_values(linear(x, w, Tensor()), {-2, 3, -2, 7.5f}, 0.0f);
  check_values(linear(x, w, b), {8, -7, 8, -2.5f}, 0.0f);
  const Tensor y = linear(x.view({2, 1, 3}), w, b);
  CHECK(y.shape() == Shape{2, 1, 2});
  check_values(y, {8, -7, 8, -2.5f}, 0.0f);
}

TEST_CASE("linear: equals matmul with the transposed weight plus bias, for any layout of x") {
  const Tensor x = randn_seeded({2, 3, 4}, 1), w = randn_seeded({5, 4}, 2), b = randn_seeded({5}, 3);
  // The same products summed in possibly different orders: a few ulps of values near 3.
  const float tol = 1e-5f;
  check_values(linear(x, w, b), add(matmul(x, w.transpose(0, 1)), b).to_vector(), tol);
  const Tensor xt = randn_seeded({4, 6}, 4).transpose(0, 1);  // [6, 4], columns strided
  check_values(linear(xt, w, b), add(matmul(xt, w.transpose(0, 1)), b).to_vector(), tol);
  const Tensor xp = randn_seeded({3, 2, 4}, 5).transpose(0, 1);  // rows not one strided run: reshape copies
  check_values(linear(xp, w, Tensor()), matmul(xp, w.transpose(0, 1)).to_vector(), tol);
  const Tensor wt = randn_seeded({4, 5}, 6).transpose(0, 1);  // a transposed weight view
  check_values(linear(x, wt, b), add(matmul(x, wt.transpose(0, 1)), b).to_vector(), tol);
  check_values(linear(zeros({2, 0}), zeros({3, 0}), b.narrow(0, 0, 3)),
               {b.at({0}), b.at({1}), b.at({2}), b.at({0}), b.at({1}), b.at({2})}, 0.0f);
}

TEST_CASE("linear: backward matches finite differences") {
  const Fn lin = [](const std::vector<Tensor>& x) { return linear(x[0], x[1], x[2]); };
  const Fn lin_nb = [](const std::vector<Tensor>& x) { return linear(x[0], x[1], Tensor()); };
  CHECK_GRADCHECK("linear", lin, (std::vector<Tensor>{leaf({3, 4}, 1), leaf({5, 4}, 2), leaf({5}, 3)}));
  CHECK_GRADCHECK("linear no bias", lin_nb, (std::vector<Tensor>{leaf({3, 4}, 4), leaf({5, 4}, 5)}));
  CHECK_GRADCHECK("linear 3-D x", lin, (std::vector<Tensor>{leaf({2, 3, 4}, 6), leaf({2, 4}, 7), leaf({2}, 8)}));
  const Fn lin_t = [](const std::vector<Tensor>& x) { return linear(x[0].transpose(0, 1), x[1], x[2]); };
  CHECK_GRADCHECK("linear transposed x", lin_t,
                  (std::vector<Tensor>{leaf({4, 3}, 9), leaf({5, 4}, 10), leaf({5}, 11)}));
}

TEST_CASE("linear: bad shapes throw errors naming x, weight and the rule") {
  CHECK_THROWS_WITH_AS(linear(zeros({2, 3}), zeros({3}), Tensor()),
                       "linear: weight must be 2-D [out, in] but has shape [3] (x [2, 3])", Error);
  CHECK_THROWS_WITH_AS(
      linear(zeros({2, 3}), zeros({4, 5}), Tensor()),
      "linear: in_features differ: x [2, 3] vs weight [4, 5] (3 != 5; x is [..., in], weight [out, in])", Error);
  CHECK_THROWS_WITH_AS(linear(zeros({2, 5}), zeros({4, 5}), zeros({3})),
                       "linear: bias must have shape [4] to match weight [4, 5] ([out, in]) but has [3] (x [2, 5])",
                       Error);
  CHECK_THROWS_WITH_AS(linear(scalar_tensor(1.0f), zeros({4, 1}), Tensor()),
                       "linear: x must have a feature dim ([..., in]) but has shape [] (weight [4, 1])", Error);
}

TEST_CASE("matmul: forward and gradients match PyTorch's golden values") {
  const SafetensorsFile f = load_safetensors("tests/reference/data/ops.safetensors");
  // PyTorch's sgemm sums the same few products in its own order: within 1e-5
  // of values of magnitude ~3 is a few float32 ulps.
  const float tol = 1e-5f;
  for (const std::string c : {"matmul.bcast.", "matmul.2d."}) {
    CAPTURE(c);
    Tensor a = f.tensor(c + "a").clone().detach(), b = f.tensor(c + "b").clone().detach();
    a.requires_grad_();
    b.requires_grad_();
    const Tensor out = matmul(a, b);
    CHECK(out.shape() == f.tensor(c + "out").shape());
    check_values(out, f.tensor(c + "out").to_vector(), tol);
    out.backward(f.tensor(c + "gout"));
    check_values(a.grad(), f.tensor(c + "grad_a").to_vector(), tol);
    check_values(b.grad(), f.tensor(c + "grad_b").to_vector(), tol);
  }
}
