// Shared helpers for the core tests: elementwise comparison with a stated
// tolerance, and a gradcheck assertion that prints gradcheck's report.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/ember.h"

namespace ember::testing {

// CHECKs every element of `got` against `expected` within `tol` absolute.
inline void check_values(const Tensor& got, const std::vector<float>& expected, float tol = 1e-6f) {
  const std::vector<float> v = got.to_vector();
  REQUIRE(v.size() == expected.size());
  for (size_t i = 0; i < v.size(); ++i)
    CHECK_MESSAGE(std::abs(v[i] - expected[i]) <= tol, "element ", i, ": got ", v[i], ", expected ", expected[i]);
}

inline Tensor leaf(const Shape& shape, uint64_t seed, float scale = 1.0f) {
  Generator g(seed);
  Tensor t = normal(shape, 0.0f, scale, &g);
  t.requires_grad_();
  return t;
}

#define CHECK_GRADCHECK(op, fn, inputs)                                     \
  do {                                                                      \
    const ::ember::GradcheckResult r_ = ::ember::gradcheck(op, fn, inputs); \
    CHECK_MESSAGE(r_.ok, r_.message);                                       \
  } while (0)

// The message of the ember::Error that f throws ("" if it throws none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace ember::testing
