# gdb support for ember: pretty-printers for Tensor, IntTensor, Shape/Strides,
# Node and Generator; the commands ptensor, pgrad and pgraph; the functions
# $seq(t) and $at(t, i, ...); and `skip` rules that keep `step` out of the C++
# and fmt libraries. All of it reads the program's memory and never calls code
# in it, so it works on a core file and on objects not yet constructed.
#
# Debug builds (make debug-programs) load this file by themselves once gdb may
# trust the checkout (a line in ~/.config/gdb/gdbinit or ~/.gdbinit:
# add-auto-load-safe-path /path/to/ember); otherwise: gdb -x tools/gdb/ember.py
# build/debug/gpt. docs/debugging.md shows it at work. The code is in
# ember_gdb/ beside this file: reading.py (memory), printers.py, commands.py.

import importlib
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.insert(0, _here)

import ember_gdb.reading  # noqa: E402
import ember_gdb.printers  # noqa: E402
import ember_gdb.commands  # noqa: E402

# Sourcing the file again (after editing it) picks up the new code.
for _module in (ember_gdb.reading, ember_gdb.printers, ember_gdb.commands):
    importlib.reload(_module)
ember_gdb.printers.register()
ember_gdb.commands.register()
