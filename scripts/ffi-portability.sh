#!/usr/bin/env bash
# Portability checks of ARCHITECTURE.md rules 4 and 7 on this x86_64 host:
#   1. the FFI library builds for aarch64-linux-android as a static library from pure-Rust
#      dependencies (there is no C toolchain for Android here: blake3 uses its `pure` feature
#      on Android, and the `embedded` feature, whose TLS stack needs ring's C code, is left
#      out; cargo-ndk builds with an NDK include it, see scripts/ffi-android-ndk.sh);
#   2. core's golden-vector tests pass on aarch64-unknown-linux-gnu under qemu-user.
# Installs the Rust targets and Debian packages it needs, idempotently, and fails with a
# clear message when it cannot.
#
#   bash scripts/ffi-portability.sh     # prints the static library's size, then cargo's test summary
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "ffi-portability: $*" >&2; exit 1; }

installed="$(rustup target list --installed 2>/dev/null || true)"
for t in aarch64-linux-android aarch64-unknown-linux-gnu; do
  if ! grep -qx "$t" <<<"$installed"; then
    echo "ffi-portability: installing the Rust target $t" >&2
    rustup target add "$t" || fail "cannot install the Rust target $t (rustup target add $t)"
  fi
done

missing=()
for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "ffi-portability: installing ${missing[*]}" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } \
    || fail "could not install ${missing[*]} with apt-get"
fi
command -v aarch64-linux-gnu-gcc >/dev/null || fail "aarch64-linux-gnu-gcc is missing after installing gcc-aarch64-linux-gnu"
command -v qemu-aarch64 >/dev/null || fail "qemu-aarch64 is missing after installing qemu-user"

# 1. The Android static library. Only the staticlib is asked for: the cdylib would need the
# NDK's linker. No CC for Android is set, so any C build step fails here, as it must.
echo "ffi-portability: building librewarder_ffi.a for aarch64-linux-android" >&2
cargo rustc -p rewarder-ffi --release --locked --target aarch64-linux-android --lib \
  --no-default-features --crate-type staticlib
a="target/aarch64-linux-android/release/librewarder_ffi.a"
[ -f "$a" ] || fail "$a was not produced"
nm_bin="$(command -v aarch64-linux-gnu-nm || command -v nm)"
symbols="$("$nm_bin" --defined-only "$a" 2>/dev/null || true)"
grep -q ' T uniffi_rewarder_ffi_fn_func_compute$' <<<"$symbols" \
  || fail "$a does not export uniffi_rewarder_ffi_fn_func_compute"
bytes="$(stat -c %s "$a")"
echo "ffi-portability: $a: $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.1f MiB", b / 1048576 }'))"

# 2. core's golden vectors on aarch64 (Linux, glibc) under qemu-user.
echo "ffi-portability: core golden vectors on aarch64-unknown-linux-gnu under qemu" >&2
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
  cargo test -p rewarder-core --locked --target aarch64-unknown-linux-gnu --test golden
