// The seed walkthrough: a GPT's input layer, step by step. Token embeddings
// plus a learned positional embedding, summed by broadcasting, and where the
// gradient of a loss lands in both tables. Run: build/embeddings (GPT-2's
// sizes, shapes and facts) or build/embeddings --small (B=2, T=3, C=4: every
// vector printed, and the positional gradient as the sum over the batch).
// docs/debugging.md steps through both in gdb.
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <set>

#include "core/ember.h"
#include "nn/layers.h"
#include "nn/positional.h"
#include "train/plots.h"

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

int run_seed_sizes() {
  Generator gen(1337);
  Embedding wte(V, C, gen);            // token table [V, C]
  PositionalEmbedding wpe(T, C, gen);  // positional table [T, C]
  wte.weight.set_name("wte.weight");
  wpe.weight.set_name("wpe.weight");

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
  fmt::print("\nbuild/embeddings --small prints every vector of a batch of 2 sequences of 3 tokens.\n");
  return 0;
}

// ---- --small: B=2, T=3, C=4, every vector printed ----

// A vector as "[ 0.01234, -0.0056, ...]", %.4g in fixed-width columns.
std::string vec_str(const Tensor& v) {
  std::string s = "[";
  for (float x : v.to_vector()) s += fmt::format("{}{:>10.4g}", s.size() > 1 ? "," : "", x);
  return s + "]";
}

// Row t of a [T, C] table, or row (b, t) of a [B, T, C] tensor.
// Row t of a [T, C] table, or row (b, t) of a [B, T, C] tensor. Printing records
// no graph (NoGradGuard), so the nodes' sequence numbers stay 0, 1, 2, ... for the model.
Tensor at_row(const Tensor& t, int64_t i) {
  NoGradGuard no_grad;
  return t.narrow(0, i, 1).reshape({t.size(-1)});
}
Tensor at_row(const Tensor& t, int64_t b, int64_t i) {
  NoGradGuard no_grad;
  return t.narrow(0, b, 1).narrow(1, i, 1).reshape({t.size(-1)});
}

