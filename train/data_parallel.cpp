// DataParallel: weight-sharing replicas, sliced batches, summed gradients.
#include "train/data_parallel.h"

#include <algorithm>
#include <exception>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/parallel.h"

namespace ember {
namespace {

// Rows [begin, end) of an [B, T] id tensor.
IntTensor rows(const IntTensor& ids, int64_t begin, int64_t end) {
  const int64_t T = ids.size(1);
  return IntTensor({end - begin, T}, std::vector<int64_t>(ids.data.begin() + begin * T, ids.data.begin() + end * T));
}

}  // namespace

DataParallel::DataParallel(GPT& model, int threads, int64_t pass_tokens) : model_(model), pass_tokens_(pass_tokens) {
  EMBER_CHECK(pass_tokens > 0, "DataParallel: pass_tokens must be positive, got {}", pass_tokens);
  const int n = threads > 0 ? threads : num_threads();
  params_.push_back(model.parameters());
  for (int k = 1; k < n; ++k) {
    replicas_.push_back(model.replica());
    params_.push_back(replicas_.back()->parameters());
  }
}

float DataParallel::forward_backward(const Batch& batch) {
  const int64_t B = batch.x.size(0);
  const int64_t slices = std::min<int64_t>(static_cast<int64_t>(replicas_.size()) + 1, B);
  auto first_row = [&](int64_t k) { return B * k / slices; };  // slice k is rows [first_row(k), first_row(k + 1))
  const int64_t rows_per_pass = std::max<int64_t>(1, pass_tokens_ / std::max<int64_t>(1, batch.x.size(1)));
  std::vector<float> losses(static_cast<size_t>(slices));
  std::vector<std::exception_ptr> errors(static_cast<size_t>(slices));
  // Replica dropout masks come from the model's generator, so one seed (and
  // one checkpointed generator state) still fixes every mask.
  for (int64_t k = 1; k < slices; ++k) {
    replicas_[k - 1]->dropout_generator().seed(model_.dropout_generator().next_u64());
    replicas_[k - 1]->train(model_.is_training());
  }
  parallel_for(slices, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      try {
        GPT& m = k == 0 ? model_ : *replicas_[k - 1];
        for (Tensor& p : params_[k]) p.set_grad(Tensor());
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
        errors[k] = std::current_exception();
      }
    }
  });
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  // Sum the replicas' gradients into the model's, slice by slice in order.
  std::vector<Tensor>& params = params_[0];
  for (int64_t k = 1; k < slices; ++k) {
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
  keep_graph_ = false;
  float total = 0.0f;
  for (float l : losses) total += l;
  return total;
}

}  // namespace ember
