// Every differentiable op, declared once. Each is defined, with its backward
// and kernels, in one file under core/ops/ (named in the section headings).
// Dim arguments may be negative (-1 = last). Binary elementwise ops broadcast
// as NumPy and PyTorch do.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace ember {

// ---- core/ops/elementwise.cpp: broadcasting arithmetic ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, float s);
Tensor sub(const Tensor& a, float s);
Tensor mul(const Tensor& a, float s);
Tensor div(const Tensor& a, float s);
Tensor rsub(float s, const Tensor& a);  // s - a
Tensor rdiv(float s, const Tensor& a);  // s / a
Tensor neg(const Tensor& a);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, float s) { return add(a, s); }
inline Tensor operator-(const Tensor& a, float s) { return sub(a, s); }
inline Tensor operator*(const Tensor& a, float s) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, float s) { return div(a, s); }
inline Tensor operator+(float s, const Tensor& a) { return add(a, s); }
inline Tensor operator-(float s, const Tensor& a) { return rsub(s, a); }
inline Tensor operator*(float s, const Tensor& a) { return mul(a, s); }
inline Tensor operator/(float s, const Tensor& a) { return rdiv(s, a); }
inline Tensor operator-(const Tensor& a) { return neg(a); }

// ---- core/ops/unary.cpp: pointwise functions ----
enum class GeluApprox { None, Tanh };  // exact erf form, or the tanh approximation (GPT-2)
Tensor pow(const Tensor& a, float exponent);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor gelu(const Tensor& a, GeluApprox approx = GeluApprox::None);

// ---- core/ops/reduce.cpp: reductions ----
Tensor sum(const Tensor& a);  // all elements -> shape []
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& a);
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim = false);
// Max values over dims; the gradient goes to the first maximal element of each group.
Tensor max(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim = false);
// Sums a broadcast result back down to `shape` (the backward of broadcasting).
Tensor sum_to(const Tensor& a, const Shape& shape);

// ---- core/ops/matmul.cpp: products through detail::sgemm (core/ops/blas.h) ----
// a [..., N, K] @ b [..., K, M] -> [..., N, M]; leading dims broadcast. Both
// operands must be at least 2-D.
Tensor matmul(const Tensor& a, const Tensor& b);
// x [..., in] @ weight[out, in]^T + bias[out] -> [..., out], as torch.nn.functional.linear.
// bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

// ---- core/ops/gelu_linear.cpp ----
// linear(gelu(u), weight, bias) without keeping gelu(u) for backward, which
// recomputes it: the MLP's output projection at a fraction of the memory.
Tensor gelu_linear(const Tensor& u, const Tensor& weight, const Tensor& bias, GeluApprox approx = GeluApprox::None);

// ---- core/ops/view.cpp: the view ops are Tensor members (tensor.h); also ----
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);

// ---- core/ops/softmax_loss.cpp ----
Tensor softmax(const Tensor& a, int64_t dim);
Tensor log_softmax(const Tensor& a, int64_t dim);
// Mean negative log-likelihood of targets under softmax(logits), fused.
// logits [N, V] with targets [N], or [B, T, V] with targets [B, T]. Targets equal
// to ignore_index are skipped and excluded from the mean (PyTorch's default -100;
// nanoGPT passes -1).
Tensor cross_entropy(const Tensor& logits, const IntTensor& targets, int64_t ignore_index = -100);

// ---- core/ops/norm.cpp ----
// Layer norm over the last dim: (x - mean) / sqrt(var + eps) * weight + bias,
// with the biased variance, as PyTorch. weight and bias [C] may be undefined.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps = 1e-5f);

// ---- core/ops/embedding.cpp ----
// weight [V, C], ids of any shape -> [...ids, C]. Backward scatter-adds, so
// repeated ids accumulate.
Tensor embedding(const Tensor& weight, const IntTensor& ids);

// ---- core/ops/mask.cpp ----
// Where mask != 0 (mask broadcasts to a's shape), the result is `value`; the
// gradient is zero there.
Tensor masked_fill(const Tensor& a, const Tensor& mask, float value);
// [T, T] mask with 1 above the diagonal (key position j > query position i).
Tensor causal_mask(int64_t T);
// Inverted dropout: zeroes with probability p and scales the rest by 1/(1-p);
// the identity when !training or p == 0.
Tensor dropout(const Tensor& a, float p, bool training, Generator* gen = nullptr);

}  // namespace ember

namespace ember {

// ---- core/ops/attention.cpp ----
// Fused causal self-attention straight from the qkv projection:
// qkv [B, T, 3C] holds q, k, v side by side (each C = H * D, head h in
// columns h*D..h*D+D-1). Returns y [B, T, C] with the heads merged, ready for
// the output projection:  y_h = softmax(q_h k_h^T / sqrt(D) + bias, causal) v_h.
// alibi_slopes (undefined, or [H]) adds bias[h, i, j] = -slope_h * (i - j).
// Works per (batch, head) with single-threaded sgemm on strided slices of qkv,
// so nothing is copied; only the attention probabilities [B, H, T, T] are kept.
Tensor causal_attention(const Tensor& qkv, int64_t n_head, const Tensor& alibi_slopes = Tensor());

// ---- core/ops/rope.cpp ----
// Rotary position embedding on x [B, T, G, D] (position = index along T):
// each head vector's pairs (2i, 2i+1) rotate by angle t * base^(-2i/D).
// Only the first `rotate_groups` of the G groups rotate (pass 2H for a
// [B, T, 3H, D] view of qkv: q and k rotate, v is copied); -1 = all.
Tensor rope(const Tensor& x, int64_t rotate_groups = -1, float base = 10000.0f);

}  // namespace ember
