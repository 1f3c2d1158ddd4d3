# gdb commands ptensor, pgrad and pgraph, the functions $seq(t) and $at(t, i, ...),
# and the `skip` rules that keep `step` inside ember's own code.

import gdb

from ember_gdb.reading import TensorView, graph_nodes, node_line, shape_str, tensor_or_message


def _parse(arg, command):
    """EXPR [N]: an expression and an optional trailing count."""
    words = arg.split()
    if not words:
        raise gdb.GdbError("usage: %s EXPRESSION [N]" % command)
    count = None
    if len(words) > 1 and words[-1].isdigit():
        count = int(words[-1])
        arg = arg[: arg.rstrip().rfind(words[-1])]
    return gdb.parse_and_eval(arg.strip()), count


def _print_tensor(view, edge):
    gdb.write(view.summary(with_values=False) + "\n")
    if edge is None and view.numel() > 1000:
        edge = 3
    gdb.write(view.nested(edge) + "\n")


def _tensor_arg(arg, command):
    val, count = _parse(arg, command)
    view, message = tensor_or_message(val)
    if view is None:
        raise gdb.GdbError(message)
    return view, count


class PTensor(gdb.Command):
    """ptensor EXPR [N]: print a tensor's shape and its values (%.4g).
    All values up to 1000 of them; N: only N values at each end of each dim."""

    def __init__(self):
        super().__init__("ptensor", gdb.COMMAND_DATA, gdb.COMPLETE_EXPRESSION)

    def invoke(self, arg, from_tty):
        view, count = _tensor_arg(arg, "ptensor")
        if not view.defined():
            gdb.write("Tensor (undefined)\n")
            return
        _print_tensor(view, count)


class PGrad(gdb.Command):
    """pgrad EXPR [N]: print a tensor's .grad like ptensor."""

    def __init__(self):
        super().__init__("pgrad", gdb.COMMAND_DATA, gdb.COMPLETE_EXPRESSION)

    def invoke(self, arg, from_tty):
        view, count = _tensor_arg(arg, "pgrad")
        if not view.defined():
            raise gdb.GdbError("pgrad: undefined tensor")
        grad = view.grad_view()
        if not grad.defined():
            kept = view.node is None or int(view.node["output"]["_M_ptr"]) == int(view.impl)
            why = "backward has not reached it yet" if kept else (
                "an op's output keeps no .grad unless it called retain_grad() before backward")
            gdb.write("no grad: %s\n" % why)
            return
        expr = arg.strip() if count is None else arg.strip()[: arg.strip().rfind(" ")].strip()
        gdb.write("%s.grad = " % expr)
        _print_tensor(grad, count)


class PGraph(gdb.Command):
    """pgraph EXPR: the graph that produced a tensor, one node a line, as ember::graph_str."""

    def __init__(self):
        super().__init__("pgraph", gdb.COMMAND_DATA, gdb.COMPLETE_EXPRESSION)

    def invoke(self, arg, from_tty):
        view, _ = _tensor_arg(arg, "pgraph")
        if not view.defined():
            raise gdb.GdbError("pgraph: undefined tensor")
        if view.node is None:
            gdb.write("%s %s (no graph: not made by an op)\n" % ("leaf" if view.requires_grad else "const",
                                                                   view.name or shape_str(view.shape)))
            return
        for node in graph_nodes(view.node):
            gdb.write(node_line(node) + "\n")



# ---- convenience functions ----


class SeqFunction(gdb.Function):
    """$seq(t): the sequence number of the node that made tensor t (-1 for a leaf).
    break add_backward if n.seq == $seq(x) needs a number now: set $s = $seq(x) first."""

    def __init__(self):
        super().__init__("seq")

    def invoke(self, t):
        view = TensorView(t)
        return -1 if not view.defined() or view.node is None else int(view.node["seq"])


class AtFunction(gdb.Function):
    """$at(t, i, j, ...): one element of a tensor, read from memory."""

    def __init__(self):
        super().__init__("at")

    def invoke(self, t, *index):
        view = TensorView(t)
        idx = [int(i) for i in index]
        if not view.defined() or view.data is None:
            raise gdb.GdbError("$at: the tensor has no data")
        if len(idx) != len(view.shape) or any(not 0 <= i < d for i, d in zip(idx, view.shape)):
            raise gdb.GdbError("$at: index %s does not fit shape %s" % (idx, shape_str(view.shape)))
        return view.read(idx)



def register():
    """Defines the commands and functions (again, replacing older ones, when re-sourced)
    and, once per session, the `skip` rules: `step` passes over the C++ library,
    fmt, the JSON and command-line parsers, and goes on in ember's own code."""
    PTensor()
    PGrad()
    PGraph()
    SeqFunction()
    AtFunction()
    if not getattr(gdb, "_ember_skips_added", False):
        gdb._ember_skips_added = True
        for pattern in ("^std::", "^__gnu_cxx::", "^fmt::", "^nlohmann::", "^CLI::"):
            gdb.execute("skip -rfunction %s" % pattern, to_string=True)
