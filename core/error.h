// ember::Error, the one exception type for user errors, and EMBER_CHECK, which
// throws it with a formatted message. Messages name the op or option, the
// offending shapes or values, and the rule broken (see DESIGN.md, "Errors").
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace ember {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An allocation the system refused; the message names its size and what it was for.
struct OutOfMemory : Error {
  using Error::Error;
};

// Throws ember::Error built from a fmt format string and its arguments.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace ember

// EMBER_CHECK(cond, "op: rule broken: {} vs {}", a, b) throws ember::Error when
// cond is false. A macro so the format arguments are only evaluated on failure.
#define EMBER_CHECK(cond, ...)               \
  do {                                       \
    if (!(cond)) ::ember::fail(__VA_ARGS__); \
  } while (0)
