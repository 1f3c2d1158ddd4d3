// Tensor: a float32 n-d array with reverse-mode autograd.
//
// ember::Tensor is a cheap handle: one std::shared_ptr<TensorImpl>. Copying a
// Tensor copies the handle, so both copies share data, shape and gradient, as
// Python names do in PyTorch. Use clone() for an independent copy. Views
// (view, transpose, permute, narrow, unsqueeze, squeeze, expand) share storage.
//
// Token ids are not floats: they live in IntTensor, a plain contiguous int64
// array with a shape (value semantics: copying it copies the ids).
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/generator.h"
#include "core/shape.h"
#include "core/storage.h"

namespace ember {

struct Node;
struct TensorImpl;

// Integer tensor for token ids and class targets: contiguous int64, row-major.
struct IntTensor {
  Shape shape;
  std::vector<int64_t> data;

  IntTensor() = default;
  IntTensor(Shape shape, std::vector<int64_t> values);  // checks that the sizes agree
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
  int64_t dim() const { return static_cast<int64_t>(shape.size()); }
  int64_t size(int64_t d) const;
  std::string str() const;
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (no data); defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }
  long use_count() const { return impl_.use_count(); }  // handles sharing this tensor

  // Shape and layout.
  const Shape& shape() const;
  const Strides& strides() const;
  int64_t offset() const;
  int64_t dim() const;
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  bool is_contiguous() const;

  // Data. data() points at element 0 (storage plus offset). item() needs one element.
  float* data() const;
  float item() const;
  float at(std::initializer_list<int64_t> index) const;  // bounds-checked, for tests and debugging
  // The same for 1 to 3 indices, callable from gdb (which cannot build an
  // initializer_list): `print t.at(0, 2)`.
  float at(int64_t i) const;
  float at(int64_t i, int64_t j) const;
  float at(int64_t i, int64_t j, int64_t k) const;
  std::vector<float> to_vector() const;  // row-major copy of the values

  // Autograd.
  bool requires_grad() const;
  Tensor& requires_grad_(bool on = true);  // leaves only
  Tensor grad() const;                     // undefined until a backward reaches this tensor
  void set_grad(const Tensor& g);
  const std::shared_ptr<Node>& grad_fn() const;
  bool is_leaf() const;
  void retain_grad();                              // also keep .grad on a non-leaf, as in PyTorch
  void backward(bool retain_graph = false) const;  // from a scalar
  void backward(const Tensor& grad_output, bool retain_graph = false) const;  // from any shape
  Tensor detach() const;                                                      // shares data, no history
  // Makes this tensor view `source`'s storage with source's shape, strides and
  // offset, as torch.Tensor.set_ does: every handle of this tensor then reads
  // and writes source's data. Its requires_grad, grad and name stay. Leaves
  // only (an op's output would no longer match its graph).
  Tensor& set_(const Tensor& source);

  // Debugging name: parameters carry dotted names (transformer.wpe.weight).
  const std::string& name() const;
  Tensor& set_name(std::string name);

  // Views (share storage) and copies.
  Tensor view(const Shape& shape) const;     // needs a compatible layout; one dim may be -1
  Tensor reshape(const Shape& shape) const;  // view when possible, else copy
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor permute(const Shape& order) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor expand(const Shape& shape) const;
  Tensor contiguous() const;  // this tensor itself when already contiguous
  Tensor clone() const;       // always a new buffer; differentiable

  // Printing (out of line, so gdb can call it: `print t.str()`). Values are
  // written with %.4g (2.4e-05 stays 2.4e-05). Never throws: a data-free
  // handle (the shape-only input an add node keeps) prints
  // <no data: freed after forward>. In gdb, tools/gdb/ember.py's `ptensor t`
  // prints the same without running code in the program.
  std::string str() const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;
  int64_t offset = 0;
  bool requires_grad = false;
  bool retains_grad = false;
  Tensor grad;                    // same shape, contiguous; allocated by the first backward
  std::shared_ptr<Node> grad_fn;  // the op that made this tensor; null for leaves
  std::string name;
};

// Factories. Random ones draw from `gen`, or from default_generator() when null.
Tensor empty(const Shape& shape);  // uninitialised
Tensor zeros(const Shape& shape);
Tensor ones(const Shape& shape);
Tensor full(const Shape& shape, float value);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor arange(float end);
Tensor arange(float start, float end, float step = 1.0f);
Tensor tensor(const Shape& shape, const std::vector<float>& values);  // row-major values
Tensor scalar_tensor(float value);                                    // shape []
Tensor randn(const Shape& shape, Generator* gen = nullptr);
Tensor rand(const Shape& shape, Generator* gen = nullptr);  // uniform [0, 1)
Tensor normal(const Shape& shape, float mean, float std, Generator* gen = nullptr);

}  // namespace ember
