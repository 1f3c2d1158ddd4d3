// Kernels for generating one token at a time with a key/value cache: the
// GPT's per-token work on single rows of floats (one token's activations),
// with no Tensors, no allocation and no graph. Inference only; the batched,
// differentiable ops of core/ops.h are what training (and a prompt) uses.
#pragma once

#include <cstdint>
#include <vector>

namespace ember {

// y[out] = W x + b for one row x[in]; W is [out, in] row-major (a Linear's
// weight), b may be null. A matrix-vector product reads each weight once, so
// it is bound by memory, not flops: it reads W's rows in place (sgemm would
// pack op(B) = W^T first, copying the whole matrix for one row of output;
// the linear op on x [1, 384], W [1152, 384] took 2.4-3.4x as long).
// Threads split the output rows; each row's sum has a fixed order, so the
// result does not depend on the thread count.
void linear_row(const float* x, const float* weight, const float* bias, float* y, int64_t in, int64_t out);

// One row of layer_norm: (x - mean) / sqrt(var + eps) * w + b, biased
// variance, two passes (as core/ops/norm.cpp). w and b may be null; y may be x.
void layer_norm_row(const float* x, const float* weight, const float* bias, float* y, int64_t C, float eps);

// Exact (erf) GELU in place on n floats, the function the MLP applies.
void gelu_row(float* x, int64_t n);

// RoPE's cos and sin tables for positions 0..T-1 ([T, D/2] each), angle
// t * base^(-2i/D) computed in double and rounded, as the rope op does.
void rope_tables(int64_t T, int64_t D, double base, std::vector<float>& cos, std::vector<float>& sin);
// Rotates `groups` consecutive head vectors of size D at x in place by one
// position's table rows cos[D/2], sin[D/2]: (x0, x1) -> (x0 c - x1 s, x0 s + x1 c).
void rope_row(float* x, int64_t groups, int64_t D, const float* cos, const float* sin);

// Attention of one new query over n cached keys and values, per head h:
//   y_h = softmax_j(scale q_h . k_hj - slope_h (n - 1 - j)) v_hj,  j < n,
// the query being the newest position n - 1 (its key is the last cached
// one), scale = 1/sqrt(D). q and y are rows of H*D (head h at h*D); key j of
// head h is at k + h * head_stride + j * D, and likewise for v. slopes (ALiBi,
// [H]) may be null. scratch holds at least H * n floats. Heads run on
// separate threads when there is enough work.
void attention_row(const float* q, const float* k, const float* v, int64_t n, int64_t H, int64_t D, int64_t head_stride,
                   const float* slopes, float* y, float* scratch);

}  // namespace ember
