// Matrix products through detail::sgemm: matmul (batched, leading dims broadcast)
// and linear (x W^T + b fused into one sgemm). A transposed view reaches sgemm
// as a transpose flag, never as a copy, in forward and backward alike; only
// layouts with no unit stride in their last two dims are made contiguous.
#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <utility>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops/blas.h"
#include "core/parallel.h"

namespace ember {
namespace {

// About how many multiply-adds (or float copies) pay for handing work to a
// thread: the pool wakes in a few microseconds, 2^16 MACs take about as long.
constexpr int64_t kThreadWork = int64_t{1} << 16;

// contiguous() without recording a clone node: the copy is internal to an op.
Tensor dense(const Tensor& t) {
  NoGradGuard no_grad;
  return t.contiguous();
}

// One operand of a batched product as sgemm sees it. Every batch's matrix
// X [rows, cols] is stored row-major with leading dimension ld, either as X
// itself (trans false) or as X^T (trans true, stored [cols, rows]).
struct Operand {
  const float* data = nullptr;
  bool trans = false;
  int64_t ld = 1;
  int64_t stored_rows = 0;  // rows of the stored matrix: rows, or cols when trans
  Strides batch;            // element step per dim of the batch shape, 0 where broadcast
  Tensor keep;              // owns the data (the input, or its contiguous copy)

