// DataParallel: weight-sharing replicas, sliced batches, summed gradients.
#include "train/data_parallel.h"

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

DataParallel::DataParallel(GPT& model, int threads) : model_(model) {
  const int n = threads > 0 ? threads : num_threads();
  const std::vector<NamedTensor> master = model.state_dict();
  for (int k = 1; k < n; ++k) {
    auto replica = std::make_unique<GPT>(model.config());
    const std::vector<NamedTensor> mine = replica->state_dict();
    for (size_t i = 0; i < mine.size(); ++i) mine[i].second.impl()->storage = master[i].second.impl()->storage;
    replicas_.push_back(std::move(replica));
  }
}

float DataParallel::forward_backward(const Batch& batch) {
  const int64_t B = batch.x.size(0);
  const int64_t slices = std::min<int64_t>(static_cast<int64_t>(replicas_.size()) + 1, B);
  std::vector<float> losses(static_cast<size_t>(slices));
  std::vector<std::exception_ptr> errors(static_cast<size_t>(slices));
  // Replica dropout masks come from the model's generator, so one seed (and
  // one checkpointed generator state) still fixes every mask.
  for (int64_t k = 1; k < slices; ++k)
    replicas_[k - 1]->dropout_generator().seed(model_.dropout_generator().next_u64());
  for (int64_t k = 1; k < slices; ++k) replicas_[k - 1]->train(model_.is_training());
  model_.zero_grad();
  parallel_for(slices, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      try {
        GPT& m = k == 0 ? model_ : *replicas_[k - 1];
        if (k > 0) m.zero_grad();
        const int64_t b0 = B * k / slices, b1 = B * (k + 1) / slices;
        Tensor loss = m.loss(m.forward(rows(batch.x, b0, b1)), rows(batch.y, b0, b1));
        losses[k] = loss.item();
        // Each slice's mean loss weighs by its share of the batch.
        mul(loss, static_cast<float>(b1 - b0) / static_cast<float>(B)).backward();
      } catch (...) {
        errors[k] = std::current_exception();
      }
    }
  });
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  const std::vector<Tensor> params = model_.parameters();
  float total = losses[0] * static_cast<float>(B / slices) / static_cast<float>(B);
  for (int64_t k = 1; k < slices; ++k) {
    const std::vector<Tensor> theirs = replicas_[k - 1]->parameters();
    parallel_for(static_cast<int64_t>(params.size()), 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const Tensor g = theirs[i].grad();
        if (!g.defined()) continue;
        Tensor param = params[i], mine = param.grad();
        if (!mine.defined()) {
          param.set_grad(g.clone());
          continue;
        }
        float* d = mine.data();
        const float* s = g.data();
        const int64_t n = g.numel();
        for (int64_t j = 0; j < n; ++j) d[j] += s[j];
      }
    });
    const int64_t b0 = B * k / slices, b1 = B * (k + 1) / slices;
    total += losses[k] * static_cast<float>(b1 - b0) / static_cast<float>(B);
  }
  return total;
}

}  // namespace ember
