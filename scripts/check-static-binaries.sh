#!/usr/bin/env bash
# Runs the static binaries that scripts/release-binaries.sh built, as a user would: each one (the
# aarch64 ones under qemu-aarch64) serves on 127.0.0.1 with authentication on, and
# scripts/golden-http.py computes every golden vector of testing/vectors over HTTP for two
# tenants and compares manifests, digests and allocations with expected.json; `/version` must
# name the binary's target. Then the binary's own `healthcheck` (what the container's HEALTHCHECK
# runs) must pass against the node and fail against a closed port. Bounded: each node gets
# START_SECONDS (120) to listen and NODE_SECONDS (300) in all, each probe 5 s.
#
#   bash scripts/check-static-binaries.sh [DIR]     # DIR: default build/release/release-ci
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/vectors.sh
source scripts/vectors.sh
dir="${1:-build/release/release-ci}"
NODE_SECONDS="${NODE_SECONDS:-300}"
START_SECONDS="${START_SECONDS:-120}"

say() { echo "check-static-binaries: $*" >&2; }
scratch="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$scratch"
}
trap cleanup EXIT

# A port nothing listens on: bound, then released.
closed_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

checked=0
for bin in "$dir"/rewarder-micronode-* "$dir"/rewarder-macronode-*; do
  [ -f "$bin" ] || continue
  target="${bin##*/rewarder-micronode-}"; target="${target##*/rewarder-macronode-}"
  case "$target" in
    aarch64-*) runner=(qemu-aarch64) ;;
    *) runner=() ;;
  esac
  say "$bin (${runner[*]:-native})"
  key="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  export AUTH_KEYS="golden:$key"
  run=(timeout "$NODE_SECONDS" "${runner[@]}" "$bin")
  BIND_ADDR=127.0.0.1:0 TENANT_RPS_MAX=1000000 LOG=warn AMNESIA_DIR=/dev/shm "${run[@]}" serve \
    2>"$scratch/node.log" &
  pid=$!
  waited=$SECONDS
  url=""
  while [ -z "$url" ] && [ $((SECONDS - waited)) -lt "$START_SECONDS" ] && kill -0 "$pid" 2>/dev/null; do
    sleep 0.1
    url="$(sed -n 's/^listening on //p' "$scratch/node.log" | head -1)"
  done
  [ -n "$url" ] || url="$(sed -n 's/^listening on //p' "$scratch/node.log" | head -1)"
  [ -n "$url" ] || { say "FAILED: $bin did not start in $((SECONDS - waited)) s"; cat "$scratch/node.log" >&2; exit 1; }
  say "listening on $url after $((SECONDS - waited)) s"
  tokens=()
  for tenant in default tenant-b; do
    tokens+=("$tenant=$(timeout 60 "${runner[@]}" "$bin" mint-token --kid golden --tenant "$tenant" --ttl 900)")
  done
  started=$SECONDS
  timeout "$NODE_SECONDS" python3 scripts/golden-http.py "$url" "$REWARDER_VECTORS" "$target" "${tokens[@]}" \
    | tail -1 >&2 || { say "FAILED: $bin"; tail -20 "$scratch/node.log" >&2; exit 1; }
  say "golden vectors over HTTP in $((SECONDS - started)) s"
  addr="${url#http://}"
  BIND_ADDR="$addr" timeout 60 "${runner[@]}" "$bin" healthcheck --timeout-ms 5000 \
    || { say "FAILED: healthcheck of a ready node"; exit 1; }
  status=0
  BIND_ADDR="127.0.0.1:$(closed_port)" timeout 60 "${runner[@]}" "$bin" healthcheck --timeout-ms 5000 \
    2>/dev/null || status=$?
  [ "$status" -eq 1 ] || { say "FAILED: healthcheck of a closed port exited $status, not 1"; exit 1; }
  kill -TERM "$pid"
  wait "$pid" || { say "FAILED: $bin exited $? on SIGTERM"; tail -20 "$scratch/node.log" >&2; exit 1; }
  pid=""
  checked=$((checked + 1))
  say "ok $bin: golden vectors served, healthcheck 0 on the node and 1 on a closed port"
done
[ "$checked" -gt 0 ] || { say "FAILED: no binary in $dir (run scripts/release-binaries.sh)"; exit 1; }
say "$checked binaries checked"
