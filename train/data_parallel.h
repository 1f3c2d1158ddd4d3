// Data-parallel training steps on one machine. The batch is split into one
// slice per thread; each thread runs forward and backward of its slice on its
// own replica of the model (replicas share the weights' storage but have their
// own gradients and graphs), with every op single-threaded. The replicas'
// gradients are then summed into the model's in a fixed order, so a run is
// deterministic for a given thread count. On small models this beats
// splitting each op across threads: there is one hand-off per step instead of
// one per op, and every core runs whole sgemms on its own data.
//
// A slice longer than pass_tokens tokens goes through forward and backward in
// several passes (gradient accumulation inside the step): activations are
// kept for one pass at a time, so memory no longer grows with the batch.
// The step's loss and gradients are the same sums in another order (they
// agree to float rounding, not bit for bit, with a different pass_tokens).
//
// Across the ranks of an MPI job (train/distributed.h) the slices are the
// ranks' threads in rank order: every rank draws the same batch, runs its own
// slices, and the ranks' gradient sums are added with MPI_Allreduce, so a job
// computes what one process with all their threads would (to float rounding:
// MPI adds the ranks' sums in an order of its own; with 2 ranks of 1 thread
// the sum of two terms is the same bits either way).
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "nn/gpt.h"
#include "train/data.h"

namespace ember {

// Which slices of each batch this process runs. A batch of B rows is cut into
// S = min(total(), B) slices, slice k = rows [B k / S, B (k + 1) / S); rank r
// runs slices [first(), first() + threads[r]) of those that exist.
struct SliceLayout {
  std::vector<int> threads{1};  // threads of each rank, in rank order
  int rank = 0;
  int64_t total() const;
  int64_t first() const;
  // This process's layout in the MPI job (collective): every rank's thread count.
  static SliceLayout of_job(int threads);
};

class DataParallel {
 public:
  // 512 tokens a pass keeps config M's activations to a quarter of a
  // 2048-token slice (peak 739 -> 356 MB) for about 3% of its speed
  // (bench/README.md has the measurement); shorter slices, as config S's
  // 384 tokens, run in one pass.
  static constexpr int64_t kDefaultPassTokens = 512;

  // Uses up to `threads` slices (0: num_threads()), each in passes of at most
  // pass_tokens tokens (at least one sequence a pass).
  // In an MPI job the ranks' thread counts make the slices (collective).
  explicit DataParallel(GPT& model, int threads = 0, int64_t pass_tokens = kDefaultPassTokens);
  // This process as rank `layout.rank` of `layout` (tests play a job's ranks
  // in one process with it; gradients and losses are then this rank's share).
  DataParallel(GPT& model, SliceLayout layout, int64_t pass_tokens = kDefaultPassTokens);
  // Forward and backward of the mean next-token loss over the whole batch;
  // leaves d(loss)/d(param) in the model's .grad (replaced, not accumulated).
  // Every rank gets the same loss, gradients and dropout generator state.
  // JobError when the batch leaves a rank without rows.
  float forward_backward(const Batch& batch);
  // The mean loss over the batches, as mean_loss (train/evaluate.h) gives it;
  // in an MPI job each rank evaluates its share of the batches (collective).
  double mean_loss(const std::vector<Batch>& batches);
  // Sums the model's gradients across the ranks, in place (collective; what
  // forward_backward does after the backward, public for bench_allreduce).
  void sum_across_ranks();
  // Seconds the last forward_backward spent in cross-rank sums (0 in one process).
  double comm_seconds() const { return comm_seconds_; }

  // Makes the next forward_backward keep the graph of slice 0's first pass
  // (through its backward, so the model's leaves end with the whole batch's
  // gradients) until take_graph() hands over its root. For --dump-graph.
  void keep_next_graph() { keep_graph_ = true; }
  Tensor take_graph() { return std::exchange(kept_graph_, Tensor()); }

 private:
  void seed_slices(int64_t slices, int64_t own);
  void run_slices(const Batch& batch, int64_t slices, int64_t own, std::vector<float>& losses);
  void sum_replicas(int64_t own);
  void share_generator_state();

  GPT& model_;
  SliceLayout layout_;
  int64_t pass_tokens_;
  std::vector<float> staging_;  // packed gradients on their way through MPI
  double comm_seconds_ = 0.0;
  std::vector<std::unique_ptr<GPT>> replicas_;  // slice k > 0 runs on replicas_[k - 1]
  std::vector<std::vector<Tensor>> params_;     // params_[k]: slice k's parameters, in the same order
  bool keep_graph_ = false;
  Tensor kept_graph_;
};

}  // namespace ember
