# Reading ember's objects from a program's memory (a live process or a core
# file) without running any of its code: libstdc++'s shared_ptr, vector and
# string layouts, then TensorView (a Tensor's shape, strides, name, node and
# values) and the graph walk behind pgraph.

import struct

import gdb

MAX_DIMS = 16  # more dims than this: a tensor not yet constructed (garbage memory)
MAX_GRAPH_NODES = 100000


class Unreadable(Exception):
    """The memory does not hold a constructed object (a breakpoint before the constructor ran)."""


def deref(val):
    """The value a reference refers to (the value itself otherwise)."""
    if val.type.strip_typedefs().code in (gdb.TYPE_CODE_REF, gdb.TYPE_CODE_RVALUE_REF):
        return val.referenced_value()
    return val


def shared_get(sp):
    """std::shared_ptr<T> -> T* as an int-able gdb.Value, or None when null."""
    p = sp["_M_ptr"]
    return None if int(p) == 0 else p


def first_pointer(val, depth=0):
    """The raw pointer inside a std::unique_ptr (nested tuple members and bases)."""
    t = val.type.strip_typedefs()
    if t.code == gdb.TYPE_CODE_PTR:
        return val
    if depth > 8 or t.code not in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
        return None
    for f in t.fields():
        if f.type is None or (not f.is_base_class and f.name is None):
            continue
        p = first_pointer(val[f], depth + 1)
        if p is not None:
            return p
    return None


def vector_items(v, limit=1 << 20):
    """The elements of a std::vector, as gdb.Values."""
    start, finish = v["_M_impl"]["_M_start"], v["_M_impl"]["_M_finish"]
    n = int(finish - start) if int(start) else 0
    if n < 0 or n > limit:
        raise Unreadable("vector of %d elements" % n)
    return [(start + i).dereference() for i in range(n)]


def ints(v):
    """A std::vector<int64_t> (Shape, Strides) as a list of Python ints."""
    items = vector_items(v, MAX_DIMS)
    return [int(x) for x in items]


def std_string(s, limit=256):
    n = int(s["_M_string_length"])
    if n < 0 or n > 1 << 16:
        raise Unreadable("string of %d chars" % n)
    if n == 0:
        return ""
    return s["_M_dataplus"]["_M_p"].string(length=min(n, limit))


def c_string(p, limit=128):
    """A NUL-terminated string of at most `limit` bytes (op and backward names)."""
    if not int(p):
        return ""
    raw = b""
    try:
        for chunk in range(0, limit, 16):
            raw += bytes(gdb.selected_inferior().read_memory(int(p) + chunk, 16))
            if b"\0" in raw:
                break
    except gdb.MemoryError:
        if not raw:
            return "?"
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def shape_str(dims):
    return "[" + ", ".join(str(d) for d in dims) + "]"


def fmt(x):
    return "%.4g" % x



