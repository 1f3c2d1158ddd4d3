// Rotary position embedding (RoFormer): each head vector's pairs (2i, 2i+1)
// at position t rotate by angle t * base^(-2i/D). A dot product of a rotated
// query at m with a rotated key at n then depends on m - n only, because
// R(m)^T R(n) = R(n - m). The backward is the inverse rotation, R(-angle).
#include <cmath>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/parallel.h"

namespace ember {
namespace {

struct RopeTables {
  std::vector<float> cos, sin;  // [T, D/2]
};

// Angles in double, then rounded to float, as the PyTorch reference does.
RopeTables rope_tables(int64_t T, int64_t D, double base) {
  RopeTables r;
  r.cos.resize(static_cast<size_t>(T * D / 2));
  r.sin.resize(r.cos.size());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < D / 2; ++i) {
      const double angle = static_cast<double>(t) * std::pow(base, -2.0 * static_cast<double>(i) / D);
      r.cos[t * D / 2 + i] = static_cast<float>(std::cos(angle));
      r.sin[t * D / 2 + i] = static_cast<float>(std::sin(angle));
    }
  return r;
}

// out = R(sign * angle) x for the first `rotate` groups, a copy for the rest.
// x and out are contiguous [B, T, G, D].
void rotate_pairs(const float* x, float* out, const Shape& s, int64_t rotate, const RopeTables& tab, float sign) {
  const int64_t B = s[0], T = s[1], G = s[2], D = s[3];
  parallel_for(B * T, 8, [&](int64_t begin, int64_t end) {
    for (int64_t bt = begin; bt < end; ++bt) {
      const int64_t t = bt % T;
      const float *c = tab.cos.data() + t * D / 2, *sn = tab.sin.data() + t * D / 2;
      for (int64_t g = 0; g < G; ++g) {
        const float* xi = x + (bt * G + g) * D;
        float* o = out + (bt * G + g) * D;
        if (g >= rotate) {
          std::copy(xi, xi + D, o);
          continue;
        }
        for (int64_t i = 0; i < D / 2; ++i) {
          const float x0 = xi[2 * i], x1 = xi[2 * i + 1], si = sign * sn[i];
          o[2 * i] = x0 * c[i] - x1 * si;
          o[2 * i + 1] = x0 * si + x1 * c[i];
        }
      }
    }
  });
}

struct RopeArgs {
  int64_t rotate;  // how many leading groups rotate (rotate_groups with -1 resolved to G)
  float base;
};
void rope_backward(Node& n, const Tensor& g_in, std::vector<Tensor>& gi) {
  const auto& a = n.args<RopeArgs>();
  const Tensor g = g_in.contiguous();
  const Shape& s = n.inputs[0].shape();
  const RopeTables tab = rope_tables(s[1], s[3], a.base);
  gi[0] = empty(s);
  rotate_pairs(g.data(), gi[0].data(), s, a.rotate, tab, -1.0f);
}

}  // namespace

Tensor rope(const Tensor& x_in, int64_t rotate_groups, float base) {
  EMBER_CHECK(x_in.dim() == 4 && x_in.size(3) % 2 == 0,
              "rope: input must be [B, T, G, D] with an even head size D, got {}", shape_str(x_in.shape()));
  EMBER_CHECK(rotate_groups >= -1 && rotate_groups <= x_in.size(2),
              "rope: rotate_groups {} is out of range for {} groups", rotate_groups, x_in.size(2));
  EMBER_CHECK(base > 0.0f, "rope: base must be positive, got {}", base);
  const Tensor x = x_in.contiguous();
  const int64_t rotate = rotate_groups < 0 ? x.size(2) : rotate_groups;
  const RopeTables tab = rope_tables(x.size(1), x.size(3), base);
  Tensor out = empty(x.shape());
  rotate_pairs(x.data(), out.data(), x.shape(), rotate, tab, 1.0f);
  if (Node* n = record(out, "rope", EMBER_BACKWARD(rope_backward), {x_in}))
    n->set_args(RopeArgs{.rotate = rotate, .base = base});
  return out;
}

}  // namespace ember
