// Fused causal self-attention from the qkv projection, per (batch, head):
//   S = q k^T / sqrt(D) (+ ALiBi bias),  P = softmax over keys j <= i,  y = P v.
// q, k and v are read in place from qkv [B, T, 3C] (row stride 3C), y is
// written in place into [B, T, C]; each (b, h) pair is one task on the pool,
// running single-threaded sgemm. Forward keeps P for backward when it is
// small beside the layer's other activations (H T <= 2 C floats per token,
// against some 10-20 C: config S, 1-2% of its step); otherwise each task
// recomputes its T x T block in backward (one more small sgemm and the
// softmax again), which saves B H T^2 floats per layer (config M: 36 MB in
// all, 10% of its peak; GPT-2 small at T = 1024, batch 8: 400 MB a layer).
// Either way P is the same, bit for bit.
// Causality is used to skip work: queries go in blocks of kRows rows, and a
// block [r0, r1) only meets keys [0, r1), so the products above the diagonal
// blocks are never computed (about 40% of the attention flops at T = 256).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops/blas.h"
#include "core/ops/row_math.h"
#include "core/parallel.h"

namespace ember {
namespace {

struct AttentionShape {
  int64_t B, T, C, H, D;
  int64_t sb, st;  // qkv strides over batch and time (the channel stride is 1)
};

AttentionShape attention_shape(const Tensor& qkv, int64_t n_head) {
  EMBER_CHECK(qkv.dim() == 3 && qkv.size(2) % 3 == 0, "causal_attention: qkv must be [B, T, 3C], got {}",
              shape_str(qkv.shape()));
  const int64_t C = qkv.size(2) / 3;
  EMBER_CHECK(n_head > 0 && C % n_head == 0, "causal_attention: {} channels do not split into {} heads", C, n_head);
  return {qkv.size(0), qkv.size(1), C, n_head, C / n_head, qkv.strides()[0], qkv.strides()[1]};
}

// Query rows per block: four of sgemm_ember's 6-row tiles.
constexpr int64_t kRows = 24;

// Calls fn(r0, r1) for the row blocks [r0, r1) of 0..T-1, in order.
template <typename F>
void for_row_blocks(int64_t T, F fn) {
  for (int64_t r0 = 0; r0 < T; r0 += kRows) fn(r0, std::min(T, r0 + kRows));
}

// Row i of the scores holds keys 0..n-1 (n > i: the end of i's row block);
// only j <= i are kept. Turns the row into probabilities in place and zeroes
// the masked tail up to n. The max and the exps run over i + 1 rounded up to
// a multiple of 8 (within n), with -inf in the padding (its exp is 0), so
// they vectorise without a scalar tail.
void causal_softmax_row(float* row, int64_t i, int64_t n, float slope) {
  const int64_t len = i + 1, padded = std::min(n, (len + 7) / 8 * 8);
  if (slope != 0.0f)  // ALiBi: -slope * distance, rounded once from double
    for (int64_t j = 0; j < len; ++j)
      row[j] += static_cast<float>(-static_cast<double>(slope) * static_cast<double>(i - j));
  for (int64_t j = len; j < padded; ++j) row[j] = -std::numeric_limits<float>::infinity();
  const float m = detail::row_max<8>(row, padded);
  const float inv = 1.0f / detail::row_exp_sum<true, 8>(row, m, row, padded);
  for (int64_t j = 0; j < len; ++j) row[j] *= inv;
  for (int64_t j = len; j < n; ++j) row[j] = 0.0f;
}

// P for one (batch, head): the scaled scores q k^T, ALiBi bias, causal
// softmax. p is [T, T]; a row in block [r0, r1) is written in columns
// [0, r1) only (zeros above the diagonal); the rest is never read.
void attention_probs(const float* q, const float* k, int64_t T, int64_t D, int64_t ld, float scale, float slope,
                     float* p) {
  for_row_blocks(T, [&](int64_t r0, int64_t r1) {
    detail::sgemm(false, true, r1 - r0, r1, D, scale, q + r0 * ld, ld, k, ld, 0.0f, p + r0 * T, T);
    for (int64_t i = r0; i < r1; ++i) causal_softmax_row(p + i * T, i, r1, slope);
  });
}

// Backward of y = P v and P = softmax(S), S = scale q k^T (+ const):
//   dv = P^T dy,  dP = dy v^T,  dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik),
//   dq = scale dS k,  dk = scale dS^T q.
// Masked entries have P = 0, so their dS is 0 and they add nothing.
struct CausalAttentionArgs {
  int64_t n_head;
  std::vector<float> alibi_slopes;  // one per head, 0 without ALiBi
};
void causal_attention_backward(Node& n, const Tensor& g_in, std::vector<Tensor>& gi) {
  const auto& a = n.args<CausalAttentionArgs>();
  const Tensor& qkv = n.inputs[0];
  const AttentionShape s = attention_shape(qkv, a.n_head);
  const Tensor g = g_in.contiguous();
  Tensor dqkv = empty({s.B, s.T, 3 * s.C});
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.D));
  const int64_t T = s.T, D = s.D, C = s.C, ld = 3 * C;
  const float* kept = n.saved.empty() ? nullptr : n.saved[0].data();  // P [B, H, T, T] from forward, if kept
  parallel_for(s.B * s.H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> dp(static_cast<size_t>(T * T)), probs(kept ? 0 : dp.size());
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / s.H, h = task % s.H;
      const float* q = qkv.data() + b * s.sb + h * D;
      const float *k = q + C, *v = q + 2 * C;
      const float* p = kept ? kept + task * T * T : probs.data();
      if (!kept) attention_probs(q, k, T, D, s.st, scale, a.alibi_slopes[h], probs.data());
      const float* dy = g.data() + b * T * C + h * D;
      float* dq = dqkv.data() + b * T * ld + h * D;
      float *dk = dq + C, *dv = dq + 2 * C;
      // Row blocks [r0, r1) of dP, dS and dq need keys [0, r1) only.
      for_row_blocks(T, [&](int64_t r0, int64_t r1) {
        float* dpb = dp.data() + r0 * T;
        detail::sgemm(false, true, r1 - r0, r1, D, 1.0f, dy + r0 * C, C, v, s.st, 0.0f, dpb, T);
        for (int64_t i = r0; i < r1; ++i) {
          float* dpi = dp.data() + i * T;
          const float* pi = p + i * T;
          const float dot = detail::row_dot(pi, dpi, i + 1);
          for (int64_t j = 0; j <= i; ++j) dpi[j] = pi[j] * (dpi[j] - dot);
          for (int64_t j = i + 1; j < r1; ++j) dpi[j] = 0.0f;
        }
        detail::sgemm(false, false, r1 - r0, D, r1, scale, dpb, T, k, s.st, 0.0f, dq + r0 * ld, ld);
      });
      // Key blocks [c0, c1) of dv and dk meet queries [c0, T) only: the
      // columns of P and dS below the diagonal blocks.
      for_row_blocks(T, [&](int64_t c0, int64_t c1) {
        const float *pc = p + c0 * T + c0, *dsc = dp.data() + c0 * T + c0;
        detail::sgemm(true, false, c1 - c0, D, T - c0, 1.0f, pc, T, dy + c0 * C, C, 0.0f, dv + c0 * ld, ld);
        detail::sgemm(true, false, c1 - c0, D, T - c0, scale, dsc, T, q + c0 * s.st, s.st, 0.0f, dk + c0 * ld, ld);
      });
    }
  });
  gi[0] = dqkv;
}

}  // namespace

