#!/usr/bin/env bash
# Measures what the FFI costs: the time of `compute` and `compute_json` on S and M epochs
# through Kotlin (the generated bindings over JNA, run on the host JVM) against the same
# function called in-process from Rust, and against the core alone,
# and the library sizes (stripped host .so, Android static library when
# scripts/ffi-portability.sh has built it). Overhead goal (issue 5): ≤ 10 % at M.
#
#   bash scripts/ffi-bench.sh [ITERATIONS]     # default 30 timed runs per measurement
#
# Epochs come from `rewarder-testkit vectors --scale S|M` (deterministic) into build/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
iterations="${1:-30}"

# shellcheck source=scripts/ffi-kotlin-tools.sh
source scripts/ffi-kotlin-tools.sh
[ "${FFI_SKIP_BUILD:-0}" = 1 ] || bash scripts/ffi-bindings.sh
cargo build --release --locked -p rewarder-testkit
cargo build --release --locked -p rewarder-ffi --example compute_timing --no-default-features --features embedded

for scale in S M; do
  [ -s "build/bench/$scale/inputs.json" ] || target/release/rewarder-testkit vectors --scale "$scale" --out "build/bench/$scale" >&2
done

classes="build/kotlin/bench-classes"
rm -rf "$classes"
mkdir -p "$classes"
"$KOTLINC" -nowarn -jvm-target 17 -cp "$FFI_JVM_CP" -d "$classes" \
  build/bindings/kotlin android/src/main/kotlin android/src/bench/kotlin

median() { sed -n "s/^$1 median_ms=\([0-9.]*\).*/\1/p" | tail -n 1; }
minimum() { sed -n "s/^$1 .*min_ms=\([0-9.]*\).*/\1/p" | tail -n 1; }
pct() { awk -v k="$1" -v r="$2" 'BEGIN { printf "%+.1f%%", (k - r) / r * 100 }'; }
echo "ffi-bench: load average now: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs (other work skews the figures)"
echo "ffi-bench: median / minimum of $iterations runs after warm-up (ms); overhead = Kotlin vs the same function called from Rust"
printf '%-6s %-13s %16s %16s %16s %18s %14s\n' scale function rust_core rust_ffi kotlin "overhead med/min" "kotlin vs core"
for scale in S M; do
  rust="$(target/release/examples/compute_timing "build/bench/$scale" "$iterations")"
  kotlin="$(java -Djna.library.path="$root/target/release" -cp "$classes:$KOTLIN_LIB/kotlin-stdlib.jar:$FFI_JVM_CP" \
    rewarder.android.ComputeTimingKt "build/bench/$scale" "$iterations")"
  core_med="$(median rust_core_compute <<<"$rust")"
  core="$core_med / $(minimum rust_core_compute <<<"$rust")"
  for fn in compute compute_json; do
    ffi_med="$(median "rust_ffi_$fn" <<<"$rust")"
    ffi_min="$(minimum "rust_ffi_$fn" <<<"$rust")"
    kt_med="$(median "kotlin_$fn" <<<"$kotlin")"
    kt_min="$(minimum "kotlin_$fn" <<<"$kotlin")"
    printf '%-6s %-13s %16s %16s %16s %18s %14s\n' "$scale" "$fn" "$core" "$ffi_med / $ffi_min" "$kt_med / $kt_min" \
      "$(pct "$kt_med" "$ffi_med") / $(pct "$kt_min" "$ffi_min")" "$(pct "$kt_med" "$core_med")"
  done
done
echo "ffi-bench: rust_core = parse + compute + commit in Rust, no FFI function (the floor)"

so="target/release/librewarder_ffi.so"
cp "$so" build/bench/librewarder_ffi.stripped.so
strip build/bench/librewarder_ffi.stripped.so
size() { awk -v b="$1" 'BEGIN { printf "%d bytes (%.2f MiB)", b, b / 1048576 }'; }
echo "ffi-bench: host .so stripped: $(size "$(stat -c %s build/bench/librewarder_ffi.stripped.so)") [goal ≤ 3 MiB]"
a="target/aarch64-linux-android/release/librewarder_ffi.a"
if [ -f "$a" ]; then
  cp "$a" build/bench/librewarder_ffi.android.a
  (command -v aarch64-linux-gnu-strip >/dev/null && aarch64-linux-gnu-strip --strip-debug build/bench/librewarder_ffi.android.a 2>/dev/null) || true
  echo "ffi-bench: Android static library (aarch64, no embedded node): $(size "$(stat -c %s "$a")"), debug info stripped: $(size "$(stat -c %s build/bench/librewarder_ffi.android.a)")"
else
  echo "ffi-bench: no Android static library yet (run scripts/ffi-portability.sh)"
fi
