#!/usr/bin/env bash
# Checks that ember can be used from another program: `make install` into a
# temporary prefix, then tests/install/xor_mlp.cpp, copied out of the tree, is
# built with nothing but pkg-config's flags and must learn XOR.
# Usage: tools/check_install.sh MAKE BUILD CXX   (run by `make test`)
set -euo pipefail
make_cmd=$1 build=$2 cxx=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$make_cmd --no-print-directory install BUILD="$build" PREFIX="$tmp/prefix" >/dev/null
cp tests/install/xor_mlp.cpp "$tmp/"  # compiled there, so only the installed headers are found
cd "$tmp"
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
# shellcheck disable=SC2046  # pkg-config's output is a list of flags
$cxx -O1 -Wall -Wextra -Werror xor_mlp.cpp -o xor_mlp $(pkg-config --cflags --libs ember)
./xor_mlp >out.txt
# XOR's truth table, and a mean squared error well below chance (0.25).
if ! grep -qx 'predictions 0 1 1 0' out.txt || ! awk '/^loss /{exit !($2 < 0.01)}' out.txt; then
  echo "install check: the out-of-tree XOR program did not learn XOR:" >&2
  cat out.txt >&2
  exit 1
fi
echo "install check: make install + pkg-config ember: an out-of-tree program learned XOR ($(head -1 out.txt))"
