#!/usr/bin/env bash
# One load scenario (testing/performance/scenarios/{steady,burst,brownout}.md) against a fresh
# node on loopback, with wrk + scenario.lua (200/202 success, 429/503 graceful — seed §8.4).
# Writes testing/performance/baselines/SCENARIO-PROFILE-SCALE.json (seed §8.2 format, plus
# details) or into --out-dir; compare.py prints the deltas against the committed ones.
#
# Usage: testing/performance/run_scenario.sh steady|burst|brownout
#          [--exe rewarder-micronode|rewarder-macronode] [--seconds 20] [--scale S|M|L]
#          [--conns N] [--allocations true|false] [--out-dir DIR] [--env KEY=VALUE ...]
# Bounded: one wrk run of --seconds (≤ 600) after a 2 s warm-up; loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { sed -n '2,10p' "$0"; exit 2; }
exe=rewarder-micronode
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[$i]}" = --exe ] && exe="${args[$((i + 1))]}"
done
command -v wrk >/dev/null || bash scripts/setup.sh wrk
cargo build --release --locked -q -p "$exe" -p rewarder-testkit
python3 testing/performance/scenarios/run.py "$@"
