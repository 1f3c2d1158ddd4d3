// Masking ops: masked_fill (a float mask, nonzero = fill), causal_mask (the
// [T, T] mask of future positions for self-attention) and inverted dropout,
// whose random keep-mask is drawn from a seedable Generator and saved, already
// scaled, for the backward.
#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops/strided.h"

namespace ember {
namespace {

using detail::map_binary;

// True when `from` broadcasts to `to` without changing `to`: right-aligned,
// every size of `from` equal to the one in `to` or 1.
bool broadcasts_to(const Shape& from, const Shape& to) {
  if (from.size() > to.size()) return false;
  const size_t lead = to.size() - from.size();
  for (size_t i = 0; i < from.size(); ++i)
    if (from[i] != 1 && from[i] != to[lead + i]) return false;
  return true;
}

// Filled positions are constants, so their gradient is zero; the rest pass g through.
void masked_fill_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  gi[0] = map_binary("masked_fill", g, n.saved[0], [](float gv, float m) { return m != 0.0f ? 0.0f : gv; });
}

// out = a * mask with mask in {0, 1/(1-p)}, so d out / d a = mask.
void dropout_backward(Node& n, const Tensor& g, std::vector<Tensor>& gi) {
  gi[0] = map_binary("dropout", g, n.saved[0], [](float gv, float m) { return gv * m; });
}

// mask[i] = 0 where the element's uniform draw u is below p, else `scale`.
// Same rule as gen.uniform() < p, with u's 24 bits taken two at a time from
// each 64-bit draw, which halves the generator calls.
Tensor keep_mask(const Shape& shape, float p, float scale, Generator& gen) {
  Tensor mask = empty(shape);
  float* m = mask.data();
  const int64_t n = mask.numel();
  // u = bits / 2^24 < p  <=>  bits < ceil(p 2^24), since bits is an integer.
  const uint64_t threshold = static_cast<uint64_t>(std::ceil(static_cast<double>(p) * 16777216.0));
  int64_t i = 0;
  for (; i + 1 < n; i += 2) {
    const uint64_t r = gen.next_u64();
    m[i] = (r >> 40) < threshold ? 0.0f : scale;
    m[i + 1] = ((r >> 8) & 0xFFFFFFu) < threshold ? 0.0f : scale;
  }
  if (i < n) m[i] = (gen.next_u64() >> 40) < threshold ? 0.0f : scale;
  return mask;
}

}  // namespace

Tensor masked_fill(const Tensor& a, const Tensor& mask, float value) {
  EMBER_CHECK(broadcasts_to(mask.shape(), a.shape()),
              "masked_fill: mask {} does not broadcast to the input's shape {} (the result keeps the input's shape)",
              shape_str(mask.shape()), shape_str(a.shape()));
  Tensor out = map_binary("masked_fill", a, mask, [value](float x, float m) { return m != 0.0f ? value : x; });
  // The mask is saved, not an input: it gets no gradient, and a detached handle keeps no graph alive.
  if (Node* n = record(out, "masked_fill", EMBER_BACKWARD(masked_fill_backward), {a})) n->saved = {mask.detach()};
  return out;
}

Tensor causal_mask(int64_t T) {
  EMBER_CHECK(T >= 0, "causal_mask: T must be >= 0, got {}", T);
  Tensor m = empty({T, T});
  float* p = m.data();
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < T; ++j) p[i * T + j] = j > i ? 1.0f : 0.0f;
  return m;
}

// p == 1 is allowed, as in PyTorch: every element is dropped and the result is
// zero (scaling by 1/(1-p) would be infinite, so the kept scale is 0 then).
// Draws come from `gen`, else default_generator(): one seed reproduces the mask.
Tensor dropout(const Tensor& a, float p, bool training, Generator* gen) {
  EMBER_CHECK(p >= 0.0f && p <= 1.0f, "dropout: p must be in [0, 1], got {}", p);
  if (!training || p == 0.0f) return a;
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const Tensor mask = keep_mask(a.shape(), p, scale, gen != nullptr ? *gen : default_generator());
  Tensor out = map_binary("dropout", a, mask, [](float x, float m) { return x * m; });
  if (Node* n = record(out, "dropout", EMBER_BACKWARD(dropout_backward), {a})) n->saved = {mask};
  return out;
}

}  // namespace ember
