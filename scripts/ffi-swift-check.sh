#!/usr/bin/env bash
# Checks the Swift side as far as a host without a Swift toolchain can: the Swift bindings
# generate (scripts/ffi-bindings.sh), they land in the package (swift/Sources/rewarder/
# rewarder.swift, not committed), and the package layout is complete: Package.swift names the
# module `rewarder` over the binary target `rewarderFFI`, the generated code imports that
# module, the C header declares every function the library exports, the module map names
# `rewarderFFI`, and every name of FFI.md is in the Swift API. With `swift` on PATH (a Mac)
# it also resolves the package description.
#
#   bash scripts/ffi-swift-check.sh     # ends with "swift-check: N passed, N failed"
#
# FFI_SKIP_BUILD=1 reuses the library and bindings built before; FFI_PROFILE=debug checks
# against the debug library (see scripts/ffi-bindings.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

[ "${FFI_SKIP_BUILD:-0}" = 1 ] || bash scripts/ffi-bindings.sh
gen="build/bindings/swift"
pkg="swift"
case "$(uname -s)" in
  Darwin) lib="target/${FFI_PROFILE:-release}/librewarder_ffi.dylib" ;;
  *) lib="target/${FFI_PROFILE:-release}/librewarder_ffi.so" ;;
esac
cp "$gen/rewarder.swift" "$pkg/Sources/rewarder/rewarder.swift"

passed=0
failed=0
check() { # check DESCRIPTION COMMAND…
  local what="$1"; shift
  if "$@" >/dev/null 2>&1; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "swift-check: FAILED $what" >&2
  fi
}
has() { grep -qF -- "$2" "$1"; }

check "Package.swift exists" test -f "$pkg/Package.swift"
check "package is named rewarder" has "$pkg/Package.swift" 'name: "rewarder"'
check "library product rewarder" has "$pkg/Package.swift" '.library(name: "rewarder", targets: ["rewarder"])'
check "binary target rewarderFFI from the XCFramework" \
  has "$pkg/Package.swift" '.binaryTarget(name: "rewarderFFI", path: "rewarderFFI.xcframework")'
check "target rewarder depends on rewarderFFI" has "$pkg/Package.swift" 'dependencies: ["rewarderFFI"]'
check "target sources folder" test -d "$pkg/Sources/rewarder"
check "test target folder" test -f "$pkg/Tests/rewarderTests/RewarderTests.swift"
check "generated rewarder.swift in the target" test -s "$pkg/Sources/rewarder/rewarder.swift"
check "README says there is no Swift toolchain here" grep -qi "no swift toolchain" "$pkg/README.md"
check "generated bindings are ignored by git" has "$pkg/.gitignore" "/Sources/rewarder/rewarder.swift"
check "XCFramework script present and parses" bash -n scripts/ffi-xcframework.sh
check "XCFramework script is executable" test -x scripts/ffi-xcframework.sh

swift_src="$gen/rewarder.swift"
check "bindings import the C module rewarderFFI" has "$swift_src" "import rewarderFFI"
check "module map declares rewarderFFI" has "$gen/rewarderFFI.modulemap" "module rewarderFFI"
check "module map uses the header" has "$gen/rewarderFFI.modulemap" 'header "rewarderFFI.h"'
for name in \
  "public func compute(inputs: Data, policy: Data, tenant: String)" \
  "public func computeJson(inputs: Data, policy: Data, tenant: String)" \
  "public func contentId(bytes: Data) -> String" \
  "public func manifestDigest(manifest: Manifest) -> String" \
  "public func verifyAllocation(allocationsRoot: String, actor: String, amountMinor: String, proof: [ProofStep]) -> Bool" \
  "public func verifySignature(manifestDigest: String, algorithm: String, publicKey: String, signature: String) -> Bool" \
  "public func verifyResult(resultJson: String, trust: Trust, inputs: Data?, policy: Data?)" \
  "public enum Trust" "case keys(" "case embeddedKeys" \
  "public func compare(inputs: Data, policyA: Data, policyB: Data, tenant: String, top: UInt32, actor: String?)" \
  "public struct CompareOutput" "public struct CompareSide" "public struct CompareSummary" "public struct PayoutChange" \
  "public struct Manifest" "public struct Allocation" "public struct ComputeOutput" \
  "public struct ProofStep" "public struct Verification" "public struct EmbeddedConfig" \
  "open class EmbeddedNode" "public convenience init(config: EmbeddedConfig)" \
  "enum RewarderError" "case Invalid(" "case Io(" "case Internal(" \
  "func port() -> UInt16" "func baseUrl() -> String" "func stop()"; do
  check "Swift API has: $name" has "$swift_src" "$name"
done

# Every scaffolding function the library exports is declared in the header the Swift module
# sees, and nothing more is asked of the library than it has.
exported="$(nm -D --defined-only "$lib" 2>/dev/null | awk '{print $3}' | grep -E '^(uniffi_rewarder_ffi_|ffi_rewarder_ffi_)' | sort -u || true)"
declared="$(grep -oE '\b(uniffi_rewarder_ffi_|ffi_rewarder_ffi_)[a-z0-9_]+\(' "$gen/rewarderFFI.h" | tr -d '(' | sort -u)"
check "the library exports its scaffolding" test -n "$exported"
check "the header declares every exported function" test -z "$(comm -23 <(echo "$exported") <(echo "$declared"))"
check "the header asks for nothing the library lacks" test -z "$(comm -13 <(echo "$exported") <(echo "$declared"))"

if command -v swift >/dev/null 2>&1; then
  check "swift package describe" swift package --package-path "$pkg" describe
else
  echo "swift-check: no Swift toolchain on this host: the package is checked by layout only" >&2
fi

echo "swift-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
