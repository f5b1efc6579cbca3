#!/usr/bin/env bash
# The static binaries users download: rewarder-micronode and rewarder-macronode for x86_64 and
# aarch64 Linux, built with cargo-zigbuild (zig as the C compiler and linker: ring and the
# bundled SQLite cross-compile without a sysroot) for the musl targets, then checked:
#   - no program interpreter (`readelf -l` lists no INTERP) and no shared library (no NEEDED);
#   - the ELF machine is the target's;
#   - stripped (no .symtab) and at most BINARY_BYTES_MAX (8 MiB);
#   - `--version` runs (aarch64 under qemu-aarch64) and names the target it was built for.
# Where a musl target cannot be installed, the gnu target with `crt-static` is built instead
# (still static, and checked the same way).
#
#   bash scripts/release-binaries.sh [--profile release-ci|dist] [--out DIR] [TARGET...]
#
# Profiles (Cargo.toml): `release-ci` (no LTO, what .ci/run builds), `dist` (the release
# profile with LTO, what .github/workflows/release.yml publishes). Binaries land in DIR (default
# build/release/PROFILE) as rewarder-{micronode,macronode}-TARGET. REWARDER_GIT_REVISION, when
# set, is the revision the binaries report (else `git rev-parse`, else `unknown`).
# Installs nothing: scripts/setup.sh installs the rustup targets, cargo-zigbuild and zig (PyPI
# `ziglang`) into build/tools/venv, and qemu-user.
set -euo pipefail
cd "$(dirname "$0")/.."

profile="release-ci"
out=""
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) echo "release-binaries: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ "${#targets[@]}" -gt 0 ] || targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
out="${out:-build/release/$profile}"
BINARY_BYTES_MAX=$((8 * 1024 * 1024))
BINS=(rewarder-micronode rewarder-macronode)

say() { echo "release-binaries: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

# zig and cargo-zigbuild from the repository's venv (scripts/setup.sh), else from PATH.
VENV="build/tools/venv"
[ -d "$VENV/bin" ] && export PATH="$PWD/$VENV/bin:$PATH"
command -v cargo-zigbuild >/dev/null 2>&1 || fail "cargo-zigbuild missing: run scripts/setup.sh"
command -v readelf >/dev/null 2>&1 || fail "readelf missing (binutils): run scripts/setup.sh"

installed_targets="$(rustup target list --installed 2>/dev/null || true)"
mkdir -p "$out"
started=$SECONDS
for target in "${targets[@]}"; do
  build_target="$target"
  rustflags="${RUSTFLAGS:-}"
  if ! grep -qx "$target" <<<"$installed_targets"; then
    case "$target" in
      *-linux-musl) build_target="${target%-musl}-gnu" ;;
      *) fail "the Rust target $target is not installed" ;;
    esac
    grep -qx "$build_target" <<<"$installed_targets" || fail "neither $target nor $build_target is installed"
    say "$target is not installed: building $build_target with crt-static instead"
    rustflags="$rustflags -C target-feature=+crt-static"
  fi
  case "$build_target" in
    x86_64-*) machine="Advanced Micro Devices X86-64"; runner=() ;;
    aarch64-*) machine="AArch64"; runner=(qemu-aarch64) ;;
    *) fail "no check for the machine of $build_target" ;;
  esac
  say "building ${BINS[*]} for $build_target (profile $profile)"
  t0=$SECONDS
  RUSTFLAGS="$rustflags" nice -n 10 cargo zigbuild --locked --quiet --profile "$profile" \
    --target "$build_target" -p rewarder-micronode -p rewarder-macronode --bins
  say "built $build_target in $((SECONDS - t0)) s"
  for bin in "${BINS[@]}"; do
    src="${CARGO_TARGET_DIR:-target}/$build_target/$profile/$bin"
    dst="$out/$bin-$build_target"
    cp "$src" "$dst"
    headers="$(readelf -lh "$dst")"
    if grep -q 'INTERP' <<<"$headers"; then fail "$dst has a program interpreter: not static"; fi
    grep -q "Machine: *$machine" <<<"$headers" || fail "$dst is not for $machine"
    if readelf -d "$dst" 2>/dev/null | grep -q '(NEEDED)'; then fail "$dst needs shared libraries"; fi
    if readelf -S "$dst" | grep -q '\.symtab'; then fail "$dst is not stripped (.symtab)"; fi
    bytes="$(stat -c %s "$dst")"
    [ "$bytes" -le "$BINARY_BYTES_MAX" ] || fail "$dst is $bytes bytes, more than $BINARY_BYTES_MAX"
    if [ "${#runner[@]}" -gt 0 ]; then
      command -v "${runner[0]}" >/dev/null 2>&1 || fail "${runner[0]} missing (qemu-user): run scripts/setup.sh"
    fi
    version="$(timeout 60 "${runner[@]}" "$dst" --version)" || fail "$dst --version failed"
    grep -Eq "^$bin [^ ]+ \(target $build_target, git ([0-9a-f]{7,40}|unknown)\)$" <<<"$version" \
      || fail "$dst --version says \"$version\", not its target $build_target"
    say "ok $dst: $bytes bytes ($((bytes / 1024)) KiB), static, stripped: $version"
  done
done
say "done in $((SECONDS - started)) s"
