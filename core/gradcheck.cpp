// gradcheck: analytic gradients through backward() against central
// differences of a random projection of the output.
#include "core/gradcheck.h"

#include <fmt/format.h>

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"

namespace ember {
namespace {

double projected(const Tensor& out, const std::vector<float>& w) {
  const std::vector<float> v = out.to_vector();
  double s = 0.0;
  for (size_t i = 0; i < v.size(); ++i) s += static_cast<double>(v[i]) * w[i];
  return s;
}

}  // namespace

GradcheckResult gradcheck(const std::string& op, const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs_in, const GradcheckOptions& opt) {
  // Work on private contiguous copies so the caller's tensors are untouched.
  std::vector<Tensor> inputs;
  for (const Tensor& t : inputs_in) {
    Tensor c = t.detach().clone();
    c.requires_grad_(t.requires_grad());
    inputs.push_back(c);
  }
  Tensor out = fn(inputs);
  Generator gen(2024);
  std::vector<float> w(out.numel());
  for (float& x : w) x = gen.uniform() * 2.0f - 1.0f;
  const Tensor weights = tensor(out.shape(), w);
  out.backward(weights);

  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!inputs[k].requires_grad()) continue;
    const Tensor grad = inputs[k].grad();
    const std::vector<float> analytic = grad.defined() ? grad.to_vector() : std::vector<float>(inputs[k].numel());
    float* x = inputs[k].data();
    for (int64_t i = 0; i < inputs[k].numel(); ++i) {
      const float saved = x[i];
      double numeric;
      {
        NoGradGuard no_grad;
        // The step actually taken is what float32 can represent around x.
        const float hi = static_cast<float>(saved + opt.eps), lo = static_cast<float>(saved - opt.eps);
        x[i] = hi;
        const double plus = projected(fn(inputs), w);
        x[i] = lo;
        const double minus = projected(fn(inputs), w);
        x[i] = saved;
        numeric = (plus - minus) / (static_cast<double>(hi) - lo);
      }
      const double got = analytic[i];
      if (!(std::abs(got - numeric) <= opt.atol + opt.rtol * std::abs(numeric)))
        return {false, fmt::format("gradcheck {}: input {} element {}: expected {:.6g} (finite differences), got "
                                   "{:.6g} (backward)",
                                   op, k, index_str(inputs[k].shape(), i), numeric, got)};
    }
  }
  return {};
}

}  // namespace ember
