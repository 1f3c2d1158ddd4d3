// layer_norm: a fused kernel over the last dim C. Forward keeps each row's
// mean and rstd = 1/sqrt(var + eps) ([rows] each) and writes
// y = (x - mean) * rstd * w + b in one pass; backward recomputes xhat from
// them. Rows run in parallel; the weight and bias gradients are sums over
// rows, gathered in per-chunk partials and added in a fixed order.
#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/parallel.h"

namespace ember {
namespace {

constexpr int kLanes = 16;            // independent partial sums, so reductions vectorise
constexpr int64_t kTaskWork = 16384;  // elements a parallel task should at least get
constexpr int64_t kMaxChunks = 64;    // row chunks in backward, each with its own gw/gb partials

int64_t grain_for(int64_t per_item) { return std::max<int64_t>(1, kTaskWork / std::max<int64_t>(per_item, 1)); }

// sum_i (x_i - shift)^Power for Power 1 or 2.
template <int Power>
float row_sum(const float* x, float shift, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float d = x[i + l] - shift;
      acc[l] += Power == 2 ? d * d : d;
    }
  float s = 0.0f;
  for (; i < n; ++i) {
    const float d = x[i] - shift;
    s += Power == 2 ? d * d : d;
  }
  for (float a : acc) s += a;
  return s;
}

// Mean and biased variance in two passes (the second over x - mean, which
// cannot cancel catastrophically as E[x^2] - E[x]^2 can).
template <bool HasW, bool HasB>
void norm_row(const float* x, float* y, const float* w, const float* b, int64_t C, float eps, float& mean,
              float& rstd) {
  const float mu = row_sum<1>(x, 0.0f, C) / static_cast<float>(C);
  const float rs = 1.0f / std::sqrt(row_sum<2>(x, mu, C) / static_cast<float>(C) + eps);
  for (int64_t c = 0; c < C; ++c) {
    float v = (x[c] - mu) * rs;
    if constexpr (HasW) v *= w[c];
    if constexpr (HasB) v += b[c];
    y[c] = v;
  }
  mean = mu;
  rstd = rs;
}

template <bool HasW, bool HasB>
void norm_rows(const float* x, float* y, const float* w, const float* b, int64_t rows, int64_t C, float eps,
               float* mean, float* rstd) {
  parallel_for(rows, grain_for(C), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) norm_row<HasW, HasB>(x + r * C, y + r * C, w, b, C, eps, mean[r], rstd[r]);
  });
}

void check_affine(const char* what, const Tensor& p, const Tensor& x, int64_t C) {
  if (!p.defined()) return;
  EMBER_CHECK(p.shape() == Shape{C}, "layer_norm: {} has shape {} but must be [C] = [{}] for input {}", what,
              shape_str(p.shape()), C, shape_str(x.shape()));
}

// Backward. With xhat = (x - mean) rstd, y = xhat w + b and h = g w = dL/dxhat:
//   dvar/dx_j = 2 (x_j - mean) / C  =>  drstd/dx_j = -rstd^3 (x_j - mean) / C,
//   dxhat_i/dx_j = rstd (delta_ij - 1/C) - rstd xhat_i xhat_j / C,
//   gx_j = sum_i h_i dxhat_i/dx_j = rstd (h_j - mean(h) - xhat_j mean(h xhat)),
//   gw = sum over rows of g xhat,  gb = sum over rows of g.
struct NormGrad {
  const float *x, *g, *w, *mean, *rstd;
  float* gx;       // null when x needs no gradient
  float* partial;  // [chunks, 2, C]: per chunk gw then gb partial sums; null when neither is needed
  int64_t rows, C, chunks;
};

// One row: sum_h = sum h and sum_hx = sum h xhat (h = g w, or g without weight),
// and, when Partial, pw += g xhat and pb += g in the same pass.
template <bool HasW, bool Partial>
void row_grad_sums(const NormGrad& p, const float* x, const float* g, float mu, float rs, float* pw, float* pb,
                   float& sum_h, float& sum_hx) {
  float a[kLanes] = {}, b[kLanes] = {};
  const int64_t n = p.C;
  int64_t i = 0;
  auto step = [&](int64_t c, float& acc_h, float& acc_hx) {
    const float xhat = (x[c] - mu) * rs;
    const float h = HasW ? g[c] * p.w[c] : g[c];
    acc_h += h;
    acc_hx += h * xhat;
    if constexpr (Partial) {
      pw[c] += g[c] * xhat;
      pb[c] += g[c];
    }
  };
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) step(i + l, a[l], b[l]);
  sum_h = sum_hx = 0.0f;
  for (; i < n; ++i) step(i, sum_h, sum_hx);
  for (int l = 0; l < kLanes; ++l) {
    sum_h += a[l];
    sum_hx += b[l];
  }
}

