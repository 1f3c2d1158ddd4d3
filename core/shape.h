// Shapes and strides: small vectors of dimension sizes, with the helpers every
// op needs (element count, contiguous strides, dim wrapping, broadcasting) and
// a printer that writes them the way error messages show them: [8, 4, 256].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ember {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

int64_t numel_of(const Shape& shape);
Strides contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);
// The multi-index of row-major element `flat` in `shape`, written like a shape: [1, 0, 3].
std::string index_str(const Shape& shape, int64_t flat);

// Turns a possibly negative dim (-1 = last) into 0..ndim-1; `op` names the
// caller in the error message when dim is out of range.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

// NumPy/PyTorch broadcasting: align shapes on the right; each pair of sizes
// must be equal or one of them 1. Throws naming `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace ember
