#!/usr/bin/env bash
# Runs the Swift package's tests (swift/Tests/rewarderTests) against the real Rust library:
#
#   Linux  builds the host librewarder_ffi.so and generates the bindings
#          (scripts/ffi-bindings.sh), copies rewarder.swift into swift/Sources/rewarder/, and
#          runs `swift test` with the generated C module `rewarderFFI` handed to the compiler
#          (-Xcc -fmodule-map-file=build/bindings/swift/rewarderFFI.modulemap) and the library
#          found by the linker and at run time (-Xlinker -L / -rpath, LD_LIBRARY_PATH).
#          Package.swift, on Linux, links `rewarder_ffi` instead of the XCFramework.
#   macOS  builds swift/rewarderFFI.xcframework (scripts/ffi-xcframework.sh: iOS, simulator
#          and macOS static libraries, the bindings) and runs `swift test` on it, as an app would.
#
#   bash scripts/ffi-swift-test.sh [SWIFT_TEST_ARGS...]    # ends with XCTest's summary
#
# Needs a Swift toolchain (5.9+) on PATH, and on macOS Xcode. The project's Linux machines have
# no Swift: there it says so and exits 2 (scripts/ffi-swift-check.sh is what runs there);
# hosted CI runs it (.github/workflows/ci.yml, jobs swift-linux and swift-macos).
# FFI_PROFILE=debug (Linux) tests the debug library instead of the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

if ! command -v swift >/dev/null 2>&1; then
  echo "ffi-swift-test: no Swift toolchain on PATH (swift): nothing was tested." >&2
  echo "ffi-swift-test: run scripts/ffi-swift-check.sh here; hosted CI runs this script." >&2
  exit 2
fi
swift --version >&2

case "$(uname -s)" in
  Darwin)
    bash scripts/ffi-xcframework.sh
    exec swift test --package-path swift "$@"
    ;;
  Linux)
    profile="${FFI_PROFILE:-release}"
    FFI_PROFILE="$profile" bash scripts/ffi-bindings.sh
    gen="$root/build/bindings/swift"
    libdir="$root/target/$profile"
    [ -f "$libdir/librewarder_ffi.so" ] || { echo "ffi-swift-test: $libdir/librewarder_ffi.so missing" >&2; exit 1; }
    cp "$gen/rewarder.swift" swift/Sources/rewarder/rewarder.swift
    export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    exec swift test --package-path swift \
      -Xcc "-fmodule-map-file=$gen/rewarderFFI.modulemap" -Xcc "-I$gen" \
      -Xlinker "-L$libdir" -Xlinker -rpath -Xlinker "$libdir" \
      "$@"
    ;;
  *)
    echo "ffi-swift-test: unsupported host $(uname -s)" >&2
    exit 2
    ;;
esac
