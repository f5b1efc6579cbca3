#!/usr/bin/env bash
# Installs, idempotently, what the Kotlin JVM tests and timings need on this host, the way
# Android local unit tests run: a JDK, kotlinc from the npm package `kotlin-compiler` (into
# build/tools, project-local), JNA from Debian `libjna-java`, JUnit 4 from Debian `junit4`.
# Sourced by scripts/ffi-kotlin-test.sh and scripts/ffi-bench.sh; sets KOTLINC, KOTLIN_LIB
# and FFI_JVM_CP (JNA + JUnit + Hamcrest jars).
set -euo pipefail

KOTLIN_COMPILER_VERSION="${KOTLIN_COMPILER_VERSION:-2.4.20}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

apt_missing=()
for p in libjna-java junit4 libhamcrest-java; do
  dpkg -s "$p" >/dev/null 2>&1 || apt_missing+=("$p")
done
command -v javac >/dev/null 2>&1 || apt_missing+=(default-jdk-headless)
command -v npm >/dev/null 2>&1 || apt_missing+=(npm)
if [ "${#apt_missing[@]}" -gt 0 ]; then
  echo "ffi-kotlin-tools: installing ${apt_missing[*]}" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null; } \
    || { echo "ffi-kotlin-tools: could not install ${apt_missing[*]} with apt-get" >&2; exit 1; }
fi

tools="$root/build/tools"
KOTLIN_HOME="$tools/node_modules/kotlin-compiler"
installed="$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$KOTLIN_HOME/package.json" 2>/dev/null || true)"
if [ "$installed" != "$KOTLIN_COMPILER_VERSION" ] || [ ! -x "$KOTLIN_HOME/bin/kotlinc" ]; then
  echo "ffi-kotlin-tools: installing kotlin-compiler@$KOTLIN_COMPILER_VERSION into $tools" >&2
  mkdir -p "$tools"
  npm install --prefix "$tools" --no-audit --no-fund --loglevel=error "kotlin-compiler@$KOTLIN_COMPILER_VERSION" >&2 \
    || { echo "ffi-kotlin-tools: npm could not install kotlin-compiler@$KOTLIN_COMPILER_VERSION" >&2; exit 1; }
fi
KOTLINC="$KOTLIN_HOME/bin/kotlinc"
KOTLIN_LIB="$KOTLIN_HOME/lib"

jar() {
  for candidate in "$@"; do
    [ -f "$candidate" ] && { echo "$candidate"; return 0; }
  done
  echo "ffi-kotlin-tools: none of $* exists" >&2
  return 1
}
FFI_JVM_CP="$(jar /usr/share/java/jna.jar):$(jar /usr/share/java/junit4.jar):$(jar /usr/share/java/hamcrest-core.jar /usr/share/java/hamcrest.jar)"
export KOTLINC KOTLIN_LIB FFI_JVM_CP
