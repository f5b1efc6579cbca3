#!/usr/bin/env bash
# The project's test command (README "Test"): every test of every crate, then what only a
# script can check — cargo-deny (licenses, bans, sources), the static release binaries (built
# for x86_64 and aarch64 with the release-ci profile, checked static, stripped and ≤ 8 MiB,
# then serving the golden vectors over HTTP, aarch64 under qemu), the Kotlin bindings on the
# JVM, the Swift package layout, the Android static library and core under qemu-aarch64, the deploy rules (and the dashboard and rules
# against a live Prometheus scraping live nodes), the OpenAPI contract (validated, then
# schemathesis against a live node), a short fuzz pass of every
# target (when nightly and cargo-fuzz are installed; the corpora replay on stable either way),
# and the deterministic performance gates (instructions, peak heap, allocations).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/check-repo.sh
cargo test --workspace --all-targets --locked
bash scripts/check-deny.sh
bash scripts/release-binaries.sh --profile release-ci
bash scripts/check-static-binaries.sh build/release/release-ci
bash testing/spec-check/run.sh
bash scripts/compare-report-check.sh
FFI_PROFILE=debug bash scripts/ffi-kotlin-test.sh
FFI_PROFILE=debug bash scripts/ffi-swift-check.sh
bash scripts/ffi-portability.sh
bash scripts/check-deploy.sh
bash scripts/check-dashboard.sh
bash scripts/check-openapi.sh
FUZZ_SECONDS="${FUZZ_SECONDS:-20}" bash testing/fuzz/ci.sh
bash scripts/perf-gate.sh
