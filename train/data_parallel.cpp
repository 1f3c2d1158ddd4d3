// DataParallel: weight-sharing replicas, sliced batches, summed gradients,
// within a process and across the ranks of an MPI job.
#include "train/data_parallel.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <numeric>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "train/distributed.h"
#include "train/evaluate.h"

namespace ember {
namespace {

// Rows [begin, end) of an [B, T] id tensor.
IntTensor rows(const IntTensor& ids, int64_t begin, int64_t end) {
  const int64_t T = ids.size(1);
  return IntTensor({end - begin, T}, std::vector<int64_t>(ids.data.begin() + begin * T, ids.data.begin() + end * T));
}

// JobError when a batch of B rows leaves a rank without rows: every rank sees
// the whole layout, so all of them find the same one.
void check_rows(const SliceLayout& layout, int64_t B) {
  const auto ranks = static_cast<int64_t>(layout.threads.size());
  for (int64_t r = 1, starts = layout.threads[0]; r < ranks; starts += layout.threads[r++])
    if (starts >= B)
      throw JobError(
          fmt::format("train: a batch of {} rows leaves rank {} without rows ({} ranks with {} threads in "
                      "all cut it into one slice per thread); use a larger --batch-size or fewer ranks",
                      B, r, ranks, layout.total()));
}

}  // namespace

int64_t SliceLayout::total() const { return std::accumulate(threads.begin(), threads.end(), int64_t{0}); }
int64_t SliceLayout::first() const { return std::accumulate(threads.begin(), threads.begin() + rank, int64_t{0}); }

SliceLayout SliceLayout::of_job(int threads) {
  SliceLayout layout;
  layout.rank = world_rank();
  layout.threads.clear();
  const uint64_t own = static_cast<uint64_t>(threads);
  for (uint64_t t : allgather(std::span<const uint64_t>(&own, 1))) layout.threads.push_back(static_cast<int>(t));
  return layout;
}

DataParallel::DataParallel(GPT& model, int threads, int64_t pass_tokens)
    : DataParallel(model, SliceLayout::of_job(threads > 0 ? threads : num_threads()), pass_tokens) {}

DataParallel::DataParallel(GPT& model, SliceLayout layout, int64_t pass_tokens)
    : model_(model), layout_(std::move(layout)), pass_tokens_(pass_tokens) {
  EMBER_CHECK(pass_tokens > 0, "DataParallel: pass_tokens must be positive, got {}", pass_tokens);
  EMBER_CHECK(layout_.rank >= 0 && layout_.rank < static_cast<int>(layout_.threads.size()),
              "DataParallel: rank {} of a layout of {} ranks", layout_.rank, layout_.threads.size());
  for (int t : layout_.threads) EMBER_CHECK(t >= 1, "DataParallel: every rank needs a thread, got {}", t);
  params_.push_back(model.parameters());
  for (int k = 1; k < layout_.threads[static_cast<size_t>(layout_.rank)]; ++k) {
    replicas_.push_back(model.replica());
    params_.push_back(replicas_.back()->parameters());
  }
}

float DataParallel::forward_backward(const Batch& batch) {
  const int64_t B = batch.x.size(0);
  check_rows(layout_, B);
  const int64_t slices = std::min<int64_t>(layout_.total(), B);  // over the whole job
  const int64_t own =
      std::min<int64_t>(layout_.first() + static_cast<int64_t>(replicas_.size()) + 1, slices) - layout_.first();
  seed_slices(slices, own);
  std::vector<float> losses(static_cast<size_t>(slices));  // by slice of the job; others' stay 0 here
  run_slices(batch, slices, own, losses);
  keep_graph_ = false;
  sum_replicas(own);
  if (world_size() > 1) {
    const auto start = std::chrono::steady_clock::now();
    sum_across_ranks();
    // Each slice's loss has one rank that adds anything but zeros to it: the
    // sum is exact, and the total below adds them in one process's order.
    allreduce_sum(losses);
    share_generator_state();
    comm_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  float total = 0.0f;
  for (float l : losses) total += l;
  return total;
}

// Dropout masks of slice k > 0 come from the k-th of slices - 1 seeds drawn
// from the model's generator, slice 0's from the model's generator itself, so
// one seed (and one checkpointed state) fixes every mask, whichever rank runs
// a slice. A rank > 0 runs its first slice on the model, reseeded.
void DataParallel::seed_slices(int64_t slices, int64_t own) {
  std::vector<uint64_t> seeds(static_cast<size_t>(slices));
  for (int64_t k = 1; k < slices; ++k) seeds[k] = model_.dropout_generator().next_u64();
  for (int64_t j = 0; j < own; ++j) {
    GPT& m = j == 0 ? model_ : *replicas_[j - 1];
    if (layout_.first() + j > 0) m.dropout_generator().seed(seeds[layout_.first() + j]);
    m.train(model_.is_training());
  }
}

// This rank's slices, one a thread: slice first + j runs on replica j (0: the model).
void DataParallel::run_slices(const Batch& batch, int64_t slices, int64_t own, std::vector<float>& losses) {
  const int64_t B = batch.x.size(0), first = layout_.first();
  auto first_row = [&](int64_t k) { return B * k / slices; };  // slice k is rows [first_row(k), first_row(k + 1))
  const int64_t rows_per_pass = std::max<int64_t>(1, pass_tokens_ / std::max<int64_t>(1, batch.x.size(1)));
  std::vector<std::exception_ptr> errors(static_cast<size_t>(own));
  parallel_for(own, 1, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      try {
        GPT& m = j == 0 ? model_ : *replicas_[j - 1];
        const int64_t k = first + j;
        for (Tensor& p : params_[j]) p.set_grad(Tensor());
        // The slice goes through in passes of at most rows_per_pass rows; each
        // pass's backward adds into the gradients and frees its activations.
        for (int64_t b0 = first_row(k); b0 < first_row(k + 1); b0 += rows_per_pass) {
          const int64_t b1 = std::min(b0 + rows_per_pass, first_row(k + 1));
          Tensor loss = m.loss(m.forward(rows(batch.x, b0, b1)), rows(batch.y, b0, b1));
          // Each pass's mean loss weighs by its share of the batch.
          const float share = static_cast<float>(b1 - b0) / static_cast<float>(B);
          losses[k] += loss.item() * share;
          const Tensor scaled = mul(loss, share);
          const bool keep = keep_graph_ && k == 0 && b0 == first_row(0);
          scaled.backward(/*retain_graph=*/keep);
          if (keep) kept_graph_ = scaled;
        }
      } catch (...) {
        errors[j] = std::current_exception();
      }
    }
  });
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Sums the replicas' gradients into the model's, slice by slice in order.
void DataParallel::sum_replicas(int64_t own) {
  std::vector<Tensor>& params = params_[0];
  for (int64_t k = 1; k < own; ++k) {
    const std::vector<Tensor>& theirs = params_[k];
    parallel_for(static_cast<int64_t>(params.size()), 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const Tensor g = theirs[i].grad();
        if (!g.defined()) continue;
        Tensor mine = params[i].grad();
        if (!mine.defined()) {
          params[i].set_grad(g.clone());
          continue;
        }
        float* d = mine.data();
        const float* s = g.data();
        const int64_t n = g.numel();
        for (int64_t j = 0; j < n; ++j) d[j] += s[j];
      }
    });
  }
}

