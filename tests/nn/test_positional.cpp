// The input layer and the positional encodings: shapes and broadcasting of
// token + learned positional embeddings, where their gradients land, and the
// defining properties of the sinusoidal table, RoPE and ALiBi.
#include <cmath>

#include "nn/gpt.h"
#include "tests/core/test_helpers.h"

using namespace ember;
using ember::testing::check_values;

namespace {

IntTensor seed_ids() {  // the seed's batch: 8 sequences of 4 token ids, vocabulary 50257
  std::vector<int64_t> v;
  for (int64_t i = 0; i < 32; ++i) v.push_back((i * 7919 + 13) % 50257);
  v[5] = v[0];  // one id repeated at a different position
  return IntTensor({8, 4}, v);
}

}  // namespace

TEST_CASE("input layer: ids [8,4] -> token [8,4,256] + positional [4,256] -> [8,4,256]") {
  Generator gen(1);
  Embedding wte(50257, 256, gen);
  PositionalEmbedding wpe(4, 256, gen);
  const IntTensor ids = seed_ids();
  const Tensor tok = wte.forward(ids);
  const Tensor pos = wpe.forward(4);
  const Tensor x = add(tok, pos);
  CHECK(tok.shape() == Shape{8, 4, 256});
  CHECK(pos.shape() == Shape{4, 256});
  CHECK(x.shape() == Shape{8, 4, 256});
  // Broadcasting: every sequence b gets the same positional row t.
  for (int64_t b : {0, 3, 7})
    for (int64_t t = 0; t < 4; ++t)
      for (int64_t c : {0, 100, 255}) CHECK(x.at({b, t, c}) == tok.at({b, t, c}) + wpe.weight.at({t, c}));
  // The same token at two positions gets different input vectors.
  CHECK(tok.at({0, 0, 7}) == tok.at({1, 1, 7}));  // ids[1][1] == ids[0][0]
  CHECK(x.at({0, 0, 7}) != x.at({1, 1, 7}));
}

TEST_CASE("input layer: positional gradient equals the batch sum of the upstream gradient") {
  Generator gen(2);
  Embedding wte(50257, 16, gen);
  PositionalEmbedding wpe(4, 16, gen);
  const IntTensor ids = seed_ids();
  Tensor x = add(wte.forward(ids), wpe.forward(4));
  const Tensor upstream = randn({8, 4, 16}, &gen);
  x.backward(upstream);
  const Tensor g = wpe.weight.grad();
  REQUIRE(g.defined());
  for (int64_t t = 0; t < 4; ++t)
    for (int64_t c = 0; c < 16; ++c) {
      double expected = 0.0;
      for (int64_t b = 0; b < 8; ++b) expected += upstream.at({b, t, c});
      // float32 sum of 8 terms of size ~1: error below 1e-5
      CHECK(g.at({t, c}) == doctest::Approx(expected).epsilon(1e-5));
    }
  // Token rows that no id refers to get exactly zero; a repeated id gets the sum.
  const Tensor gw = wte.weight.grad();
  CHECK(gw.at({1, 0}) == 0.0f);
  CHECK(gw.at({50256, 3}) == 0.0f);
  const int64_t rep = ids.data[0];
  CHECK(gw.at({rep, 2}) == doctest::Approx(upstream.at({0, 0, 2}) + upstream.at({1, 1, 2})));
}

TEST_CASE("PositionalEmbedding: a sequence longer than the context is an error naming both") {
  Generator gen(3);
  PositionalEmbedding wpe(4, 8, gen);
  CHECK_THROWS_WITH_AS(wpe.forward(5),
                       "PositionalEmbedding: sequence length 5 exceeds the context length 4 (the table has 4 rows)",
                       Error);
}

TEST_CASE("sinusoidal: the table matches sin/cos of t / 10000^(2i/C)") {
  const int64_t T = 50, C = 16;
  const Tensor pe = sinusoidal_table(T, C);
  CHECK(pe.shape() == Shape{T, C});
  for (int64_t t : {0, 1, 17, 49})
    for (int64_t i = 0; i < C / 2; ++i) {
      const double angle = t / std::pow(10000.0, 2.0 * i / C);
      CHECK(pe.at({t, 2 * i}) == doctest::Approx(std::sin(angle)).epsilon(1e-6));
      CHECK(pe.at({t, 2 * i + 1}) == doctest::Approx(std::cos(angle)).epsilon(1e-6));
    }
  CHECK(pe.at({0, 0}) == 0.0f);
  CHECK(pe.at({0, 1}) == 1.0f);
  SinusoidalEncoding enc(C);
  CHECK(enc.num_parameters() == 0);
  CHECK(enc.forward(1000).shape() == Shape{1000, C});  // any length
}

