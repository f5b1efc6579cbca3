#!/usr/bin/env bash
# Builds librewarder_ffi (release, host) and generates its Kotlin and Swift bindings with the
# workspace's pinned uniffi-bindgen into build/bindings/{kotlin,swift}. Generated code is not
# committed (build/ is ignored); run this after any change to ffi/.
#
#   bash scripts/ffi-bindings.sh        # prints the library path and the generated files
#
# The release library is built without the `cli` feature (the generator runs from the debug
# build), so the release profile does not compile the generator's dependencies.
# FFI_PROFILE=debug uses the debug library instead (the one `cargo test --workspace` already
# builds): a quicker gate where the release build would be the slowest step.
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${FFI_PROFILE:-release}"
case "$profile" in
  release) cargo build -p rewarder-ffi --release --lib --locked --no-default-features --features embedded ;;
  debug) cargo build -p rewarder-ffi --lib --locked ;;
  *) echo "ffi-bindings: FFI_PROFILE must be release or debug, not $profile" >&2; exit 2 ;;
esac
case "$(uname -s)" in
  Darwin) lib="target/$profile/librewarder_ffi.dylib" ;;
  *) lib="target/$profile/librewarder_ffi.so" ;;
esac
[ -f "$lib" ] || { echo "ffi-bindings: $lib was not built" >&2; exit 1; }

out="build/bindings"
rm -rf "$out/kotlin" "$out/swift"
for language in kotlin swift; do
  cargo run -q -p rewarder-ffi --bin uniffi-bindgen --locked -- \
    generate --library "$lib" --language "$language" --out-dir "$out/$language" --no-format
done

kotlin="$out/kotlin/uniffi/rewarder/rewarder.kt"
for f in "$kotlin" "$out/swift/rewarder.swift" "$out/swift/rewarderFFI.h" "$out/swift/rewarderFFI.modulemap"; do
  [ -s "$f" ] || { echo "ffi-bindings: $f was not generated" >&2; exit 1; }
done
echo "ffi-bindings: $lib"
find "$out" -type f | sort | sed 's/^/ffi-bindings: generated /'
