#!/usr/bin/env bash
# cargo-deny over the workspace (deny.toml): licenses, bans and sources — what .ci/run checks
# here. The advisories need the RustSec database (fetched from GitHub), so they are checked by
# the `advisories` job of .github/workflows/ci.yml only:
#   bash scripts/check-deny.sh                 # licenses bans sources
#   bash scripts/check-deny.sh advisories      # where GitHub is reachable
set -euo pipefail
cd "$(dirname "$0")/.."
cargo deny --version >/dev/null 2>&1 || { echo "check-deny: cargo-deny missing: run scripts/setup.sh" >&2; exit 1; }
[ $# -gt 0 ] || set -- licenses bans sources
cargo deny --locked --log-level warn check "$@"
echo "check-deny: $* ok" >&2
