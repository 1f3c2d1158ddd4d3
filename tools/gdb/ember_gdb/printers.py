# gdb pretty-printers for ember::Tensor, IntTensor, Shape/Strides, Node and
# Generator, and the two settings `set ember values N` and `set ember children on|off`.

import gdb

from ember_gdb.reading import (
    Unreadable,
    deref,
    fmt,
    ints,
    node_line,
    op_args_text,
    shape_str,
    tensor_or_message,
    vector_items,
)


class _EmberPrefix(gdb.Command):
    def __init__(self, name):
        super().__init__(name, gdb.COMMAND_DATA, gdb.COMPLETE_NONE, True)


_EmberPrefix("set ember")
_EmberPrefix("show ember")


class _ValuesParameter(gdb.Parameter):
    """How many values `print` shows of a tensor (ptensor shows them all)."""

    set_doc = "Set how many values `print` shows of an ember tensor."
    show_doc = "Show how many values `print` shows of an ember tensor."

    def __init__(self):
        super().__init__("ember values", gdb.COMMAND_DATA, gdb.PARAM_ZUINTEGER)
        self.value = 6

    def get_show_string(self, value):
        return "ember tensors print their first %s values" % value


class _ChildrenParameter(gdb.Parameter):
    """Whether printed tensors and nodes can be unfolded (grad, grad_fn, inputs):
    on in an editor's variables pane, off for one-line prints in a terminal."""

    set_doc = "Set whether ember tensors and nodes show unfoldable members."
    show_doc = "Show whether ember tensors and nodes show unfoldable members."

    def __init__(self):
        super().__init__("ember children", gdb.COMMAND_DATA, gdb.PARAM_BOOLEAN)
        self.value = False

    def get_show_string(self, value):
        return "ember children: %s" % value


_values_param = _ValuesParameter()
_children_param = _ChildrenParameter()


class TensorPrinter:
    def __init__(self, val):
        self.val = deref(val)

    def to_string(self):
        view, message = tensor_or_message(self.val)
        return message if view is None else view.summary(_values_param.value)

    def children(self):
        """For editors' variables panes (set ember children on): the fields, the
        gradient and the node that made the tensor, each unfoldable in turn."""
        if not _children_param.value:
            return []
        view, _ = tensor_or_message(self.val)
        if view is None or not view.defined():
            return []
        impl = view.impl.dereference()
        out = [(field, impl[field]) for field in ("shape", "strides", "offset", "name", "requires_grad")]
        if view.grad_view().defined():
            out.append(("grad", view.grad))
        if view.node is not None:
            out.append(("grad_fn", view.node))
        return out


class IntTensorPrinter:
    def __init__(self, val):
        self.val = deref(val)

    def to_string(self):
        try:
            shape = ints(self.val["shape"])
            ids = [int(x) for x in vector_items(self.val["data"])[: max(_values_param.value, 16)]]
            n = 1
            for d in shape:
                n *= d
            more = ", ... (%d in all)" % n if n > len(ids) else ""
            return "IntTensor %s [%s%s]" % (shape_str(shape), ", ".join(map(str, ids)), more)
        except (gdb.MemoryError, gdb.error, Unreadable) as e:
            return "IntTensor <unreadable: %s>" % e


class ShapePrinter:
    def __init__(self, val):
        self.val = deref(val)

    def to_string(self):
        try:
            return shape_str(ints(self.val))
        except (gdb.MemoryError, gdb.error, Unreadable) as e:
            return "<unreadable shape: %s>" % e


class NodePrinter:
    def __init__(self, val):
        self.val = deref(val)

    def to_string(self):
        try:
            return "Node " + node_line(self.val) + op_args_text(self.val)
        except (gdb.MemoryError, gdb.error, Unreadable) as e:
            return "Node <unreadable: %s>" % e

    def children(self):
        if not _children_param.value:
            return []
        try:
            items = vector_items(self.val["inputs"], 1 << 12)
        except (gdb.MemoryError, gdb.error, Unreadable):
            return []
        return [("inputs[%d]" % i, t) for i, t in enumerate(items)]


class GeneratorPrinter:
    def __init__(self, val):
        self.val = deref(val)

    def to_string(self):
        try:
            words = self.val["s_"]["_M_elems"]
            state = ", ".join("0x%016x" % (int(words[i]) & (2**64 - 1)) for i in range(4))
            spare = " spare normal %s" % fmt(float(self.val["spare_"])) if bool(self.val["has_spare_"]) else ""
            return "Generator xoshiro256** state [%s]%s" % (state, spare)
        except (gdb.MemoryError, gdb.error) as e:
            return "Generator <unreadable: %s>" % e


_PRINTERS = {
    "ember::Tensor": TensorPrinter,
    "ember::IntTensor": IntTensorPrinter,
    "ember::Node": NodePrinter,
    "ember::Generator": GeneratorPrinter,
}
_SHAPE_TYPEDEFS = ("ember::Shape", "ember::Strides")


def ember_lookup(val):
    t = val.type
    if t.code in (gdb.TYPE_CODE_REF, gdb.TYPE_CODE_RVALUE_REF):
        t = t.target()
    t = t.unqualified()
    if t.code == gdb.TYPE_CODE_TYPEDEF and t.name in _SHAPE_TYPEDEFS:
        return ShapePrinter(val)
    s = t.strip_typedefs()
    if s.code != gdb.TYPE_CODE_STRUCT:
        return None
    printer = _PRINTERS.get(s.tag or s.name)
    return printer(val) if printer else None


ember_lookup.name = "ember"
ember_lookup.enabled = True


def _install(objfile):
    """Puts the printers first on an objfile's list; the program's objfile comes
    before libstdc++'s, so `print shape` shows [4, 256] rather than a std::vector."""
    lst = objfile.pretty_printers
    lst[:] = [p for p in lst if getattr(p, "name", None) != "ember"]
    lst.insert(0, ember_lookup)


def _on_new_objfile(event):
    _install(event.new_objfile)


def register():
    """Installs the printers on every objfile, now and as they load, and globally."""
    for objfile in gdb.objfiles():
        _install(objfile)
    previous = getattr(gdb, "_ember_new_objfile_handler", None)
    if previous is not None:  # sourced again: one handler, the newest code
        gdb.events.new_objfile.disconnect(previous)
    gdb.events.new_objfile.connect(_on_new_objfile)
    gdb._ember_new_objfile_handler = _on_new_objfile
    gdb.pretty_printers[:] = [p for p in gdb.pretty_printers if getattr(p, "name", None) != "ember"]
    gdb.pretty_printers.insert(0, ember_lookup)
