#!/usr/bin/env bash
# Installs the Debian packages ember's build needs, when they are missing.
# Usage: tools/install_deps.sh PACKAGE...   (run by the Makefile; root or sudo)
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
(( ${#missing[@]} == 0 )) && exit 0
echo "ember: installing missing Debian packages: ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  echo "ember: need root or sudo to install: ${missing[*]}" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "ember: installed ${missing[*]}"
