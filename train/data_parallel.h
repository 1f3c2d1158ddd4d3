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
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "nn/gpt.h"
#include "train/data.h"

namespace ember {

class DataParallel {
 public:
  // 512 tokens a pass keeps config M's activations to a quarter of a
  // 2048-token slice (peak 739 -> 356 MB) for about 3% of its speed
  // (bench/README.md has the measurement); shorter slices, as config S's
  // 384 tokens, run in one pass.
  static constexpr int64_t kDefaultPassTokens = 512;

  // Uses up to `threads` slices (0: num_threads()), each in passes of at most
  // pass_tokens tokens (at least one sequence a pass).
  explicit DataParallel(GPT& model, int threads = 0, int64_t pass_tokens = kDefaultPassTokens);
  // Forward and backward of the mean next-token loss over the whole batch;
  // leaves d(loss)/d(param) in the model's .grad (replaced, not accumulated).
  float forward_backward(const Batch& batch);

  // Makes the next forward_backward keep the graph of slice 0's first pass
  // (through its backward, so the model's leaves end with the whole batch's
  // gradients) until take_graph() hands over its root. For --dump-graph.
  void keep_next_graph() { keep_graph_ = true; }
  Tensor take_graph() { return std::exchange(kept_graph_, Tensor()); }

 private:
  GPT& model_;
  int64_t pass_tokens_;
  std::vector<std::unique_ptr<GPT>> replicas_;  // slice k > 0 runs on replicas_[k - 1]
  std::vector<std::vector<Tensor>> params_;     // params_[k]: slice k's parameters, in the same order
  bool keep_graph_ = false;
  Tensor kept_graph_;
};

}  // namespace ember
