#!/usr/bin/env bash
# The dashboard and the Prometheus rules against live nodes: a real Prometheus (Debian's) scrapes a
# micronode and a macronode under a short bounded load, then every panel query and every rule is
# evaluated through its HTTP API (testing/observability/live_prometheus.py). About 15 s once the
# binaries are built (scripts/test.sh has built them by then).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v prometheus >/dev/null 2>&1 || bash scripts/setup.sh
nice -n 19 cargo build --locked -q -p rewarder-micronode -p rewarder-macronode -p rewarder-testkit
timeout 120 python3 testing/observability/live_prometheus.py --profile debug