int run_small(const std::string& dot_file) {
  constexpr int64_t Bs = 2, Ts = 3, Cs = 4, context = 4;  // the table has one row more than the batch uses
  const char* words[] = {"A", "killed", "B", "the"};      // the vocabulary: ids 0..3
  const int64_t Vs = 4;
  Generator gen(1337);
  Embedding wte(Vs, Cs, gen);                 // [V, C]
  PositionalEmbedding wpe(context, Cs, gen);  // [context, C]
  wte.weight.set_name("wte.weight");
  wpe.weight.set_name("wpe.weight");
  // "A killed B the" and "B killed A the": inputs are the first 3 words, targets the next word at each position.
  const IntTensor ids({Bs, Ts}, {0, 1, 2, 2, 1, 0}), targets({Bs, Ts}, {1, 2, 3, 1, 0, 3});
  fmt::print("B={} sequences of T={} tokens, C={} channels, a vocabulary of {} words; wpe has {} rows.\n\n", Bs, Ts, Cs,
             Vs, context);
  fmt::print("1. Inputs and next-token targets\n");
  for (int64_t b = 0; b < Bs; ++b)
    fmt::print("   sequence {}: {:<6} {:<6} {:<6} -> targets {:<6} {:<6} {}\n", b, words[ids.data[b * Ts]],
               words[ids.data[b * Ts + 1]], words[ids.data[b * Ts + 2]], words[targets.data[b * Ts]],
               words[targets.data[b * Ts + 1]], words[targets.data[b * Ts + 2]]);

  const Tensor tok = wte.forward(ids);  // [B,T,C]: row ids[b,t] of wte
  const Tensor pos = wpe.forward(Ts);   // [T,C]: rows 0..T-1 of wpe
  Tensor x = add(tok, pos);             // [B,T,C] + [T,C] -> [B,T,C]
  x.retain_grad();
  fmt::print("\n2. Token rows tok = wte(ids) {}, positional rows pos = wpe(0..T-1) {}\n", shape_str(tok.shape()),
             shape_str(pos.shape()));
  for (int64_t t = 0; t < Ts; ++t) fmt::print("   pos[{}]                    {}\n", t, vec_str(at_row(pos, t)));
  for (int64_t b = 0; b < Bs; ++b)
    for (int64_t t = 0; t < Ts; ++t)
      fmt::print("   tok[{},{}] = wte[{:<6}]    {}\n   x[{},{}]   = tok + pos[{}]   {}\n", b, t,
                 words[ids.data[b * Ts + t]], vec_str(at_row(tok, b, t)), b, t, t, vec_str(at_row(x, b, t)));
  fmt::print(
      "   Broadcasting: shapes are aligned on the right, [2, 3, 4] against [3, 4]; a dimension pos lacks\n"
      "   (or has as 1) is repeated, so the same 3 rows of wpe are added to each of the 2 sequences.\n");

  // A real next-token loss: logits = x wte^T (the head shares wte, as GPT-2's does).
  Tensor loss = cross_entropy(matmul(x, wte.weight.transpose(0, 1)), targets);
  loss.backward(/*retain_graph=*/!dot_file.empty());  // kept for the picture
  fmt::print("\n3. loss = cross-entropy of the next word = {:.4f} (ln {} = {:.4f}: a guess among {} words)\n",
             loss.item(), Vs, std::log(static_cast<double>(Vs)), Vs);
  fmt::print("   dloss/dx for each sequence at each position, their sum over the batch, and wpe.grad:\n");
  const Tensor gx = x.grad(), gpos = wpe.weight.grad();
  float worst = 0.0f;
  for (int64_t t = 0; t < Ts; ++t) {
    const Tensor batch_sum = at_row(gx, 0, t) + at_row(gx, 1, t);
    for (int64_t b = 0; b < Bs; ++b) fmt::print("   t={} dloss/dx[{},{}]  {}\n", t, b, t, vec_str(at_row(gx, b, t)));
    fmt::print("       sum over b     {}\n       wpe.grad[{}]    {}\n", vec_str(batch_sum), t,
               vec_str(at_row(gpos, t)));
    worst = std::max(worst, max_abs_diff(batch_sum, at_row(gpos, t)));
  }
  fmt::print("   wpe.grad[{}]        {}  (row {} was not used: T = {})\n", context - 1,
             vec_str(at_row(gpos, context - 1)), context - 1, Ts);
  fmt::print("   max |wpe.grad[t] - sum over b of dloss/dx[b,t]| = {:.3g}\n", worst);
  fmt::print(
      "   Why a sum: pos[t] is added to x[b,t] for every b, so it feeds B outputs, and the chain rule adds\n"
      "   the gradient of each use. The table has no backward of its own: add's backward sums the incoming\n"
      "   [2, 3, 4] gradient over the broadcast batch dim (sum_to, to [3, 4]), and narrow's backward writes\n"
      "   those rows into rows 0..2 of the [4, 4] wpe.grad.\n");
  if (!dot_file.empty()) {  // the input layer's graph, values and gradients included
    write_text_file(dot_file, graph_dot(x));
    fmt::print("\nThe input layer's graph is in {} (render it: dot -Tsvg {} -o input_layer.svg)\n", dot_file, dot_file);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    bool small = false;
    std::string dot_file;
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "--small") == 0)
        small = true;
      else if (std::strcmp(argv[i], "--dot") == 0 && i + 1 < argc && argv[i + 1][0] != '\0')
        dot_file = argv[++i];
      else
        fail(
            "embeddings: unknown argument '{}' (options: --small for every vector, --dot FILE with it to write "
            "the input layer's graph)",
            argv[i]);
    }
    EMBER_CHECK(small || dot_file.empty(), "embeddings: --dot draws the --small example; give both");
    return small ? run_small(dot_file) : run_seed_sizes();
  } catch (const Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
}