  Operand transposed() const {  // X^T is the same storage read the other way
    Operand t = *this;
    t.trans = !trans;
    return t;
  }
};

// A [rows, cols] matrix with strides (sr, sc) suits sgemm as it is when its
// columns are unit-stride (NoTrans, ld = sr) or its rows are (Trans, ld = sc),
// and ld covers a full stored row, as BLAS requires. Size-1 dims have no
// meaningful stride, so any stride is accepted there.
bool sgemm_layout(int64_t rows, int64_t cols, int64_t sr, int64_t sc, bool& trans, int64_t& ld) {
  if (rows == 0 || cols == 0) {  // nothing is read; sgemm is never called on it
    trans = false;
    ld = std::max<int64_t>(cols, 1);
    return true;
  }
  if (sc == 1 || cols == 1) {
    ld = rows > 1 ? sr : cols;
    trans = false;
    if (ld >= cols) return true;
  }
  if (sr == 1 || rows == 1) {
    ld = cols > 1 ? sc : rows;
    trans = true;
    if (ld >= rows) return true;
  }
  return false;
}

// t's batch dims (all but the last two), right-aligned against `batch`.
Strides batch_strides(const Tensor& t, const Shape& batch) {
  Strides s(batch.size(), 0);
  const size_t own = t.shape().size() - 2, lead = batch.size() - own;
  for (size_t d = 0; d < own; ++d)
    if (t.shape()[d] != 1) s[lead + d] = t.strides()[d];
  return s;
}

Operand make_operand(const Tensor& t, const Shape& batch) {
  Operand op;
  op.keep = t;
  const int64_t rows = t.size(-2), cols = t.size(-1);
  if (!sgemm_layout(rows, cols, t.strides()[t.dim() - 2], t.strides()[t.dim() - 1], op.trans, op.ld)) {
    op.keep = dense(t);  // contiguous always has a unit column stride
    sgemm_layout(rows, cols, cols, 1, op.trans, op.ld);
  }
  op.data = op.keep.data();
  op.stored_rows = op.trans ? cols : rows;
  op.batch = batch_strides(op.keep, batch);
  return op;
}

// True when the batch dims continue the stored rows at the same pitch, so all
// batches together are one stored matrix of numel(batch) * stored_rows rows.
bool folds(const Operand& x, const Shape& batch) {
  int64_t step = x.stored_rows * x.ld;
  for (size_t d = batch.size(); d-- > 0;) {
    if (batch[d] == 1) continue;
    if (x.batch[d] != step) return false;
    step *= batch[d];
  }
  return true;
}

bool all_zero(const Strides& s) {
  return std::all_of(s.begin(), s.end(), [](int64_t v) { return v == 0; });
}

// cblas takes int sizes (held for every kernel alike). Checked before any
// thread starts: an exception must not escape a parallel_for worker.
void check_blas_sizes(const char* op, std::initializer_list<int64_t> sizes) {
  const int64_t biggest = std::max(sizes);
  EMBER_CHECK(biggest <= std::numeric_limits<int>::max(),
              "{}: a size or row pitch of {} exceeds the 32-bit int that BLAS takes", op, biggest);
}

// C[M,N] = op(A) op(B) + beta C (beta 0 or 1), where an empty inner dim
// (K = 0) leaves beta C; as in BLAS, beta 0 never reads C.
void gemm(const Operand& A, const Operand& B, int64_t M, int64_t N, int64_t K, const float* a, const float* b,
          float beta, float* c, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (beta == 0.0f)
      for (int64_t i = 0; i < M; ++i) std::fill_n(c + i * ldc, N, 0.0f);
    return;
  }
  detail::sgemm(A.trans, B.trans, M, N, K, 1.0f, a, A.ld, b, B.ld, beta, c, ldc);
}

// Sorts the batch indices by the C matrix they land on (C may be broadcast
// over some batch dims: the backward of broadcasting sums there). Fills
// offsets of A and B per batch index, `order` grouped by C matrix, and
// first[g] .. first[g+1] as the slice of `order` that lands on C matrix g.
void group_batches(const Shape& batch, const Operand& A, const Operand& B, const Strides& c_batch, int64_t c_step,
                   std::vector<int64_t>& off_a, std::vector<int64_t>& off_b, std::vector<int64_t>& order,
                   std::vector<int64_t>& first, int64_t groups) {
  const int64_t count = numel_of(batch);
  std::vector<int64_t> group(count), idx(batch.size(), 0);
  off_a.resize(count);
  off_b.resize(count);
  int64_t oa = 0, ob = 0, oc = 0;
  for (int64_t i = 0; i < count; ++i) {  // odometer over the batch dims
    off_a[i] = oa, off_b[i] = ob, group[i] = oc / c_step;
    for (size_t d = batch.size(); d-- > 0;) {
      oa += A.batch[d], ob += B.batch[d], oc += c_batch[d];
      if (++idx[d] < batch[d]) break;
      oa -= A.batch[d] * batch[d], ob -= B.batch[d] * batch[d], oc -= c_batch[d] * batch[d];
      idx[d] = 0;
    }
  }
  first.assign(groups + 1, 0);  // counting sort by group
  for (int64_t g : group) ++first[g + 1];
  for (int64_t g = 0; g < groups; ++g) first[g + 1] += first[g];
  order.resize(count);
  std::vector<int64_t> fill(first.begin(), first.end() - 1);
  for (int64_t i = 0; i < count; ++i) order[fill[group[i]]++] = i;
}

// C = op(A_i) op(B_i) for every index i of `batch`, summed over the indices
// that share one matrix of C (contiguous, shape [C's batch dims..., N, M]).
void gemm_batched(const Shape& batch, const Operand& A, const Operand& B, const Tensor& C, int64_t N, int64_t M,
                  int64_t K) {
  const int64_t count = numel_of(batch), groups = C.numel() / (N * M);
  check_blas_sizes("matmul", {count * N, count * K, M, A.ld, B.ld});
  float* c = C.data();
  // B shared by every batch: stack A's batches into one [count*N, K] operand.
  if (groups == count && all_zero(B.batch) && !A.trans && folds(A, batch))
    return gemm(A, B, count * N, M, K, A.data, B.data, 0.0f, c, M);
  // Everything sums onto one C: sum_i A_i B_i = [A_0 .. A_n] [B_0; ..; B_n], one
  // product over an inner dim of count*K when both stack along K in memory.
  if (groups == 1 && A.trans && folds(A, batch) && !B.trans && folds(B, batch))
    return gemm(A, B, N, M, count * K, A.data, B.data, 0.0f, c, M);

  std::vector<int64_t> off_a, off_b, order, first;
  group_batches(batch, A, B, batch_strides(C, batch), N * M, off_a, off_b, order, first, groups);
  auto run = [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      float beta = 0.0f;  // the first product of a group overwrites, the rest accumulate
      for (int64_t j = first[g]; j < first[g + 1]; ++j) {
        gemm(A, B, N, M, K, A.data + off_a[order[j]], B.data + off_b[order[j]], beta, c + g * N * M, M);
        beta = 1.0f;
      }
    }
  };
  // Few large products: one after another, each split by sgemm over every
  // thread. Otherwise one thread per group of products, each sgemm on its own
  // thread (sgemm's own parallel_for runs inline when nested).
  const int64_t work = N * M * K * (count / groups);
  if (groups < 2 || (groups < num_threads() && work >= kThreadWork * num_threads()))
    run(0, groups);
  else
    parallel_for(groups, std::max<int64_t>(1, kThreadWork / std::max<int64_t>(work, 1)), std::move(run));
}

