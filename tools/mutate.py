#!/usr/bin/env python3
"""Mutation testing: which one-line changes to ember does `make test` miss?

Reads tools/mutations.txt (FILE | ORIGINAL | REPLACEMENT a line), applies each
mutation alone, rebuilds, runs the doctest suite (stopping at its first
failure), restores the file, and reports every mutation the suite did not
catch. Run it in a scratch checkout, never in one with uncommitted work:

    git worktree add /tmp/ember-mutate HEAD && cd /tmp/ember-mutate
    tools/mutate.py [--only PATTERN] [--timeout SECONDS]

Exit status 0 when every mutation was caught, 1 otherwise.
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.rstrip("\n").split(" | ")
            if len(parts) != 3:
                sys.exit(f"mutations.txt:{n}: expected FILE | ORIGINAL | REPLACEMENT")
            out.append((n, *parts))
    return out


def run(cmd, timeout):
    try:
        return subprocess.run(cmd, cwd=ROOT, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        return "timeout"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run only mutations whose file contains this text")
    ap.add_argument("--timeout", type=int, default=600, help="seconds for the suite on one mutation")
    args = ap.parse_args()
    if run("make -j2 all", 3600) != 0 or run("build/tests --abort-after=1", args.timeout) != 0:
        sys.exit("mutate: the unmutated tree does not build or pass `make test`; fix that first")
    mutations = [m for m in load(os.path.join(ROOT, "tools", "mutations.txt")) if args.only in m[1]]
    caught, survived, stale = [], [], []
    for n, path, original, replacement in mutations:
        full = os.path.join(ROOT, path)
        with open(full, encoding="utf-8") as f:
            text = f.read()
        if text.count(original) != 1:
            stale.append((n, path, original))
            print(f"line {n}: STALE ({text.count(original)} matches) {path}: {original}", flush=True)
            continue
        start = time.time()
        try:
            with open(full, "w", encoding="utf-8") as f:
                f.write(text.replace(original, replacement))
            built = run("make -j2 all", 1800)
            result = "build failed" if built != 0 else run("build/tests --abort-after=1", args.timeout)
        finally:
            with open(full, "w", encoding="utf-8") as f:
                f.write(text)
        killed = result != 0
        (caught if killed else survived).append((n, path, original, replacement))
        print(f"line {n}: {'caught' if killed else 'SURVIVED'} ({result}, {time.time() - start:.0f} s) {path}: "
              f"{original.strip()} -> {replacement.strip()}", flush=True)
    run("make -j2 all", 3600)  # leave the build matching the sources
    tried = len(caught) + len(survived)
    print(f"\nmutate: {len(caught)} of {tried} mutations caught, {len(survived)} survived, {len(stale)} stale")
    for n, path, original, replacement in survived:
        print(f"  survived: line {n}: {path}: {original.strip()} -> {replacement.strip()}")
    return 0 if not survived and not stale else 1


if __name__ == "__main__":
    sys.exit(main())
