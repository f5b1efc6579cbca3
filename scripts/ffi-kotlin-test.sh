#!/usr/bin/env bash
# The Kotlin JVM tests of the bindings, run on this host as Android local unit tests run:
# builds the library and generates the bindings (scripts/ffi-bindings.sh), compiles the
# generated Kotlin + android/src/main + android/src/test with kotlinc, and runs every
# *Test class under JUnit 4 with JNA loading target/release/librewarder_ffi.so
# (target/debug/… with FFI_PROFILE=debug, see scripts/ffi-bindings.sh).
#
#   bash scripts/ffi-kotlin-test.sh     # ends with "kotlin: N passed, N failed"
#
# The golden vectors are read from REWARDER_VECTORS (scripts/vectors.sh: testing/vectors), handed to
# the tests as -Drewarder.vectors. FFI_SKIP_BUILD=1 reuses the library and bindings built
# before (for a quick re-run after editing only Kotlin).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

# shellcheck source=scripts/ffi-kotlin-tools.sh
source scripts/ffi-kotlin-tools.sh
[ "${FFI_SKIP_BUILD:-0}" = 1 ] || bash scripts/ffi-bindings.sh

# shellcheck source=scripts/vectors.sh
source scripts/vectors.sh
vectors="$REWARDER_VECTORS"
[ -f "$vectors/invalid.json" ] || { echo "ffi-kotlin-test: no golden vectors at $vectors" >&2; exit 1; }

classes="$root/build/kotlin/test-classes"
rm -rf "$classes"
mkdir -p "$classes"
echo "ffi-kotlin-test: compiling bindings, library and tests" >&2
"$KOTLINC" -nowarn -jvm-target 17 -cp "$FFI_JVM_CP" -d "$classes" \
  build/bindings/kotlin android/src/main/kotlin android/src/test/kotlin

tests=()
for f in android/src/test/kotlin/rewarder/android/*Test.kt; do
  tests+=("rewarder.android.$(basename "$f" .kt)")
done
echo "ffi-kotlin-test: running ${tests[*]}" >&2
java -Djna.library.path="$root/target/${FFI_PROFILE:-release}" -Djna.nosys=true -Drewarder.vectors="$vectors" \
  -cp "$classes:$KOTLIN_LIB/kotlin-stdlib.jar:$FFI_JVM_CP" \
  rewarder.android.HostTestMainKt "${tests[@]}"
