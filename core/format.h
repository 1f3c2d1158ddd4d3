// fmt support: fmt::print("{}", t) prints a Tensor (shape and values,
// abbreviated when large) and fmt::print("{}", ids) an IntTensor.
#pragma once

#include <fmt/format.h>

#include "core/tensor.h"

template <>
struct fmt::formatter<ember::Tensor> : fmt::formatter<std::string_view> {
  auto format(const ember::Tensor& t, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(t.str(), ctx);
  }
};

template <>
struct fmt::formatter<ember::IntTensor> : fmt::formatter<std::string_view> {
  auto format(const ember::IntTensor& t, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(t.str(), ctx);
  }
};
