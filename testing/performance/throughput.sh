#!/usr/bin/env bash
# Throughput and latency of dry-run M computes over HTTP on loopback, macronode vs micronode.
# One JSON line per point (see throughput.py and paced.py for what each workload measures):
#  1. closed loop (wrk/hey) at the seed's steady (128 connections) and burst (256) loads:
#     distinct runs (every request computes) and the same run (run-memo hits);
#  2. open loop (paced.py) at 1x = 150 runs/s and 2x = 300 runs/s offered, with
#     WORK_QUEUE_MAX=32 (shedding) and with the default 4096 (no shedding), for contrast.
#   usage: testing/performance/throughput.sh [DURATION_S]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/../.."
duration="${1:-20}"
command -v wrk >/dev/null && command -v hey >/dev/null || bash scripts/setup.sh wrk hey
cargo build --release --locked -p rewarder-macronode -p rewarder-micronode -p rewarder-testkit >&2
run() {
  echo "# load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  python3 testing/performance/throughput.py --duration "$duration" "$@"
}
echo "# $(nproc) cores; the load generator shares them with the node" >&2
run --exe rewarder-macronode
run --exe rewarder-micronode
run --exe rewarder-macronode --env CONCURRENCY_COMPUTE_WORKERS=2
run --exe rewarder-macronode --workload paced --env WORK_QUEUE_MAX=32
run --exe rewarder-macronode --workload paced
run --exe rewarder-micronode --workload paced