void DataParallel::sum_across_ranks() {
  std::vector<Tensor>& params = params_[0];
  std::vector<int64_t> sizes;
  std::vector<Tensor> grads;  // ranks run the same model, so the same parameters have gradients
  for (const Tensor& p : params)
    if (Tensor g = p.grad(); g.defined()) {
      grads.push_back(g);
      sizes.push_back(g.numel());
    }
  for (const GradientBucket& b : gradient_buckets(sizes)) {
    if (!b.packed) {
      allreduce_sum(std::span<float>(grads[b.first].data(), static_cast<size_t>(b.floats)));
      continue;
    }
    staging_.resize(static_cast<size_t>(std::max<int64_t>(b.floats, static_cast<int64_t>(staging_.size()))));
    float* at = staging_.data();
    for (size_t i = b.first; i < b.last; at += sizes[i], ++i)
      std::memcpy(at, grads[i].data(), sizes[i] * sizeof(float));
    allreduce_sum(std::span<float>(staging_.data(), static_cast<size_t>(b.floats)));
    at = staging_.data();
    for (size_t i = b.first; i < b.last; at += sizes[i], ++i)
      std::memcpy(grads[i].data(), at, sizes[i] * sizeof(float));
  }
}

// Rank 0's model generator went on through slice 0's masks; the others' ran
// other slices. They all take rank 0's state, as one process would have it.
void DataParallel::share_generator_state() {
  const Generator::State s = model_.dropout_generator().state();
  uint64_t words[6] = {s.words[0], s.words[1], s.words[2], s.words[3], s.has_spare, 0};
  std::memcpy(&words[5], &s.spare, sizeof(double));
  broadcast(words);
  Generator::State r;
  std::copy_n(words, 4, r.words.begin());
  r.has_spare = words[4] != 0;
  std::memcpy(&r.spare, &words[5], sizeof(double));
  model_.dropout_generator().set_state(r);
}

double DataParallel::mean_loss(const std::vector<Batch>& batches) {
  if (world_size() == 1) return ember::mean_loss(model_, batches);
  // Rank r evaluates batches [n r / R, n (r + 1) / R); each loss has one rank
  // adding anything but zeros to it, so the sum gives every rank the exact
  // losses and the mean is the one process's.
  const auto n = static_cast<int64_t>(batches.size()), R = static_cast<int64_t>(world_size());
  const int64_t begin = n * world_rank() / R, end = n * (world_rank() + 1) / R;
  std::vector<double> losses(batches.size());
  const std::vector<double> own = batch_losses(model_, std::span<const Batch>(batches).subspan(begin, end - begin));
  std::copy(own.begin(), own.end(), losses.begin() + begin);
  allreduce_sum(losses);
  return weighted_mean_loss(losses, batches);
}

}  // namespace ember
