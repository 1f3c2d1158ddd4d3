// softmax, log_softmax and cross_entropy (log-softmax fused with the negative
// log-likelihood), with their backwards. Every kernel walks contiguous rows
// with a branch-free exp the compiler vectorises: these ops sit on the training
// hot path (cross_entropy sees [B*T, V] logits with V up to 50257).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops/fastmath.h"
#include "core/ops/row_math.h"
#include "core/parallel.h"

namespace ember {
namespace {

constexpr int64_t kColBlock = 256;    // columns per task when the softmax dim is not last
constexpr int64_t kTaskWork = 16384;  // elements a parallel task should at least get
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int64_t grain_for(int64_t per_item) { return std::max<int64_t>(1, kTaskWork / std::max<int64_t>(per_item, 1)); }

// ---- row kernels over n contiguous floats ----

using detail::row_dot;
using detail::row_exp_sum;
using detail::row_max;

// ---- softmax over dim d of a contiguous tensor viewed as [outer, n, inner] ----

struct Layout {
  int64_t outer = 1, n = 1, inner = 1;
};

Layout layout_of(const Shape& s, int64_t dim) {
  Layout l;
  for (int64_t d = 0; d < dim; ++d) l.outer *= s[d];
  l.n = s[dim];
  for (size_t d = dim + 1; d < s.size(); ++d) l.inner *= s[d];
  return l;
}

// Runs row(offset) for every row when the dim is last (inner == 1), else
// cols(offset, width) for blocks of up to kColBlock columns of each [n, inner]
// slab, where a column is one softmax. Tasks run in parallel.
template <typename Row, typename Cols>
void for_each_slice(const Layout& l, Row row, Cols cols) {
  if (l.inner == 1) {
    parallel_for(l.outer, grain_for(l.n), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) row(r * l.n);
    });
    return;
  }
  const int64_t blocks = (l.inner + kColBlock - 1) / kColBlock;
  parallel_for(l.outer * blocks, grain_for(l.n * std::min(l.inner, kColBlock)), [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t o = task / blocks, c0 = (task % blocks) * kColBlock;
      cols(o * l.n * l.inner + c0, std::min(kColBlock, l.inner - c0));
    }
  });
}

// Stable form: softmax(x) = exp(x - m) / sum exp(x - m) with m = max x, and
// log_softmax(x) = (x - m) - log sum exp(x - m); the largest term is exp(0) = 1.
void softmax_row(const float* x, float* y, int64_t n, bool log) {
  const float m = row_max(x, n);
  if (log) {
    const float log_sum = std::log(row_exp_sum<false>(x, m, nullptr, n));
    for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - m) - log_sum;
  } else {
    const float inv = 1.0f / row_exp_sum<true>(x, m, y, n);
    for (int64_t j = 0; j < n; ++j) y[j] *= inv;
  }
}

// The same for w softmaxes that run down columns (stride `inner`), vectorised across the columns.
void softmax_cols(const float* x, float* y, int64_t n, int64_t inner, int64_t w, bool log) {
  float m[kColBlock], s[kColBlock];
  std::fill(m, m + w, kNegInf);
  std::fill(s, s + w, 0.0f);
  for (int64_t k = 0; k < n; ++k)
    for (int64_t j = 0; j < w; ++j) m[j] = x[k * inner + j] > m[j] ? x[k * inner + j] : m[j];
  // The exps go straight into y; log_softmax overwrites them in its last pass.
  for (int64_t k = 0; k < n; ++k)
    for (int64_t j = 0; j < w; ++j) {
      const float e = detail::exp_fast(x[k * inner + j] - m[j]);
      y[k * inner + j] = e;
      s[j] += e;
    }
  if (log) {
    for (int64_t j = 0; j < w; ++j) s[j] = std::log(s[j]);
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < w; ++j) y[k * inner + j] = (x[k * inner + j] - m[j]) - s[j];
  } else {
    for (int64_t j = 0; j < w; ++j) s[j] = 1.0f / s[j];
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < w; ++j) y[k * inner + j] *= s[j];
  }
}

