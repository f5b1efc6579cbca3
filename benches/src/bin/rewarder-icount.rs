//! `rewarder-icount [parse|compute|handler] S|M|L|ids128`: one operation, for instruction counting
//! under callgrind (the deterministic gate of `scripts/perf-gate.sh`).
//!
//! It generates the documents in memory (the testkit's of a scale, seed 0, or `ids128`, the
//! 128-byte-id shape of adversarial.py: `gate::Doc`) and prepares the operation
//! ([`rewarder_benches::gate::Prepared`]), then calls the operation's measured function
//! exactly once:
//!
//! - `compute` (the default) — `measured_compute`: `Run::compute` + an Ed25519 signature of
//!   the manifest digest, what a run costs once its documents are stored;
//! - `parse` — `measured_parse`: parse + validate + content id of the raw inputs bytes;
//! - `handler` — `measured_handler`: one compute through `Service::handle` (routing, the
//!   stores, the compute, the answer rendered with its allocations).
//!
//! `scripts/perf-gate.sh` runs it as
//!
//! ```text
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_compute*' \
//!     target/release/rewarder-icount compute M
//! ```
//!
//! so only the instructions executed inside that function (and everything it calls) are
//! counted, and the count is the same from run to run (same binary, same inputs, no clock,
//! no randomness, no threads). It prints the document's size, for a per-byte figure.
//!
//! `ICOUNT_EXTRA_ITERS=N` (for demonstrating the gate only) adds N iterations of an opaque
//! loop inside the measured region — a deliberate slowdown that never touches product code.
//! `scripts/perf-gate.sh --demo-slowdown PCT` sets it from the committed baseline.

use std::hint::black_box;

use rewarder_benches::gate::{Doc, Op, Prepared};

/// Deliberate waste for the gate's demonstration: exactly 4 instructions per iteration.
fn waste(extra_iters: u64) {
    let mut acc = 0u64;
    for i in 0..extra_iters {
        acc = black_box(acc.wrapping_add(i));
    }
    black_box(acc);
}

/// The measured region of `compute`.
#[inline(never)]
fn measured_compute(prepared: &Prepared, extra_iters: u64) -> usize {
    // A tag of its own, so that the three regions are never folded into one function.
    black_box(1_u8);
    let out = prepared.run();
    waste(extra_iters);
    out
}

/// The measured region of `parse`.
#[inline(never)]
fn measured_parse(prepared: &Prepared, extra_iters: u64) -> usize {
    // A tag of its own, so that the three regions are never folded into one function.
    black_box(2_u8);
    let out = prepared.run();
    waste(extra_iters);
    out
}

/// The measured region of `handler`.
#[inline(never)]
fn measured_handler(prepared: &Prepared, extra_iters: u64) -> usize {
    // A tag of its own, so that the three regions are never folded into one function.
    black_box(3_u8);
    let out = prepared.run();
    waste(extra_iters);
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (op, doc) = match args.as_slice() {
        [doc] => (Some(Op::Compute), Doc::from_name(doc)),
        [op, doc] => (Op::from_name(op), Doc::from_name(doc)),
        _ => (None, None),
    };
    let (Some(op), Some(doc)) = (op, doc) else {
        eprintln!("usage: rewarder-icount [parse|compute|handler] S|M|L|ids128  (got {args:?})");
        std::process::exit(2);
    };
    let extra_iters = match std::env::var("ICOUNT_EXTRA_ITERS") {
        Ok(v) => v.parse::<u64>().unwrap_or_else(|_| {
            eprintln!("ICOUNT_EXTRA_ITERS must be a non-negative integer, got {v:?}");
            std::process::exit(2);
        }),
        Err(_) => 0,
    };
    let prepared = Prepared::new(op, doc);
    let measured = match op {
        Op::Compute => measured_compute,
        Op::Parse => measured_parse,
        Op::Handler => measured_handler,
    };
    let out = measured(black_box(&prepared), black_box(extra_iters));
    println!("op={} scale={doc} inputs_bytes={} result={out}", op.name(), prepared.inputs_bytes());
}
