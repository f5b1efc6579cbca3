#!/usr/bin/env bash
# Assembles swift/rewarderFFI.xcframework from the library's static libraries, for the Swift
# package in swift/: iOS devices (arm64), the iOS simulator (arm64 + x86_64) and macOS
# (arm64 + x86_64), each slice with Headers/rewarderFFI.h and module.modulemap. Also copies
# the generated rewarder.swift into swift/Sources/rewarder/.
#
#   bash scripts/ffi-xcframework.sh
#
# Runs only on macOS with Xcode (xcodebuild, lipo, the Apple SDKs and their clang, which ring
# needs for the `embedded` feature). It cannot run on this project's Linux machines: there
# it explains why and exits 2 without building anything. scripts/ffi-swift-check.sh is the
# part that runs everywhere.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname -s)" != Darwin ] || ! command -v xcodebuild >/dev/null 2>&1 || ! command -v lipo >/dev/null 2>&1; then
  echo "ffi-xcframework: needs macOS with Xcode (xcodebuild, lipo, Apple SDKs); this host is $(uname -s)." >&2
  echo "ffi-xcframework: nothing was built. Run scripts/ffi-swift-check.sh here, this script on a Mac." >&2
  exit 2
fi

ios=aarch64-apple-ios
sims=(aarch64-apple-ios-sim x86_64-apple-ios)
macs=(aarch64-apple-darwin x86_64-apple-darwin)
installed="$(rustup target list --installed)"
for t in "$ios" "${sims[@]}" "${macs[@]}"; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t" \
    || { echo "ffi-xcframework: cannot install the Rust target $t" >&2; exit 1; }
  cargo build -p rewarder-ffi --release --lib --locked --target "$t" --no-default-features --features embedded
done

# The Swift bindings and C header, generated from the host library.
bash scripts/ffi-bindings.sh

work="build/xcframework"
rm -rf "$work"
mkdir -p "$work/headers" "$work/ios-sim" "$work/macos"
cp build/bindings/swift/rewarderFFI.h "$work/headers/"
cp build/bindings/swift/rewarderFFI.modulemap "$work/headers/module.modulemap"
fat() { # fat OUT TARGET… : one universal static library from the targets' builds
  local out="$1"; shift
  local inputs=()
  for t in "$@"; do inputs+=("target/$t/release/librewarder_ffi.a"); done
  lipo -create "${inputs[@]}" -output "$out"
}
fat "$work/ios-sim/librewarder_ffi.a" "${sims[@]}"
fat "$work/macos/librewarder_ffi.a" "${macs[@]}"

rm -rf swift/rewarderFFI.xcframework
xcodebuild -create-xcframework \
  -library "target/$ios/release/librewarder_ffi.a" -headers "$work/headers" \
  -library "$work/ios-sim/librewarder_ffi.a" -headers "$work/headers" \
  -library "$work/macos/librewarder_ffi.a" -headers "$work/headers" \
  -output swift/rewarderFFI.xcframework
cp build/bindings/swift/rewarder.swift swift/Sources/rewarder/rewarder.swift
echo "ffi-xcframework: swift/rewarderFFI.xcframework ready; cd swift && swift build && swift test"