// Backward, with y the saved output and g the incoming gradient:
//   softmax:      dy_i/dx_j = y_i (delta_ij - y_j)  =>  gx = y * (g - sum(g * y))
//   log_softmax:  dy_i/dx_j = delta_ij - softmax_j  =>  gx = g - exp(y) * sum(g)
void softmax_grad_row(const float* y, const float* g, float* gx, int64_t n, bool log) {
  if (log) {
    const float gs = row_dot(g, nullptr, n);
    for (int64_t j = 0; j < n; ++j) gx[j] = g[j] - detail::exp_fast(y[j]) * gs;
  } else {
    const float dot = row_dot(g, y, n);
    for (int64_t j = 0; j < n; ++j) gx[j] = y[j] * (g[j] - dot);
  }
}

void softmax_grad_cols(const float* y, const float* g, float* gx, int64_t n, int64_t inner, int64_t w, bool log) {
  float s[kColBlock];
  std::fill(s, s + w, 0.0f);
  if (log) {
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < w; ++j) s[j] += g[k * inner + j];
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < w; ++j) {
        const int64_t i = k * inner + j;
        gx[i] = g[i] - detail::exp_fast(y[i]) * s[j];
      }
  } else {
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < w; ++j) s[j] += g[k * inner + j] * y[k * inner + j];
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < w; ++j) {
        const int64_t i = k * inner + j;
        gx[i] = y[i] * (g[i] - s[j]);
      }
  }
}

// Shared by both ops; their nodes keep the output (detached) in saved[0].
struct SoftmaxArgs {
  int64_t dim;  // wrapped (non-negative)
};

void softmax_grad(Node& node, const Tensor& g_in, std::vector<Tensor>& gi, bool log) {
  const Tensor& y = node.saved[0];
  const Tensor g = g_in.contiguous();
  Tensor gx = empty(y.shape());
  if (y.numel() > 0) {
    const Layout l = layout_of(y.shape(), node.args<SoftmaxArgs>().dim);
    const float *py = y.data(), *pg = g.data();
    float* pgx = gx.data();
    for_each_slice(
        l, [&](int64_t off) { softmax_grad_row(py + off, pg + off, pgx + off, l.n, log); },
        [&](int64_t off, int64_t w) { softmax_grad_cols(py + off, pg + off, pgx + off, l.n, l.inner, w, log); });
  }
  gi[0] = gx;
}

void softmax_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) { softmax_grad(n, g, gi, false); }
void log_softmax_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) { softmax_grad(n, g, gi, true); }

Tensor softmax_forward(const char* op, Backward backward, const Tensor& a, int64_t dim_in, bool log) {
  const int64_t dim = wrap_dim(dim_in, a.dim(), op);
  const Tensor x = a.contiguous();
  Tensor y = empty(a.shape());
  if (a.numel() > 0) {
    const Layout l = layout_of(a.shape(), dim);
    const float* px = x.data();
    float* py = y.data();
    for_each_slice(
        l, [&](int64_t off) { softmax_row(px + off, py + off, l.n, log); },
        [&](int64_t off, int64_t w) { softmax_cols(px + off, py + off, l.n, l.inner, w, log); });
  }
  if (Node* n = record(y, op, backward, {a})) {
    n->saved = {y.detach()};
    n->set_args(SoftmaxArgs{.dim = dim});
  }
  return y;
}

// ---- cross_entropy ----

// Checks logits [..., V] against targets [...]; returns how many targets count in the mean.
int64_t check_targets(const Tensor& logits, const IntTensor& targets, int64_t ignore_index) {
  EMBER_CHECK(logits.dim() >= 1, "cross_entropy: logits must have a class dim, got shape {}",
              shape_str(logits.shape()));
  const Shape rows(logits.shape().begin(), logits.shape().end() - 1);
  EMBER_CHECK(targets.shape == rows && targets.numel() == numel_of(rows),
              "cross_entropy: targets {} must have the shape of logits {} without its class dim, {}",
              shape_str(targets.shape), shape_str(logits.shape()), shape_str(rows));
  const int64_t V = logits.size(-1);
  int64_t count = 0;
  for (int64_t i = 0; i < targets.numel(); ++i) {
    const int64_t t = targets.data[i];
    if (t == ignore_index) continue;
    EMBER_CHECK(t >= 0 && t < V,
                "cross_entropy: target {} at position {} is outside [0, {}) and is not ignore_index {}", t,
                index_str(targets.shape, i), V, ignore_index);
    ++count;
  }
  return count;
}