TEST_CASE("rope: a query-key score depends only on the distance m - n") {
  const int64_t D = 8;
  Generator gen(4);
  const std::vector<float> qv = randn({D}, &gen).to_vector(), kv = randn({D}, &gen).to_vector();
  // Group 0 holds the query, group 1 the key, at every position 0..T-1.
  const int64_t T = 12;
  std::vector<float> x;
  for (int64_t t = 0; t < T; ++t) {
    x.insert(x.end(), qv.begin(), qv.end());
    x.insert(x.end(), kv.begin(), kv.end());
  }
  const Tensor r = rope(tensor({1, T, 2, D}, x));
  auto score = [&](int64_t m, int64_t n) {
    double s = 0.0;
    for (int64_t d = 0; d < D; ++d) s += static_cast<double>(r.at({0, m, 0, d})) * r.at({0, n, 1, d});
    return s;
  };
  for (int64_t shift : {1, 3, 6})
    for (auto [m, n] : {std::pair<int64_t, int64_t>{2, 0}, {5, 5}, {3, 4}, {4, 1}})
      CHECK(score(m + shift, n + shift) == doctest::Approx(score(m, n)).epsilon(1e-5));
  // ...while the score does change with the distance, and position 0 is unrotated.
  CHECK(std::abs(score(3, 0) - score(3, 2)) > 1e-3);
  for (int64_t d = 0; d < D; ++d) CHECK(r.at({0, 0, 0, d}) == qv[d]);
}

TEST_CASE("rope: rotates only the first groups, backward matches finite differences, errors") {
  const Tensor x = ember::testing::leaf({2, 3, 3, 4}, 5);
  const Tensor r = rope(x, 2);
  for (int64_t d = 0; d < 4; ++d) CHECK(r.at({1, 2, 2, d}) == x.at({1, 2, 2, d}));  // group 2 copied
  CHECK(r.at({1, 2, 0, 0}) != x.at({1, 2, 0, 0}));
  CHECK_GRADCHECK(
      "rope", [](const std::vector<Tensor>& v) { return rope(v[0], 2); }, std::vector<Tensor>{x});
  CHECK_THROWS_WITH_AS(rope(zeros({2, 3, 4, 5})),
                       "rope: input must be [B, T, G, D] with an even head size D, got [2, 3, 4, 5]", Error);
}

TEST_CASE("alibi: slopes are the paper's for 1, 2, 4 and 8 heads; bias = -slope x distance") {
  check_values(tensor({1}, alibi_slopes(1)), {1.0f / 256});
  check_values(tensor({2}, alibi_slopes(2)), {1.0f / 16, 1.0f / 256});
  check_values(tensor({4}, alibi_slopes(4)), {1.0f / 4, 1.0f / 16, 1.0f / 64, 1.0f / 256});
  std::vector<float> eight;
  for (int h = 1; h <= 8; ++h) eight.push_back(std::pow(2.0f, -static_cast<float>(h)));
  check_values(tensor({8}, alibi_slopes(8)), eight);
  // 6 heads: the 4-head slopes, then slopes 0 and 2 of the 8-head sequence.
  check_values(tensor({6}, alibi_slopes(6)), {1.0f / 4, 1.0f / 16, 1.0f / 64, 1.0f / 256, 0.5f, 0.125f});
  // With all-zero q and k the scores are just the biases, so the attention
  // weights of query i are softmax_j(-slope (i - j)) over j <= i.
  const int64_t T = 4, H = 2, C = 4;
  const Tensor qkv = cat({zeros({1, T, 2 * C}), randn({1, T, C})}, 2);
  const Tensor slopes = tensor({H}, alibi_slopes(H));
  const Tensor y = causal_attention(qkv, H, slopes);
  for (int64_t h = 0; h < H; ++h) {
    const double s = alibi_slopes(H)[h];
    double num = 0.0, den = 0.0;
    for (int64_t j = 0; j <= 3; ++j) {
      const double w = std::exp(-s * (3 - j));
      num += w * qkv.at({0, j, 2 * C + h * 2});
      den += w;
    }
    CHECK(y.at({0, 3, h * 2}) == doctest::Approx(num / den).epsilon(1e-5));
  }
}