template <bool HasW, bool Partial>
void norm_grad_rows(const NormGrad& p, int64_t r0, int64_t r1, float* pw, float* pb) {
  const int64_t C = p.C;
  for (int64_t r = r0; r < r1; ++r) {
    const float *x = p.x + r * C, *g = p.g + r * C;
    const float mu = p.mean[r], rs = p.rstd[r];
    float sum_h, sum_hx;
    row_grad_sums<HasW, Partial>(p, x, g, mu, rs, pw, pb, sum_h, sum_hx);
    if (p.gx == nullptr) continue;
    const float mean_h = sum_h / static_cast<float>(C), mean_hx = sum_hx / static_cast<float>(C);
    float* gx = p.gx + r * C;
    for (int64_t c = 0; c < C; ++c) {
      const float h = HasW ? g[c] * p.w[c] : g[c];
      gx[c] = rs * (h - mean_h - (x[c] - mu) * rs * mean_hx);
    }
  }
}

void norm_grad_chunk(const NormGrad& p, int64_t chunk) {
  const int64_t C = p.C, r0 = p.rows * chunk / p.chunks, r1 = p.rows * (chunk + 1) / p.chunks;
  float* pw = p.partial != nullptr ? p.partial + chunk * 2 * C : nullptr;
  if (pw != nullptr) std::fill(pw, pw + 2 * C, 0.0f);
  const bool has_w = p.w != nullptr;
  if (has_w && pw)
    norm_grad_rows<true, true>(p, r0, r1, pw, pw + C);
  else if (has_w)
    norm_grad_rows<true, false>(p, r0, r1, nullptr, nullptr);
  else if (pw)
    norm_grad_rows<false, true>(p, r0, r1, pw, pw + C);
  else
    norm_grad_rows<false, false>(p, r0, r1, nullptr, nullptr);
}

void layer_norm_backward(Node& n, const Tensor& g_in, std::vector<Tensor>& gi) {
  const Tensor x = n.inputs[0].contiguous(), g = g_in.contiguous();
  const Tensor& w = n.inputs[1];
  const bool need_x = n.needs_grad(0), need_w = n.needs_grad(1), need_b = n.needs_grad(2);
  const int64_t C = x.size(-1), rows = C > 0 ? x.numel() / C : 0;
  const int64_t chunks = std::min(rows, kMaxChunks);
  Tensor gx = need_x ? empty(x.shape()) : Tensor();
  Tensor partial = (need_w || need_b) && chunks > 0 ? empty({chunks, 2, C}) : Tensor();
  const Tensor wc = w.defined() ? w.contiguous() : Tensor();
  const NormGrad p{x.data(),
                   g.data(),
                   wc.defined() ? wc.data() : nullptr,
                   n.saved[0].data(),
                   n.saved[1].data(),
                   need_x ? gx.data() : nullptr,
                   partial.defined() ? partial.data() : nullptr,
                   rows,
                   C,
                   chunks};
  if (chunks > 0)
    parallel_for(chunks, grain_for(rows / chunks * C), [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) norm_grad_chunk(p, k);
    });
  if (need_x) gi[0] = gx;
  if (!need_w && !need_b) return;
  // Chunks are added in index order, so the result does not depend on the thread count.
  Tensor gw = zeros({C}), gb = zeros({C});
  float *sw = gw.data(), *sb = gb.data();
  for (int64_t k = 0; k < chunks; ++k) {
    const float* pw = p.partial + k * 2 * C;
    for (int64_t c = 0; c < C; ++c) {
      sw[c] += pw[c];
      sb[c] += pw[C + c];
    }
  }
  if (need_w) gi[1] = gw;
  if (need_b) gi[2] = gb;
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  EMBER_CHECK(x.dim() >= 1, "layer_norm: input must have a last dim to normalise over, got shape {}",
              shape_str(x.shape()));
  const int64_t C = x.size(-1);
  check_affine("weight", weight, x, C);
  check_affine("bias", bias, x, C);
  EMBER_CHECK(eps >= 0.0f, "layer_norm: eps must be >= 0, got {}", eps);
  const int64_t rows = C > 0 ? x.numel() / C : 0;
  const Tensor xc = x.contiguous();
  const Tensor wc = weight.defined() ? weight.contiguous() : Tensor();
  const Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  Tensor y = empty(x.shape()), mean = empty({rows}), rstd = empty({rows});
  if (C > 0) {
    const float* w = wc.defined() ? wc.data() : nullptr;
    const float* b = bc.defined() ? bc.data() : nullptr;
    if (w && b)
      norm_rows<true, true>(xc.data(), y.data(), w, b, rows, C, eps, mean.data(), rstd.data());
    else if (w)
      norm_rows<true, false>(xc.data(), y.data(), w, b, rows, C, eps, mean.data(), rstd.data());
    else if (b)
      norm_rows<false, true>(xc.data(), y.data(), w, b, rows, C, eps, mean.data(), rstd.data());
    else
      norm_rows<false, false>(xc.data(), y.data(), w, b, rows, C, eps, mean.data(), rstd.data());
  }
  if (Node* n = record(y, "layer_norm", EMBER_BACKWARD(layer_norm_backward), {x, weight, bias}))
    n->saved = {mean, rstd};
  return y;
}

}  // namespace ember