// loss = (1/count) sum_r (lse_r - x_r[t_r]) with lse_r = log sum_j exp x_rj, so
//   d loss / d x_rj = (softmax_rj - [j == t_r]) / count,
// and zero for ignored rows. Forward kept only lse_r, so softmax_rj = exp(x_rj - lse_r)
// is recomputed here instead of storing a [rows, V] probability tensor.
struct CrossEntropyArgs {
  IntTensor targets;
  int64_t ignore_index;
  int64_t count;  // targets that are not ignore_index: the mean's denominator
};
void cross_entropy_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const auto& a = n.args<CrossEntropyArgs>();
  const Tensor x = n.inputs[0].contiguous();
  const int64_t ignore_index = a.ignore_index, count = a.count;
  const int64_t V = x.size(-1), rows = a.targets.numel();
  const float scale = count > 0 ? g.item() / static_cast<float>(count) : 0.0f;
  Tensor gx = empty(x.shape());
  const float *px = x.data(), *lse = n.saved[0].data();
  float* pg = gx.data();
  const int64_t* targets = a.targets.data.data();
  parallel_for(rows, grain_for(V), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* o = pg + r * V;
      if (targets[r] == ignore_index) {
        std::fill(o, o + V, 0.0f);
        continue;
      }
      const float* xr = px + r * V;
      const float l = lse[r];
      for (int64_t j = 0; j < V; ++j) o[j] = detail::exp_fast(xr[j] - l) * scale;
      o[targets[r]] -= scale;
    }
  });
  gi[0] = gx;
}

}  // namespace

Tensor softmax(const Tensor& a, int64_t dim) {
  return softmax_forward("softmax", EMBER_BACKWARD(softmax_backward), a, dim, false);
}

Tensor log_softmax(const Tensor& a, int64_t dim) {
  return softmax_forward("log_softmax", EMBER_BACKWARD(log_softmax_backward), a, dim, true);
}

Tensor cross_entropy(const Tensor& logits, const IntTensor& targets, int64_t ignore_index) {
  const int64_t count = check_targets(logits, targets, ignore_index);
  const Tensor x = logits.contiguous();
  const int64_t V = logits.size(-1), rows = targets.numel();
  Tensor lse = empty({rows}), row_loss = empty({rows});
  const float* px = x.data();
  float *pl = lse.data(), *ploss = row_loss.data();
  const int64_t* tg = targets.data.data();
  parallel_for(rows, grain_for(V), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      if (tg[r] == ignore_index) {
        pl[r] = ploss[r] = 0.0f;
        continue;
      }
      const float* xr = px + r * V;
      const float m = row_max(xr, V), log_sum = std::log(row_exp_sum<false>(xr, m, nullptr, V));
      pl[r] = m + log_sum;
      ploss[r] = (m - xr[tg[r]]) + log_sum;  // not lse - x_t: m - x_t is exact when they are close
    }
  });
  double total = 0.0;  // in double, so the mean over many rows loses nothing to rounding
  for (int64_t r = 0; r < rows; ++r) total += ploss[r];
  // No counted target gives 0/0 = NaN, as PyTorch does.
  Tensor out = scalar_tensor(static_cast<float>(total / static_cast<double>(count)));
  if (Node* n = record(out, "cross_entropy", EMBER_BACKWARD(cross_entropy_backward), {logits})) {
    n->saved = {lse};
    n->set_args(CrossEntropyArgs{.targets = targets, .ignore_index = ignore_index, .count = count});
  }
  return out;
}

}  // namespace ember
