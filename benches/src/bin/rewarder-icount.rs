//! `rewarder-icount S|M|L`: one signed compute, for instruction counting under callgrind.
//!
//! It generates the scale's documents in memory (testkit, seed 0), parses them, then calls
//! [`measured_compute`] exactly once: `Run::compute` + an Ed25519 signature of the manifest
//! digest — what a run costs once its documents are stored. `scripts/perf-gate.sh` runs it as
//!
//! ```text
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_compute*' \
//!     target/icount/rewarder-icount M
//! ```
//!
//! so only the instructions executed inside that function (and everything it calls) are
//! counted: generation and parsing are outside the measured region, and the count is the same
//! from run to run (same binary, same inputs, no clock, no randomness, no threads).
//!
//! `ICOUNT_EXTRA_ITERS=N` (for demonstrating the gate only) adds N iterations of an opaque
//! loop inside the measured region — a deliberate slowdown that never touches product code.
//! `scripts/perf-gate.sh --demo-slowdown PCT` sets it from the committed baseline.

use std::hint::black_box;
use std::sync::Arc;

use rewarder_core::{Inputs, Limits, Policy, Run, Signatures, SigningKeys};
use rewarder_testkit::Scale;

/// The measured region: one compute and its Ed25519 signature, plus `extra_iters` of
/// deliberate waste (0 outside the gate's demonstration).
#[inline(never)]
fn measured_compute(
    inputs: &Arc<Inputs>,
    policy: &Policy,
    keys: &SigningKeys,
    extra_iters: u64,
) -> Signatures {
    let run = Run::compute(inputs, policy, "default").expect("testkit documents compute");
    let signatures = keys.sign(run.digest_bytes());
    let mut acc = 0u64;
    for i in 0..extra_iters {
        acc = black_box(acc.wrapping_add(i));
    }
    black_box(acc);
    black_box(run);
    signatures
}

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    let Ok(scale) = arg.parse::<Scale>() else {
        eprintln!("usage: rewarder-icount S|M|L  (got {arg:?})");
        std::process::exit(2);
    };
    let extra_iters = match std::env::var("ICOUNT_EXTRA_ITERS") {
        Ok(v) => v.parse::<u64>().unwrap_or_else(|_| {
            eprintln!("ICOUNT_EXTRA_ITERS must be a non-negative integer, got {v:?}");
            std::process::exit(2);
        }),
        Err(_) => 0,
    };
    let (inputs_raw, policy_raw) = rewarder_testkit::generate(scale, "demo", rewarder_benches::SEED);
    let inputs = Arc::new(Inputs::parse(&inputs_raw, &Limits::UNBOUNDED).expect("testkit inputs parse"));
    let policy = Policy::parse(&policy_raw).expect("testkit policy parses");
    let keys = rewarder_benches::keys(false);
    let signatures = measured_compute(black_box(&inputs), black_box(&policy), &keys, black_box(extra_iters));
    println!(
        "scale={scale} actors={} events={} ed25519={}…",
        inputs.actor_count(),
        inputs.event_count(),
        &signatures.ed25519.signature[..16]
    );
}
