// The seed walkthrough: a GPT's input layer, step by step. Token embeddings
// plus a learned positional embedding, summed by broadcasting, and where the
// gradient of a loss lands in both tables. Run: build/embeddings
#include <fmt/format.h>

#include <cmath>
#include <set>

#include "core/ember.h"
#include "nn/layers.h"
#include "nn/positional.h"

using namespace ember;

namespace {

constexpr int64_t V = 50257;  // GPT-2's vocabulary size
constexpr int64_t C = 256;    // embedding dimension
constexpr int64_t B = 8;      // sequences in the batch
constexpr int64_t T = 4;      // context length: tokens per sequence

// Made-up ids for a few words (any ids below V would do).
constexpr int64_t kA = 317, kKilled = 2923, kB = 347, kThe = 383;

float max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  float m = 0.0f;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

Tensor row(const Tensor& t, int64_t b, int64_t pos) { return t.narrow(0, b, 1).narrow(1, pos, 1).reshape({C}); }

}  // namespace

int main() {
  try {
    Generator gen(1337);
    Embedding wte(V, C, gen);            // token table [V, C]
    PositionalEmbedding wpe(T, C, gen);  // positional table [T, C]

    // Batch: row 0 is "A killed B the", row 1 "B killed A the"; the rest are other ids.
    std::vector<int64_t> ids_v = {kA, kKilled, kB, kThe, kB, kKilled, kA, kThe};
    for (int64_t i = ids_v.size(); i < B * T; ++i) ids_v.push_back((i * 7919) % V);
    const IntTensor ids({B, T}, ids_v);
    fmt::print("1. Token ids: {} (vocabulary {})\n", shape_str(ids.shape), V);
    fmt::print("   sequence 0: [{}, {}, {}, {}]  'A killed B the'\n", ids_v[0], ids_v[1], ids_v[2], ids_v[3]);
    fmt::print("   sequence 1: [{}, {}, {}, {}]  'B killed A the'\n\n", ids_v[4], ids_v[5], ids_v[6], ids_v[7]);

    const Tensor tok = wte.forward(ids);  // [B,T,C]
    const Tensor pos = wpe.forward(T);    // [T,C]
    Tensor x = add(tok, pos);             // [B,T,C] + [T,C] -> [B,T,C], pos broadcast over B
    x.retain_grad();
    fmt::print("2. Token embeddings       wte(ids)       {}\n", shape_str(tok.shape()));
    fmt::print("   Positional embeddings  wpe(0..T-1)    {}\n", shape_str(pos.shape()));
    fmt::print("   Input embeddings       tok + pos      {}  (pos is broadcast over the batch)\n\n",
               shape_str(x.shape()));

    fmt::print("3. The same token at two positions: 'A' is at position 0 in sequence 0, at 2 in sequence 1.\n");
    fmt::print("   token vectors differ by      {:.6f}  (same row of wte)\n",
               max_abs_diff(row(tok, 0, 0), row(tok, 1, 2)));
    fmt::print("   input vectors differ by      {:.6f}  (different rows of wpe were added)\n\n",
               max_abs_diff(row(x, 0, 0), row(x, 1, 2)));

    // Sum over positions: a bag of words forgets the order, the input layer does not.
    const Tensor bag0 = sum(tok.narrow(0, 0, 1), {1}), bag1 = sum(tok.narrow(0, 1, 1), {1});
    const Tensor in0 = x.narrow(0, 0, 1), in1 = x.narrow(0, 1, 1);
    fmt::print("4. 'A killed B' vs 'B killed A':\n");
    fmt::print("   sum of token embeddings differs by   {:.6f}  (the same set of vectors)\n", max_abs_diff(bag0, bag1));
    fmt::print("   input embeddings differ by           {:.6f}  (order is now visible)\n\n", max_abs_diff(in0, in1));

    // A small loss, then one backward pass through both tables.
    Tensor loss = mean(mul(x, x));
    loss.backward();
    const Tensor g_tok = wte.weight.grad(), g_pos = wpe.weight.grad(), g_x = x.grad();
    std::set<int64_t> touched;
    for (int64_t r = 0; r < V; ++r)
      for (int64_t c = 0; c < C; ++c)
        if (g_tok.data()[r * C + c] != 0.0f) {
          touched.insert(r);
          break;
        }
    fmt::print("5. loss = mean(x^2) = {:.6f}; backward reaches both tables.\n", loss.item());
    fmt::print("   rows of wte with a non-zero gradient: {} of {} (the {} distinct ids in the batch)\n", touched.size(),
               V, std::set<int64_t>(ids_v.begin(), ids_v.end()).size());
    const Tensor batch_sum = sum(g_x, {0});  // [T,C]: upstream gradient summed over the batch
    fmt::print("   wpe.grad {} vs sum over the batch of dloss/dx {}: max difference {:.3g}\n", shape_str(g_pos.shape()),
               shape_str(batch_sum.shape()), max_abs_diff(g_pos, batch_sum));
    fmt::print("   so each positional row learns from every sequence at its position.\n");
    return 0;
  } catch (const Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
}
