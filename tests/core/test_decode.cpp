// The one-token kernels of core/decode.h: each against a hand computation,
// and against the batched op it stands in for during sampling (the same
// maths, rounded in another order), and linear_row against the thread count.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/decode.h"
#include "core/parallel.h"
#include "tests/core/test_helpers.h"

using namespace ember;

namespace {

std::vector<float> random_values(int64_t n, uint64_t seed, float scale = 1.0f) {
  Generator g(seed);
  return normal({n}, 0.0f, scale, &g).to_vector();
}

// Largest |a_i - b_i|.
float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  float m = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Restores the thread count a test changes.
struct ThreadCount {
  int saved = num_threads();
  ~ThreadCount() { set_num_threads(saved); }
};

}  // namespace

// Sums of a few hundred products of O(1) values, in float: the batched ops
// and the row kernels add in different orders, which moves a result by a few
// ulp of the largest partial sum (~1e-6 for sums of size ~10). 1e-5 is a
// decade above that and far below any indexing mistake (O(1)).
constexpr float kTol = 1e-5f;

TEST_CASE("linear_row: y = W x + b by hand, with and without bias") {
  const std::vector<float> w{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};  // [5, 3]
  const std::vector<float> x{1, -1, 2}, b{10, 20, 30, 40, 50};
  std::vector<float> y(5);
  linear_row(x.data(), w.data(), b.data(), y.data(), 3, 5);
  CHECK(y == std::vector<float>{15, 31, 47, 63, 79});  // row r: (3r+1) - (3r+2) + 2(3r+3) = 6r + 5, plus b
  linear_row(x.data(), w.data(), nullptr, y.data(), 3, 5);
  CHECK(y == std::vector<float>{5, 11, 17, 23, 29});
}

TEST_CASE("linear_row: matches the linear op, on any thread count") {
  ThreadCount restore;
  const int64_t in = 389, out = 1155;  // neither a multiple of 4, 8 or 16: every tail runs
  const std::vector<float> w = random_values(in * out, 1), x = random_values(in, 2), b = random_values(out, 3);
  const Tensor expected = linear(tensor({1, in}, x), tensor({out, in}, w), tensor({out}, b));
  std::vector<float> y1(out), y2(out);
  set_num_threads(1);
  linear_row(x.data(), w.data(), b.data(), y1.data(), in, out);
  set_num_threads(2);
  linear_row(x.data(), w.data(), b.data(), y2.data(), in, out);
  CHECK(y1 == y2);                                     // bitwise: each row is summed the same way whoever computes it
  CHECK(max_diff(y1, expected.to_vector()) <= 2e-4f);  // sums of 389 products of N(0,1): |y| ~ 20, ulp ~ 2e-6
}

TEST_CASE("layer_norm_row: matches the layer_norm op, also in place and without affine") {
  const int64_t C = 83;
  const std::vector<float> x = random_values(C, 4, 3.0f), w = random_values(C, 5), b = random_values(C, 6);
  const Tensor expected = layer_norm(tensor({1, C}, x), tensor({C}, w), tensor({C}, b));
  std::vector<float> y(C);
  layer_norm_row(x.data(), w.data(), b.data(), y.data(), C, 1e-5f);
  CHECK(max_diff(y, expected.to_vector()) <= kTol);
  std::vector<float> z = x;
  layer_norm_row(z.data(), nullptr, nullptr, z.data(), C, 1e-5f);
  float mean = 0.0f, var = 0.0f;
  for (float v : z) mean += v / C;
  for (float v : z) var += (v - mean) * (v - mean) / C;
  CHECK(std::abs(mean) <= 1e-6f);
  CHECK(std::abs(var - 1.0f) <= 1e-4f);  // var / (var + eps) with var ~ 9: 1 - 1e-6
}

TEST_CASE("gelu_row: the exact GELU, x Phi(x)") {
  std::vector<float> x{-3.0f, -1.0f, 0.0f, 0.5f, 2.0f};
  const std::vector<float> in = x;
  gelu_row(x.data(), 5);
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = in[i], expected = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    CHECK(std::abs(x[i] - expected) <= 1e-6);
  }
}

TEST_CASE("rope_row: rotates like the rope op at the same position, and leaves other groups alone") {
  const int64_t T = 7, G = 3, D = 6, t = 5;
  const std::vector<float> x = random_values(T * G * D, 7);
  const std::vector<float> expected = rope(tensor({1, T, G, D}, x), 2).to_vector();  // rotate groups 0 and 1
  std::vector<float> cos, sin;
  rope_tables(T, D, 10000.0, cos, sin);
  CHECK(cos[0] == 1.0f);                                       // position 0 does not rotate
  CHECK(sin[t * D / 2] == static_cast<float>(std::sin(5.0)));  // pair 0 turns by t radians
  std::vector<float> row(x.begin() + t * G * D, x.begin() + (t + 1) * G * D);
  rope_row(row.data(), 2, D, cos.data() + t * D / 2, sin.data() + t * D / 2);
  const std::vector<float> want(expected.begin() + t * G * D, expected.begin() + (t + 1) * G * D);
  CHECK(row == want);  // the same products and sums as the op: bitwise
}

TEST_CASE("attention_row: one query over n keys by hand") {
  // One head, D = 1: scores q k_j, plus ALiBi -slope (n - 1 - j).
  const float q = 2.0f, k[3] = {0.0f, 1.0f, 0.5f}, v[3] = {1.0f, 2.0f, 4.0f}, slope = 0.25f;
  float y = 0.0f, scratch[3];
  attention_row(&q, k, v, 3, 1, 1, 3, &slope, &y, scratch);
  double p[3], s = 0.0, expected = 0.0;
  for (int j = 0; j < 3; ++j) s += p[j] = std::exp(q * k[j] - slope * (2 - j));
  for (int j = 0; j < 3; ++j) expected += p[j] / s * v[j];
  CHECK(std::abs(y - expected) <= 1e-6);
}

TEST_CASE("attention_row: equals the last query row of causal_attention, with and without ALiBi") {
  const int64_t T = 37, H = 3, D = 8, C = H * D;
  const std::vector<float> qkv = random_values(T * 3 * C, 8);
  for (bool alibi : {false, true}) {
    CAPTURE(alibi);
    const std::vector<float> slopes = alibi ? std::vector<float>{0.5f, 0.25f, 0.125f} : std::vector<float>{};
    const Tensor s = alibi ? tensor({H}, slopes) : Tensor();
    const std::vector<float> full = causal_attention(tensor({1, T, 3 * C}, qkv), H, s).to_vector();
    // The cache layout: keys [H, T, D], values [H, T, D].
    std::vector<float> k(H * T * D), v(H * T * D);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < D; ++d) {
          k[(h * T + t) * D + d] = qkv[t * 3 * C + C + h * D + d];
          v[(h * T + t) * D + d] = qkv[t * 3 * C + 2 * C + h * D + d];
        }
    for (int64_t n : {int64_t{1}, int64_t{17}, T}) {  // query n - 1 sees keys 0..n-1
      std::vector<float> y(C), scratch(H * T);
      attention_row(qkv.data() + (n - 1) * 3 * C, k.data(), v.data(), n, H, D, T * D, alibi ? slopes.data() : nullptr,
                    y.data(), scratch.data());
      const std::vector<float> want(full.begin() + (n - 1) * C, full.begin() + n * C);
      CHECK(max_diff(y, want) <= kTol);
    }
  }
}