Tensor causal_attention(const Tensor& qkv_in, int64_t n_head, const Tensor& alibi_slopes) {
  const Tensor qkv = qkv_in.strides().back() == 1 ? qkv_in : qkv_in.contiguous();
  const AttentionShape s = attention_shape(qkv, n_head);
  std::vector<float> slopes(static_cast<size_t>(s.H), 0.0f);
  if (alibi_slopes.defined()) {
    EMBER_CHECK(alibi_slopes.shape() == Shape{s.H}, "causal_attention: alibi_slopes must be [{}], got {}", s.H,
                shape_str(alibi_slopes.shape()));
    slopes = alibi_slopes.to_vector();
  }
  Tensor y = empty({s.B, s.T, s.C});
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.D));
  const int64_t T = s.T, D = s.D, C = s.C;
  // P for backward, when a node will be recorded and P is small (see the top of this file).
  const bool keep = grad_mode_enabled() && qkv.requires_grad() && s.H * T <= 2 * C;
  Tensor kept = keep ? empty({s.B, s.H, T, T}) : Tensor();
  parallel_for(s.B * s.H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> probs(keep ? 0 : static_cast<size_t>(T * T));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / s.H, h = task % s.H;
      const float* q = qkv.data() + b * s.sb + h * D;
      const float *k = q + C, *v = q + 2 * C;
      float* p = keep ? kept.data() + task * T * T : probs.data();
      attention_probs(q, k, T, D, s.st, scale, slopes[h], p);
      float* yb = y.data() + b * T * C + h * D;
      for_row_blocks(T, [&](int64_t r0, int64_t r1) {
        detail::sgemm(false, false, r1 - r0, D, r1, 1.0f, p + r0 * T, T, v, s.st, 0.0f, yb + r0 * C, C);
      });
    }
  });
  if (Node* n = record(y, "causal_attention", EMBER_BACKWARD(causal_attention_backward), {qkv})) {
    n->set_args(CausalAttentionArgs{.n_head = n_head, .alibi_slopes = std::move(slopes)});
    if (keep) n->saved = {kept};
  }
  return y;
}

}  // namespace ember
