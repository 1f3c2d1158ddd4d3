// Module: the base of every layer. It registers parameters and submodules by
// name, so named_parameters() yields PyTorch-style dotted names
// (transformer.h.0.attn.c_attn.weight) and state_dict() maps one to one onto
// a PyTorch model's. Modules are held by std::shared_ptr and not copied.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace ember {

using NamedTensor = std::pair<std::string, Tensor>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Each trainable tensor once, in registration order; a tensor registered
  // under two names (tied weights) is listed under the first, as in PyTorch.
  std::vector<NamedTensor> named_parameters() const;
  std::vector<Tensor> parameters() const;
  int64_t num_parameters() const;
  // Every name, tied duplicates included (PyTorch's state_dict keys).
  std::vector<NamedTensor> state_dict() const;
  // This module ("") and every submodule under its dotted name, depth first in
  // registration order: PyTorch's named_modules(), which nanoGPT's
  // initialisation walks (train/random_stream.h follows the same order).
  std::vector<std::pair<std::string, const Module*>> named_modules() const;
  std::vector<std::pair<std::string, Module*>> named_modules();
  // Copies values in by name. Missing, unexpected and mis-shaped keys are
  // errors that name the key (all keys are checked before anything is copied).
  void load_state_dict(const std::map<std::string, Tensor>& state);

  void zero_grad();  // drops every parameter's .grad (PyTorch's set_to_none)
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Gives every parameter its dotted name, for error messages and graph dumps.
  void name_parameters(const std::string& prefix = "");
  // Points an existing parameter name at another tensor (weight tying).
  void replace_parameter(const std::string& name, const Tensor& t);
  // Makes every parameter view the storage of the same-named parameter of
  // `source`, a module of the same structure (Tensor::set_): the two then
  // share weights, while each keeps its own gradients and graphs. How
  // data-parallel replicas are made (GPT::replica).
  void share_parameters_with(const Module& source);

 protected:
  Tensor register_parameter(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  void collect(const std::string& prefix, std::vector<NamedTensor>& out) const;

  std::vector<NamedTensor> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// An indexed list of submodules named "0", "1", ... (PyTorch's nn.ModuleList).
template <typename M>
class ModuleList : public Module {
 public:
  void push_back(std::shared_ptr<M> m) { items_.push_back(register_module(std::to_string(items_.size()), m)); }
  size_t size() const { return items_.size(); }
  M& operator[](size_t i) const { return *items_[i]; }

 private:
  std::vector<std::shared_ptr<M>> items_;
};

}  // namespace ember
