// Tensor basics: accessors, factories, element access and printing. The view
// members live in core/ops/view.cpp; autograd members in core/autograd.cpp.
#include "core/tensor.h"

#include <fmt/format.h>

#include <cmath>

#include "core/autograd.h"

namespace ember {

IntTensor::IntTensor(Shape s, std::vector<int64_t> values) : shape(std::move(s)), data(std::move(values)) {
  for (int64_t d : shape) EMBER_CHECK(d >= 0, "IntTensor: negative size in shape {}", shape_str(shape));
  EMBER_CHECK(numel_of(shape) == numel(), "IntTensor: shape {} holds {} ids but {} were given", shape_str(shape),
              numel_of(shape), numel());
}

int64_t IntTensor::size(int64_t d) const { return shape[wrap_dim(d, dim(), "IntTensor::size")]; }

std::string IntTensor::str() const {
  std::string s = fmt::format("IntTensor{} [", shape_str(shape));
  for (int64_t i = 0; i < numel() && i < 64; ++i) s += (i ? ", " : "") + std::to_string(data[i]);
  return s + (numel() > 64 ? ", ...]" : "]");
}

namespace {

TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl) {
  EMBER_CHECK(impl != nullptr, "tensor: use of an undefined tensor");
  return *impl;
}

}  // namespace

const Shape& Tensor::shape() const { return checked(impl_).shape; }
const Strides& Tensor::strides() const { return checked(impl_).strides; }
int64_t Tensor::offset() const { return checked(impl_).offset; }
int64_t Tensor::dim() const { return static_cast<int64_t>(shape().size()); }
int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::numel() const { return numel_of(shape()); }
float* Tensor::data() const {
  EMBER_CHECK(checked(impl_).storage != nullptr, "tensor: no data (a data-free handle kept by an autograd node)");
  return impl_->storage->data() + impl_->offset;
}

bool Tensor::is_contiguous() const {
  const TensorImpl& t = checked(impl_);
  int64_t expected = 1;
  for (size_t i = t.shape.size(); i-- > 0;) {
    if (t.shape[i] != 1 && t.strides[i] != expected) return false;
    expected *= t.shape[i];
  }
  return true;
}

float Tensor::item() const {
  EMBER_CHECK(numel() == 1, "item: tensor of shape {} has {} elements, not 1", shape_str(shape()), numel());
  return *data();
}

float Tensor::at(std::initializer_list<int64_t> index) const {
  EMBER_CHECK(static_cast<int64_t>(index.size()) == dim(), "at: {} indices for a tensor of shape {}", index.size(),
              shape_str(shape()));
  int64_t pos = 0, d = 0;
  for (int64_t i : index) {
    EMBER_CHECK(i >= 0 && i < shape()[d], "at: index {} is out of range for dim {} of shape {}", i, d,
                shape_str(shape()));
    pos += i * strides()[d++];
  }
  return data()[pos];
}

float Tensor::at(int64_t i) const { return at({i}); }
float Tensor::at(int64_t i, int64_t j) const { return at({i, j}); }
float Tensor::at(int64_t i, int64_t j, int64_t k) const { return at({i, j, k}); }

std::vector<float> Tensor::to_vector() const {
  const Tensor c = contiguous();
  return std::vector<float>(c.data(), c.data() + c.numel());
}

const std::string& Tensor::name() const { return checked(impl_).name; }
Tensor& Tensor::set_name(std::string name) {
  checked(impl_).name = std::move(name);
  return *this;
}

// ---- factories ----

Tensor empty(const Shape& shape) {
  for (int64_t d : shape) EMBER_CHECK(d >= 0, "empty: negative size in shape {}", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(numel_of(shape));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  return Tensor(std::move(impl));
}

Tensor full(const Shape& shape, float value) {
  Tensor t = empty(shape);
  std::fill_n(t.data(), t.numel(), value);
  return t;
}

Tensor zeros(const Shape& shape) { return full(shape, 0.0f); }
Tensor ones(const Shape& shape) { return full(shape, 1.0f); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape()); }
Tensor scalar_tensor(float value) { return full({}, value); }

Tensor arange(float end) { return arange(0.0f, end); }

