// gradcheck: compares the analytic gradients autograd computes with central
// finite differences, for any function of tensors. Used by the test suite and
// reusable by anyone adding an op.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace ember {

struct GradcheckOptions {
  // Step for the central difference f(x+h) - f(x-h) / 2h. In float32 the
  // rounding error of each f is about 6e-8 |f|, so the difference carries an
  // error near 6e-8 |f| / h (6e-5 |f| for h = 1e-3), while the truncation
  // error is O(h^2 f''') (about 1e-6): 1e-3 balances the two.
  double eps = 1e-3;
  // Passes when |analytic - numeric| <= atol + rtol |numeric| for every element;
  // the defaults sit well above the float32 noise estimated above.
  double atol = 1e-3;
  double rtol = 1e-2;
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // on failure: op, input, element index, expected and got
};

// `fn` maps the inputs to one output tensor. The scalar checked is
// sum(output * w) for a fixed random w, so every output element counts, and it
// is accumulated in double. Inputs that do not require grad are left alone.
GradcheckResult gradcheck(const std::string& op, const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& options = {});

}  // namespace ember
