// Module: parameter registration, hierarchical names, state dicts, modes.
#include "nn/module.h"

#include <set>

#include "core/error.h"

namespace ember {

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  if (!t.requires_grad()) t.requires_grad_();
  params_.emplace_back(name, t);
  return t;
}

void Module::collect(const std::string& prefix, std::vector<NamedTensor>& out) const {
  for (const auto& [name, t] : params_) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

void Module::replace_parameter(const std::string& name, const Tensor& t) {
  for (auto& [n, p] : params_)
    if (n == name) {
      EMBER_CHECK(p.shape() == t.shape(), "replace_parameter: '{}' has shape {} but the new tensor has {}", name,
                  shape_str(p.shape()), shape_str(t.shape()));
      p = t;
      return;
    }
  fail("replace_parameter: no parameter named '{}'", name);
}

std::vector<NamedTensor> Module::state_dict() const {
  std::vector<NamedTensor> all;
  collect("", all);
  return all;
}

std::vector<std::pair<std::string, const Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, const Module*>> out{{"", this}};
  for (const auto& [name, child] : children_)
    for (const auto& [sub, m] : child->named_modules()) out.emplace_back(sub.empty() ? name : name + "." + sub, m);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out{{"", this}};
  for (const auto& [name, child] : children_)
    for (const auto& [sub, m] : child->named_modules()) out.emplace_back(sub.empty() ? name : name + "." + sub, m);
  return out;
}

void Module::share_parameters_with(const Module& source) {
  const std::vector<NamedTensor> mine = state_dict(), theirs = source.state_dict();
  EMBER_CHECK(mine.size() == theirs.size(), "share_parameters_with: {} parameters here but {} in the source",
              mine.size(), theirs.size());
  for (size_t i = 0; i < mine.size(); ++i) {
    EMBER_CHECK(mine[i].first == theirs[i].first && mine[i].second.shape() == theirs[i].second.shape(),
                "share_parameters_with: '{}' {} does not match the source's '{}' {}", mine[i].first,
                shape_str(mine[i].second.shape()), theirs[i].first, shape_str(theirs[i].second.shape()));
    Tensor t = mine[i].second;
    t.set_(theirs[i].second);
  }
}

std::vector<NamedTensor> Module::named_parameters() const {
  std::vector<NamedTensor> unique;
  std::set<const TensorImpl*> seen;
  for (auto& nt : state_dict())
    if (seen.insert(nt.second.impl()).second) unique.push_back(std::move(nt));
  return unique;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& t : parameters()) n += t.numel();
  return n;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state) {
  const std::vector<NamedTensor> mine = state_dict();
  std::set<std::string> expected;
  for (const auto& [name, t] : mine) {
    expected.insert(name);
    auto it = state.find(name);
    EMBER_CHECK(it != state.end(), "load_state_dict: missing key '{}' (expected shape {})", name, shape_str(t.shape()));
    EMBER_CHECK(it->second.shape() == t.shape(), "load_state_dict: key '{}' has shape {} but the model expects {}",
                name, shape_str(it->second.shape()), shape_str(t.shape()));
  }
  for (const auto& [name, t] : state)
    EMBER_CHECK(expected.count(name), "load_state_dict: unexpected key '{}' (shape {}) is not in the model", name,
                shape_str(t.shape()));
  for (const auto& [name, t] : mine) {
    const Tensor src = state.at(name).contiguous();
    std::copy(src.data(), src.data() + src.numel(), t.data());
  }
}

void Module::zero_grad() {
  for (Tensor& t : parameters()) t.set_grad(Tensor());
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::name_parameters(const std::string& prefix) {
  for (auto& [name, t] : named_parameters()) t.set_name(prefix + name);
}

}  // namespace ember