class TensorView:
    """What a Tensor handle shows, read from memory: impl is a TensorImpl* (or None)."""

    def __init__(self, tensor):
        tensor = deref(tensor)
        self.impl = shared_get(tensor["impl_"])
        if self.impl is None:
            return
        impl = self.impl.dereference()
        self.shape = ints(impl["shape"])
        self.strides = ints(impl["strides"])
        self.offset = int(impl["offset"])
        if len(self.strides) != len(self.shape) or any(d < 0 for d in self.shape):
            raise Unreadable("shape %s, strides %s" % (self.shape, self.strides))
        self.requires_grad = bool(impl["requires_grad"])
        self.name = std_string(impl["name"])
        self.grad = impl["grad"]
        node = shared_get(impl["grad_fn"])
        self.node = node.dereference() if node is not None else None
        storage = shared_get(impl["storage"])
        self.data = None
        if storage is not None:
            self.data = int(storage.dereference()["data_"])
            self.storage_size = int(storage.dereference()["size_"])

    def defined(self):
        return self.impl is not None

    def numel(self):
        n = 1
        for d in self.shape:
            n *= d
        return n

    def grad_view(self):
        return TensorView(self.grad)

    def element_address(self, index):
        pos = self.offset + sum(i * s for i, s in zip(index, self.strides))
        return self.data + 4 * pos

    def read(self, index):
        mem = gdb.selected_inferior().read_memory(self.element_address(index), 4)
        return struct.unpack("<f", bytes(mem))[0]

    def first_values(self, count):
        """The first `count` values in row-major order."""
        out, index = [], [0] * len(self.shape)
        for _ in range(min(count, self.numel())):
            out.append(self.read(index))
            for d in reversed(range(len(index))):
                index[d] += 1
                if index[d] < self.shape[d]:
                    break
                index[d] = 0
        return out

    def summary(self, values=None, with_values=True):
        """The one line `print t` shows."""
        if not self.defined():
            return "Tensor (undefined)"
        parts = ["Tensor " + shape_str(self.shape), "strides " + shape_str(self.strides)]
        if self.offset:
            parts.append("offset %d" % self.offset)
        if self.name:
            parts.append('name "%s"' % self.name)
        if self.node is not None:
            parts.append("from %s #%d" % (c_string(self.node["op"]), int(self.node["seq"])))
        elif self.requires_grad:
            parts.append("leaf")
        if self.requires_grad:
            parts.append("requires_grad")
            g = self.grad_view()
            parts.append("grad " + (shape_str(g.shape) if g.defined() else "none"))
        if with_values:
            parts.append(self.values_text(6 if values is None else values))
        return ", ".join(parts)

    def values_text(self, count):
        if self.data is None:
            return "<no data: freed after forward>"
        n = self.numel()
        vals = self.first_values(count)
        text = "values [" + ", ".join(fmt(v) for v in vals)
        return text + (", ... (%d in all)]" % n if n > len(vals) else "]")

    def nested(self, edge):
        """All values (or `edge` at each end of each dim), bracketed like Tensor::str()."""
        if self.data is None:
            return "<no data: freed after forward>"
        if not self.shape:
            return fmt(self.read([]))

        def rec(prefix):
            d = len(prefix)
            n = self.shape[d]
            idx = list(range(n))
            if edge is not None and n > 2 * edge:
                idx = list(range(edge)) + [None] + list(range(n - edge, n))
            if d + 1 == len(self.shape):
                return "[" + ", ".join("..." if i is None else fmt(self.read(prefix + [i])) for i in idx) + "]"
            sep = ",\n" + " " * (d + 1)
            return "[" + sep.join("..." if i is None else rec(prefix + [i]) for i in idx) + "]"

        return rec([])


def tensor_or_message(val):
    try:
        return TensorView(val), None
    except (gdb.MemoryError, gdb.error, Unreadable) as e:
        return None, "Tensor <unreadable: %s; not constructed yet? `next` past the opening line>" % e


def input_text(t):
    """How a node lists one input: #seq for an op's output, leaf NAME, const SHAPE."""
    if not t.defined():
        return "-"
    if t.node is not None:
        return "#%d" % int(t.node["seq"])
    return "%s %s" % ("leaf" if t.requires_grad else "const", t.name or shape_str(t.shape))


def op_args_text(node):
    p = first_pointer(node["op_args"])
    if p is None or int(p) == 0:
        return ""
    try:
        held = p.cast(p.dynamic_type).dereference()["value"]
        fields = ["%s = %s" % (f.name, held[f]) for f in held.type.strip_typedefs().fields() if f.name]
        return " args %s{%s}" % (held.type.strip_typedefs().name.split("::")[-1], ", ".join(fields))
    except gdb.error:
        return ""


def node_line(node):
    """A node the way ember::graph_str prints it (plus its named arguments)."""
    inputs = [input_text(TensorView(t)) for t in vector_items(node["inputs"], 1 << 12)]
    text = "#%d %s (%s) -> %s <-" % (
        int(node["seq"]),
        c_string(node["op"]),
        c_string(node["backward_name"]),
        shape_str(ints(node["out_shape"])),
    )
    text += "".join(" " + i for i in inputs if i != "-")
    return text + (" (freed)" if bool(node["released"]) else "")


def graph_nodes(root):
    """The nodes reachable from root, consumers before producers: the order
    ember's engine runs them in (graph_str's order)."""
    post, seen, stack = [], {int(root.address)}, [[root, 0]]
    while stack:
        top = stack[-1]
        inputs = vector_items(top[0]["inputs"], 1 << 12)
        if top[1] < len(inputs):
            child = shared_get(deref(inputs[top[1]])["impl_"])
            top[1] += 1
            if child is None:
                continue
            node = shared_get(child.dereference()["grad_fn"])
            if node is not None and int(node) not in seen:
                if len(seen) > MAX_GRAPH_NODES:
                    raise Unreadable("more than %d nodes" % MAX_GRAPH_NODES)
                seen.add(int(node))
                stack.append([node.dereference(), 0])
        else:
            post.append(top[0])
            stack.pop()
    return list(reversed(post))