// C (contiguous, its own batch dims broadcasting against `batch`) = x @ y.
void product_into(const Tensor& C, const Tensor& x, const Tensor& y, const Shape& batch) {
  const int64_t N = x.size(-2), K = x.size(-1), M = y.size(-1);
  if (C.numel() == 0) return;
  if (K == 0 || numel_of(batch) == 0) {  // empty sums
    std::memset(C.data(), 0, C.numel() * sizeof(float));
    return;
  }
  gemm_batched(batch, make_operand(x, batch), make_operand(y, batch), C, N, M, K);
}

Tensor swap_last(const Tensor& t) {  // a transposed view, unrecorded
  NoGradGuard no_grad;
  return t.transpose(-2, -1);
}

// out_i = a_i b_i, so d/da_i = g_i b_i^T and d/db_i = a_i^T g_i. Where an
// input was broadcast over batch dims, gemm_batched sums those batches
// straight into a gradient of the input's own shape.
void matmul_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const Tensor &a = n.inputs[0], &b = n.inputs[1];
  const Shape batch(g.shape().begin(), g.shape().end() - 2);
  if (n.needs_grad(0)) {
    gi[0] = empty(a.shape());
    product_into(gi[0], g, swap_last(b), batch);
  }
  if (n.needs_grad(1)) {
    gi[1] = empty(b.shape());
    product_into(gi[1], swap_last(a), g, batch);
  }
}

Shape matmul_batch(const Tensor& a, const Tensor& b) {
  const Shape sa(a.shape().begin(), a.shape().end() - 2), sb(b.shape().begin(), b.shape().end() - 2);
  const size_t n = std::max(sa.size(), sb.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t x = i < n - sa.size() ? 1 : sa[i - (n - sa.size())];
    const int64_t y = i < n - sb.size() ? 1 : sb[i - (n - sb.size())];
    EMBER_CHECK(x == y || x == 1 || y == 1,
                "matmul: batch dims cannot be broadcast: a {} vs b {} (batch dim {}: {} vs {}; sizes must match or "
                "be 1)",
                shape_str(a.shape()), shape_str(b.shape()), i, x, y);
    out[i] = x == 1 ? y : x;
  }
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  EMBER_CHECK(a.dim() >= 2 && b.dim() >= 2,
              "matmul: both operands need at least 2 dims: a {} vs b {} (unsqueeze a vector into a matrix)",
              shape_str(a.shape()), shape_str(b.shape()));
  EMBER_CHECK(a.size(-1) == b.size(-2), "matmul: inner dimensions differ: a {} vs b {} ({} != {})",
              shape_str(a.shape()), shape_str(b.shape()), a.size(-1), b.size(-2));
  const Shape batch = matmul_batch(a, b);
  Shape shape = batch;
  shape.push_back(a.size(-2));
  shape.push_back(b.size(-1));
  Tensor out = empty(shape);
  product_into(out, a, b, batch);
  record(out, "matmul", EMBER_BACKWARD(matmul_backward), {a, b});
  return out;
}

