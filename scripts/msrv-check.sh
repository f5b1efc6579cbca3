#!/usr/bin/env bash
# Checks the declared minimum Rust version: `cargo check --workspace --all-targets --locked`
# with the toolchain named by `rust-version` in Cargo.toml ([workspace.package]), through
# `rustup run`, so what the workspace declares is what is checked.
#
#   bash scripts/msrv-check.sh             # the toolchain must be installed already
#   bash scripts/msrv-check.sh --install   # installs it first (rustup, minimal profile)
#
# Hosted CI runs it with --install (.github/workflows/ci.yml, job msrv). The project's own
# machines cannot download toolchains: there it fails with the command to run elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

install=0
case "${1:-}" in
  --install) install=1 ;;
  "") ;;
  *) echo "usage: scripts/msrv-check.sh [--install]" >&2; exit 2 ;;
esac

msrv="$(sed -n '/^\[workspace\.package\]/,/^\[/s/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml)"
[ -n "$msrv" ] || { echo "msrv-check: no rust-version in [workspace.package] of Cargo.toml" >&2; exit 2; }
command -v rustup >/dev/null 2>&1 || { echo "msrv-check: rustup is needed to pick toolchain $msrv" >&2; exit 2; }

# The toolchain as rustup names it: "1.88" (what `rustup toolchain install 1.88` and
# dtolnay/rust-toolchain@1.88 install) or "1.88.0".
toolchain=""
for name in "$msrv" "$msrv.0"; do
  if rustup run "$name" rustc --version >/dev/null 2>&1; then toolchain="$name"; break; fi
done
if [ -z "$toolchain" ] && [ "$install" = 1 ]; then
  echo "msrv-check: installing Rust $msrv" >&2
  rustup toolchain install "$msrv" --profile minimal --no-self-update \
    || { echo "msrv-check: rustup could not install Rust $msrv" >&2; exit 1; }
  toolchain="$msrv"
fi
if [ -z "$toolchain" ]; then
  echo "msrv-check: Rust $msrv (rust-version of Cargo.toml) is not installed: nothing was checked." >&2
  echo "msrv-check: run \`rustup toolchain install $msrv --profile minimal\` (or this script with --install)" >&2
  echo "msrv-check: where toolchains can be downloaded; hosted CI runs it (ci.yml, job msrv)." >&2
  exit 1
fi

echo "msrv-check: $(rustup run "$toolchain" rustc --version) (rust-version = \"$msrv\")" >&2
rustup run "$toolchain" cargo check --workspace --all-targets --locked
echo "msrv-check: ok: the workspace checks with Rust $msrv" >&2
