// Causal self-attention in training mode with dropout, for every positional
// kind, against the same computation written out here in double precision:
// qkv = x W^T + b; RoPE rotating (q, k) pairs by t * 10000^(-2i/D); scores
// q k^T / sqrt(D) minus ALiBi's slope x distance; causal softmax; the
// attention dropout mask; P v; the output projection; the residual dropout
// mask. The two masks are the ones the dropout op draws next from the same
// generator, taken by applying it to ones. Also RoPE's rotation against the
// formula, pair by pair.
#include <doctest/doctest.h>

#include <cmath>

#include "core/ops.h"
#include "nn/attention.h"
#include "nn/positional.h"

using namespace ember;

namespace {

std::vector<double> as_double(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  return {v.begin(), v.end()};
}

// x [B,T,C] -> y [B,T,C], every step in double; masks are [B,H,T,T] and [B,T,C].
std::vector<double> reference_attention(const CausalSelfAttention& attn, const Tensor& x, int64_t H, PosKind pos,
                                        const std::vector<float>& slopes, const std::vector<float>& attn_mask,
                                        const std::vector<float>& resid_mask) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), D = C / H;
  const std::vector<double> xs = as_double(x), w = as_double(attn.c_attn->weight), bw = as_double(attn.c_attn->bias);
  const std::vector<double> pw = as_double(attn.c_proj->weight), pb = as_double(attn.c_proj->bias);
  std::vector<double> qkv(static_cast<size_t>(B * T * 3 * C));
  for (int64_t bt = 0; bt < B * T; ++bt)
    for (int64_t o = 0; o < 3 * C; ++o) {
      double s = bw[o];
      for (int64_t i = 0; i < C; ++i) s += w[o * C + i] * xs[bt * C + i];
      qkv[bt * 3 * C + o] = s;
    }
  if (pos == PosKind::Rope)  // q and k heads: the first 2H groups of D channels
    for (int64_t bt = 0; bt < B * T; ++bt)
      for (int64_t g = 0; g < 2 * H; ++g)
        for (int64_t i = 0; i < D / 2; ++i) {
          const double angle = static_cast<double>(bt % T) * std::pow(10000.0, -2.0 * i / D);
          double* p = &qkv[bt * 3 * C + g * D + 2 * i];
          const double x0 = p[0], x1 = p[1];
          p[0] = x0 * std::cos(angle) - x1 * std::sin(angle);
          p[1] = x0 * std::sin(angle) + x1 * std::cos(angle);
        }
  std::vector<double> y(static_cast<size_t>(B * T * C), 0.0), out(y.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> p(static_cast<size_t>(i + 1));
        double top = -INFINITY, total = 0.0;
        for (int64_t j = 0; j <= i; ++j) {
          double s = 0.0;
          for (int64_t d = 0; d < D; ++d)
            s += qkv[(b * T + i) * 3 * C + h * D + d] * qkv[(b * T + j) * 3 * C + C + h * D + d];
          p[j] = s / std::sqrt(static_cast<double>(D)) - (slopes.empty() ? 0.0 : slopes[h] * (i - j));
          top = std::max(top, p[j]);
        }
        for (double& v : p) total += v = std::exp(v - top);
        for (int64_t j = 0; j <= i; ++j) {
          const double pij = p[j] / total * attn_mask[((b * H + h) * T + i) * T + j];
          for (int64_t d = 0; d < D; ++d)
            y[(b * T + i) * C + h * D + d] += pij * qkv[(b * T + j) * 3 * C + 2 * C + h * D + d];
        }
      }
  for (int64_t bt = 0; bt < B * T; ++bt)
    for (int64_t o = 0; o < C; ++o) {
      double s = pb[o];
      for (int64_t i = 0; i < C; ++i) s += pw[o * C + i] * y[bt * C + i];
      out[bt * C + o] = s * resid_mask[bt * C + o];
    }
  return out;
}

}  // namespace

TEST_CASE("attention: training mode with dropout equals the written-out computation for every positional kind") {
  const int64_t B = 2, T = 6, C = 16, H = 2;
  const float p = 0.3f;
  for (PosKind pos : {PosKind::Learned, PosKind::Sinusoidal, PosKind::Rope, PosKind::Alibi, PosKind::None}) {
    CAPTURE(pos_kind_name(pos));
    Generator init(3);
    CausalSelfAttention attn(AttentionConfig{C, H, true, p, pos, 0.02f}, init);
    // Non-zero biases, so a dropped bias term would show.
    for (Tensor b : {attn.c_attn->bias, attn.c_proj->bias})
      for (int64_t i = 0; i < b.numel(); ++i) b.data()[i] = 0.01f * static_cast<float>(i % 7) - 0.03f;
    Generator gx(4);
    const Tensor x = normal({B, T, C}, 0.0f, 1.0f, &gx);
    Generator gen(11), copy(11);
    attn.attn_drop->generator = attn.resid_drop->generator = &gen;
    const Tensor y = attn.forward(x);  // training mode: the module is in training mode when built
    const std::vector<float> attn_mask = dropout(ones({B, H, T, T}), p, true, &copy).to_vector();
    const std::vector<float> resid_mask = dropout(ones({B, T, C}), p, true, &copy).to_vector();
    int64_t dropped = 0;
    for (float m : attn_mask) dropped += m == 0.0f;
    CHECK(dropped > 0);  // the masks really drop something
    const std::vector<float> slopes = pos == PosKind::Alibi ? std::vector<float>{0.0625f, 0.00390625f}  // 2^-4, 2^-8
                                                            : std::vector<float>{};
    const std::vector<double> want = reference_attention(attn, x, H, pos, slopes, attn_mask, resid_mask);
    const std::vector<float> got = y.to_vector();
    REQUIRE(got.size() == want.size());
    // float32 against double through two small matmuls and a softmax of
    // width <= 6: errors of a few ulps of values of order 0.1.
    double worst = 0.0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
    CHECK(worst < 1e-5);
    // The same generator state twice gives the same output; another differs.
    gen = Generator(11);
    CHECK(attn.forward(x).to_vector() == got);
    gen = Generator(12);
    CHECK(attn.forward(x).to_vector() != got);
  }
}

TEST_CASE("rope: pair i at position t turns by t * base^(-2i/D), written out from the formula") {
  const int64_t T = 5, D = 8;
  for (float base : {10000.0f, 500.0f}) {
    CAPTURE(base);
    // x = (1, 0) in every pair: the output pair is (cos angle, sin angle).
    std::vector<float> v(static_cast<size_t>(T * D));
    for (int64_t i = 0; i < T * D; i += 2) v[i] = 1.0f;
    const std::vector<float> out = rope(tensor({1, T, 1, D}, v), -1, base).to_vector();
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < D / 2; ++i) {
        const double angle = static_cast<double>(t) * std::pow(static_cast<double>(base), -2.0 * i / D);
        CAPTURE(t);
        CAPTURE(i);
        CHECK(out[t * D + 2 * i] == doctest::Approx(std::cos(angle)).epsilon(1e-6));
        CHECK(out[t * D + 2 * i + 1] == doctest::Approx(std::sin(angle)).epsilon(1e-6));
      }
  }
}
