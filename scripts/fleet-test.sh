#!/usr/bin/env bash
# The local fleet test (ARCHITECTURE.md rule 10): three macronodes on free loopback ports,
# nginx in front of them (passive health checks, retries on the next node, epoch affinity by
# header), the ledger simulator as their ledger; 300 non-dry runs over distinct epochs from 8
# clients, one node SIGKILLed a third of the way in. Passes when the simulator's stats show
# every epoch settled exactly once, no intent twice, and the clients saw no 5xx other than
# 503 overloaded/not_ready. Bounded (< 90 s), loopback only; everything it starts is killed.
#
# The harness is the integration test `a_fleet_of_three_behind_nginx_…` of
# macronode/tests/macronode.rs; this script installs nginx if needed and runs it verbosely.
#   usage: scripts/fleet-test.sh [--release]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || bash scripts/setup.sh nginx-light
FLEET_REQUIRE_NGINX=1 exec cargo test -p rewarder-macronode --locked "$@" --test macronode \
  a_fleet_of_three_behind_nginx -- --nocapture
