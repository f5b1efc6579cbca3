#!/usr/bin/env bash
# The project's test command (README "Test"): every test of every crate.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --all-targets --locked
