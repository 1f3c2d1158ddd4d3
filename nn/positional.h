// Positional encodings, one module each, picked by GPTConfig::pos:
//   learned     PositionalEmbedding: a trainable [context_length, C] table (GPT-2's wpe)
//   sinusoidal  SinusoidalEncoding: the fixed sine/cosine table of "Attention Is All You Need"
//   rope        rotary embeddings on queries and keys (core op rope(), used by attention)
//   alibi       per-head linear biases on attention scores (alibi_slopes(), used by attention)
//   none        no positional information: the control for experiments
#pragma once

#include <string>
#include <vector>

#include "nn/module.h"

namespace ember {

enum class PosKind { Learned, Sinusoidal, Rope, Alibi, None };
PosKind parse_pos_kind(const std::string& name);  // "learned", ...; anything else is an Error
std::string pos_kind_name(PosKind kind);

// Learned absolute positions: forward(T) returns rows 0..T-1 of the table,
// which broadcast-add onto token embeddings [B, T, C].
class PositionalEmbedding : public Module {
 public:
  PositionalEmbedding(int64_t context_length, int64_t dim, Generator& gen);
  Tensor forward(int64_t T) const;  // [T, C]; T > context_length is an Error naming both
  Tensor weight;                    // [context_length, C]
};

// PE[t, 2i] = sin(t / 10000^(2i/C)), PE[t, 2i+1] = cos(t / 10000^(2i/C)).
// No parameters; any length. Angles are computed in double, then rounded.
Tensor sinusoidal_table(int64_t T, int64_t C);
class SinusoidalEncoding : public Module {
 public:
  explicit SinusoidalEncoding(int64_t dim) : dim_(dim) {}
  Tensor forward(int64_t T) const { return sinusoidal_table(T, dim_); }

 private:
  int64_t dim_;
};

// ALiBi head slopes (Press et al.): for n a power of two, slope_h = 2^(-8(h+1)/n);
// otherwise the slopes for the power of two below n, then every other slope
// of the sequence for twice that, until there are n.
std::vector<float> alibi_slopes(int64_t n_head);

}  // namespace ember