Tensor arange(float start, float end, float step) {
  EMBER_CHECK(step != 0.0f && std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
              "arange: need finite bounds and a non-zero step (got start {}, end {}, step {})", start, end, step);
  const double count = std::ceil((static_cast<double>(end) - start) / step);
  Tensor t = empty({count > 0 ? static_cast<int64_t>(count) : 0});
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = start + static_cast<float>(i) * step;
  return t;
}

Tensor tensor(const Shape& shape, const std::vector<float>& values) {
  for (int64_t d : shape) EMBER_CHECK(d >= 0, "tensor: negative size in shape {}", shape_str(shape));
  EMBER_CHECK(numel_of(shape) == static_cast<int64_t>(values.size()),
              "tensor: shape {} needs {} values but {} were given", shape_str(shape), numel_of(shape), values.size());
  Tensor t = empty(shape);
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

Tensor normal(const Shape& shape, float mean, float std, Generator* gen) {
  EMBER_CHECK(std >= 0.0f, "normal: std must be >= 0, got {}", std);
  Generator& g = gen ? *gen : default_generator();
  Tensor t = empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = g.normal(mean, std);
  return t;
}

Tensor randn(const Shape& shape, Generator* gen) { return normal(shape, 0.0f, 1.0f, gen); }

Tensor rand(const Shape& shape, Generator* gen) {
  Generator& g = gen ? *gen : default_generator();
  Tensor t = empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = g.uniform();
  return t;
}

// ---- printing ----

namespace {

// Appends the values of dims >= d starting at element `pos`, PyTorch style,
// showing at most `edge` items at each end of a long dim.
void append_values(std::string& s, const Tensor& t, int64_t d, int64_t pos, bool abbreviate) {
  const int64_t n = t.shape()[d], edge = 3;
  s += '[';
  for (int64_t i = 0; i < n; ++i) {
    if (abbreviate && n > 2 * edge && i == edge) {
      s += "..., ";
      i = n - edge;
    }
    const int64_t p = pos + i * t.strides()[d];
    if (d + 1 == t.dim())
      s += fmt::format("{:.4g}", t.data()[p]);
    else
      append_values(s, t, d + 1, p, abbreviate);
    if (i + 1 < n) s += d + 1 == t.dim() ? ", " : ",\n" + std::string(static_cast<size_t>(d + 1), ' ');
  }
  s += ']';
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  try {
    std::string s = "tensor(";
    if (!impl_->storage)
      s += "<no data: freed after forward>";
    else if (dim() == 0)
      s += fmt::format("{:.4g}", item());
    else if (numel() == 0)
      s += "[]";
    else
      append_values(s, *this, 0, 0, numel() > 1000);
    s += fmt::format(", shape={}", shape_str(shape()));
    if (!name().empty()) s += fmt::format(", name={}", name());
    if (grad_fn())
      s += fmt::format(", grad_fn={} #{}", grad_fn()->op, grad_fn()->seq);
    else if (requires_grad())
      s += ", requires_grad=true";
    return s + ")";
  } catch (const std::exception& e) {  // out of memory while printing: say so rather than throw into gdb
    return fmt::format("Tensor(<cannot print: {}>)", e.what());
  }
}

}  // namespace ember

#ifdef EMBER_DEBUG
// Debug builds ask gdb to load ember's pretty-printers and commands
// (tools/gdb/ember.py): a .debug_gdb_scripts entry holding a short inline
// Python script (kind 4) that looks for tools/gdb/ember.py in the directories
// above the program and sources it. gdb runs it once the user has allowed the
// program's path (`add-auto-load-safe-path /path/to/ember` in ~/.gdbinit).
asm(R"(.pushsection ".debug_gdb_scripts", "MS",@progbits,1
.byte 4
.ascii "gdb.inlined-script.ember\n"
.ascii "import gdb, os\n"
.ascii "def _ember_find_printers(path):\n"
.ascii "    d = os.path.dirname(os.path.realpath(path))\n"
.ascii "    while d != os.path.dirname(d):\n"
.ascii "        f = os.path.join(d, 'tools', 'gdb', 'ember.py')\n"
.ascii "        if os.path.isfile(f):\n"
.ascii "            return f\n"
.ascii "        d = os.path.dirname(d)\n"
.ascii "_ember_printers = _ember_find_printers(gdb.current_objfile().filename)\n"
.ascii "if _ember_printers:\n"
.ascii "    gdb.execute('source ' + _ember_printers)\n"
.byte 0
.popsection
)");
#endif
