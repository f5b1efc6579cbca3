#!/usr/bin/env bash
# Installs what the tests need, idempotently: safe to run on every CI run and by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pair in "$@"; do need_apt+=("$pair"); done

# Toolchain components used by the gate.
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

# Debian packages, installed only when missing (the list grows with the project).
apt_packages=(nginx-light)  # nginx: the balancer of the macronode fleet test
missing=()
for p in "${apt_packages[@]}" "${need_apt[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || { echo "setup: could not install ${missing[*]}" >&2; exit 1; }
fi