// ---- linear ----
namespace {

// x [..., in] as one [R, in] matrix operand (a view when the layout allows).
Operand rows_operand(const Tensor& x, int64_t R, int64_t in) {
  NoGradGuard no_grad;
  return make_operand(x.reshape({R, in}), {});
}

int64_t leading_rows(const Tensor& x) { return numel_of(Shape(x.shape().begin(), x.shape().end() - 1)); }

// Column sums of g [R, C] (rows at any pitch): the bias gradient. Threads take
// disjoint column ranges and walk every row, so the adds stay vectorised.
Tensor column_sums(const Tensor& g2) {
  const Tensor g = g2.strides()[1] == 1 || g2.size(1) <= 1 ? g2 : dense(g2);
  const int64_t R = g.size(0), C = g.size(1), pitch = g.strides()[0];
  Tensor out = zeros({C});
  const float* pg = g.data();
  float* po = out.data();
  parallel_for(C, std::max<int64_t>(64, kThreadWork / std::max<int64_t>(R, 1)), [&](int64_t c0, int64_t c1) {
    for (int64_t r = 0; r < R; ++r) {
      const float* row = pg + r * pitch;
      for (int64_t c = c0; c < c1; ++c) po[c] += row[c];
    }
  });
  return out;
}

// y = x W^T + b row by row (x as [R, in]), so
//   dx = g W          [R, out] @ [out, in]
//   dW = g^T x        [out, R] @ [R, in]  (the sum over rows is the inner dim)
//   db = sum_r g[r]   column sums
void linear_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const Tensor &x = n.inputs[0], &w = n.inputs[1];
  const int64_t out_f = w.size(0), in = w.size(1), R = leading_rows(x);
  const Operand gm = rows_operand(g, R, out_f);
  if (n.needs_grad(0)) {
    const Operand wm = make_operand(w, {});
    Tensor gx = empty({R, in});
    gemm(gm, wm, R, in, out_f, gm.data, wm.data, 0.0f, gx.data(), in);
    gi[0] = gx.view(x.shape());
  }
  if (n.needs_grad(1)) {
    const Operand xm = rows_operand(x, R, in), gt = gm.transposed();
    gi[1] = empty({out_f, in});
    gemm(gt, xm, out_f, in, R, gt.data, xm.data, 0.0f, gi[1].data(), in);
  }
  if (n.needs_grad(2)) gi[2] = column_sums(g.reshape({R, out_f}));
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  EMBER_CHECK(weight.dim() == 2, "linear: weight must be 2-D [out, in] but has shape {} (x {})",
              shape_str(weight.shape()), shape_str(x.shape()));
  EMBER_CHECK(x.dim() >= 1, "linear: x must have a feature dim ([..., in]) but has shape {} (weight {})",
              shape_str(x.shape()), shape_str(weight.shape()));
  const int64_t out_f = weight.size(0), in = weight.size(1);
  EMBER_CHECK(x.size(-1) == in,
              "linear: in_features differ: x {} vs weight {} ({} != {}; x is [..., in], weight [out, in])",
              shape_str(x.shape()), shape_str(weight.shape()), x.size(-1), in);
  EMBER_CHECK(!bias.defined() || bias.shape() == Shape{out_f},
              "linear: bias must have shape [{}] to match weight {} ([out, in]) but has {} (x {})", out_f,
              shape_str(weight.shape()), bias.defined() ? shape_str(bias.shape()) : "", shape_str(x.shape()));
  const int64_t R = leading_rows(x);
  Shape shape = x.shape();
  shape.back() = out_f;
  Tensor out = empty(shape);
  float* po = out.data();
  if (out.numel() > 0) {
    // C starts as bias rows and sgemm adds x W^T onto it (beta = 1): one pass over C.
    float beta = 0.0f;
    if (bias.defined()) {
      const Tensor b = dense(bias);
      const float* pb = b.data();
      parallel_for(R, std::max<int64_t>(1, kThreadWork / out_f), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) std::memcpy(po + r * out_f, pb, out_f * sizeof(float));
      });
      beta = 1.0f;
    }
    const Operand xm = rows_operand(x, R, in), wt = make_operand(weight, {}).transposed();
    check_blas_sizes("linear", {R, in, out_f, xm.ld, wt.ld});
    gemm(xm, wt, R, out_f, in, xm.data, wt.data, beta, po, out_f);
  }
  record(out, "linear", EMBER_BACKWARD(linear_backward), {x, weight, bias});
  return out;
}

}  // namespace ember
