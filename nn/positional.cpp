// The positional encodings: learned table, sinusoidal table, ALiBi slopes.
#include "nn/positional.h"

#include <cmath>

#include "core/error.h"

namespace ember {

PosKind parse_pos_kind(const std::string& name) {
  if (name == "learned") return PosKind::Learned;
  if (name == "sinusoidal") return PosKind::Sinusoidal;
  if (name == "rope") return PosKind::Rope;
  if (name == "alibi") return PosKind::Alibi;
  if (name == "none") return PosKind::None;
  fail("pos: unknown positional encoding '{}' (choose learned, sinusoidal, rope, alibi or none)", name);
}

std::string pos_kind_name(PosKind kind) {
  switch (kind) {
    case PosKind::Learned:
      return "learned";
    case PosKind::Sinusoidal:
      return "sinusoidal";
    case PosKind::Rope:
      return "rope";
    case PosKind::Alibi:
      return "alibi";
    case PosKind::None:
      return "none";
  }
  return "?";
}

PositionalEmbedding::PositionalEmbedding(int64_t context_length, int64_t dim, Generator& gen) {
  EMBER_CHECK(context_length > 0 && dim > 0, "PositionalEmbedding: sizes must be positive, got {} x {}", context_length,
              dim);
  weight = register_parameter("weight", normal({context_length, dim}, 0.0f, 0.02f, &gen));
}

Tensor PositionalEmbedding::forward(int64_t T) const {
  EMBER_CHECK(T >= 1 && T <= weight.size(0),
              "PositionalEmbedding: sequence length {} exceeds the context length {} (the table has {} rows)", T,
              weight.size(0), weight.size(0));
  return weight.narrow(0, 0, T);  // a view: the gradient lands in rows 0..T-1
}

Tensor sinusoidal_table(int64_t T, int64_t C) {
  EMBER_CHECK(T >= 0 && C > 0, "sinusoidal_table: invalid size {} x {}", T, C);
  Tensor pe = empty({T, C});
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t two_i = c - c % 2;
      const double angle = static_cast<double>(t) / std::pow(10000.0, static_cast<double>(two_i) / C);
      pe.data()[t * C + c] = static_cast<float>(c % 2 == 0 ? std::sin(angle) : std::cos(angle));
    }
  return pe;
}

std::vector<float> alibi_slopes(int64_t n) {
  EMBER_CHECK(n > 0, "alibi_slopes: need at least one head, got {}", n);
  auto power_of_two_slopes = [](int64_t m) {
    std::vector<float> s;
    for (int64_t h = 0; h < m; ++h) s.push_back(static_cast<float>(std::pow(2.0, -8.0 * (h + 1) / m)));
    return s;
  };
  int64_t lower = 1;
  while (lower * 2 <= n) lower *= 2;
  std::vector<float> slopes = power_of_two_slopes(lower);
  const std::vector<float> finer = power_of_two_slopes(2 * lower);
  for (size_t i = 0; static_cast<int64_t>(slopes.size()) < n; i += 2) slopes.push_back(finer[i]);
  return slopes;
}

}  // namespace ember
