// embedding: looks up rows of a [V, C] table by integer ids (one memcpy per
// id), and its backward, a scatter-add of the incoming rows into a zeroed
// table-shaped gradient, so an id that appears twice gets both rows' gradient.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/parallel.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace ember {
namespace {

// Floats one thread should copy, zero or add to be worth waking it (a few
// microseconds of memory traffic).
constexpr int64_t kThreadFloats = int64_t{1} << 15;

// Zeroes n floats with non-temporal (streaming) stores where the CPU has them:
// they skip the read-for-ownership of each cache line and leave the caches
// alone, which halves the memory traffic of a 49 MiB fill. glibc's memset
// streams only above a size threshold that per-thread chunks fall below, so
// here a parallel memset ran 2-3x slower than one thread; streaming does not.
void stream_zero(float* p, int64_t n) {
#if defined(__SSE2__)
  int64_t i = 0;
  for (; i < n && (reinterpret_cast<uintptr_t>(p + i) & 15) != 0; ++i) p[i] = 0.0f;
  const __m128 zero = _mm_setzero_ps();
  for (; i + 4 <= n; i += 4) _mm_stream_ps(p + i, zero);
  for (; i < n; ++i) p[i] = 0.0f;
  _mm_sfence();  // order the streaming stores before the scatter that follows
#else
  std::memset(p, 0, n * sizeof(float));
#endif
}

// Zeroing the gradient of a GPT-2 sized table (50257 x 256 floats, 49 MiB)
// costs far more than the scatter itself, so it is split over the threads.
void zero_fill(float* p, int64_t n) {
  parallel_for(n, int64_t{1} << 18, [p](int64_t b, int64_t e) { stream_zero(p + b, e - b); });
}

// d out[i, :] / d weight[ids[i], :] is the identity, so grad_weight[v] is the
// sum of g[i] over every i with ids[i] == v, and zero for rows no id names.
// Threads own disjoint column ranges, so two equal ids never race on a row.
struct EmbeddingArgs {
  IntTensor ids;
};
void embedding_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  const IntTensor& ids = n.args<EmbeddingArgs>().ids;
  const int64_t V = n.inputs[0].size(0), C = n.inputs[0].size(1), N = ids.numel();
  Tensor gw = empty({V, C});
  float* pw = gw.data();
  zero_fill(pw, V * C);
  const Tensor gd = g.contiguous();  // backward runs under NoGradGuard: no node recorded
  const float* pg = gd.data();
  const int64_t* pid = ids.data.data();
  auto scatter = [&](int64_t c0, int64_t c1) {
    for (int64_t i = 0; i < N; ++i) {
      float* dst = pw + pid[i] * C;
      const float* src = pg + i * C;
      for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  };
  if (N * C >= kThreadFloats)
    parallel_for(C, std::max<int64_t>(64, kThreadFloats / std::max<int64_t>(N, 1)), std::move(scatter));
  else
    scatter(0, C);
  gi[0] = gw;
}

}  // namespace

Tensor embedding(const Tensor& weight, const IntTensor& ids) {
  EMBER_CHECK(weight.dim() == 2, "embedding: weight must be a 2-D table [V, C] but has shape {}",
              shape_str(weight.shape()));
  const int64_t N = ids.numel(), V = weight.size(0), C = weight.size(1);
  EMBER_CHECK(N == numel_of(ids.shape), "embedding: ids claim shape {} ({} ids) but hold {}", shape_str(ids.shape),
              numel_of(ids.shape), N);
  for (int64_t i = 0; i < N; ++i)
    EMBER_CHECK(ids.data[i] >= 0 && ids.data[i] < V,
                "embedding: id {} at position {} is out of range for a table of {} rows", ids.data[i], i, V);

  // Rows must be unit-stride to memcpy; any row pitch is fine (a narrowed table).
  Tensor table = weight;
  if (C > 1 && weight.strides()[1] != 1) {
    NoGradGuard no_grad;
    table = weight.contiguous();
  }
  const float* pt = table.data();
  const int64_t pitch = table.strides()[0];
  Shape shape = ids.shape;
  shape.push_back(C);
  Tensor out = empty(shape);
  float* po = out.data();
  const int64_t* pid = ids.data.data();
  parallel_for(N, std::max<int64_t>(1, kThreadFloats / std::max<int64_t>(C, 1)), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) std::memcpy(po + i * C, pt + pid[i] * pitch, C * sizeof(float));
  });
  if (Node* n = record(out, "embedding", EMBER_BACKWARD(embedding_backward), {weight}))
    n->set_args(EmbeddingArgs{.ids = ids});
  return out;
}

}  // namespace ember
