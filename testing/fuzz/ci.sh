#!/usr/bin/env bash
# CI's short fuzz pass: every target for at most FUZZ_SECONDS (default 30) when nightly Rust and
# cargo-fuzz are installed; otherwise says so and exits 0 (the corpora still run on stable as
# regression tests in `cargo test -p rewarder-micronode --test abuse`). A crash fails the run
# and leaves its input under testing/fuzz/artifacts/<target>/.
#
# Usage: testing/fuzz/ci.sh [target...]   (default: every target)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
seconds="${FUZZ_SECONDS:-30}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(inputs policy handler http gzip verify)

if ! cargo +nightly --version >/dev/null 2>&1 || ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: nightly Rust or cargo-fuzz not installed: skipped (the stable corpus replay covers the seeds)"
  exit 0
fi

cd "$root"
cargo +nightly fuzz build --fuzz-dir testing/fuzz -O
bin="$here/target/x86_64-unknown-linux-gnu/release"
for t in "${targets[@]}"; do
  work="$(mktemp -d)"
  mkdir -p "$here/artifacts/$t"
  # Bounded twice: libFuzzer's own clock, and a hard timeout in case it wedges.
  if ! timeout $((seconds + 60)) "$bin/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=60 \
      -artifact_prefix="$here/artifacts/$t/" -print_final_stats=1 "$work" "$here/corpora/$t" \
      > "$work.log" 2>&1; then
    tail -n 40 "$work.log"
    echo "fuzz: $t failed (inputs in testing/fuzz/artifacts/$t/)"
    exit 1
  fi
  echo "fuzz: $t ok: $(grep -E '^stat::number_of_executed_units' "$work.log" | awk '{print $2}') execs," \
    "$(grep -E '^#[0-9]+' "$work.log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')"
  rm -rf "$work" "$work.log"
done
