# ember's gdb support, loaded by tools/gdb/ember.py.
