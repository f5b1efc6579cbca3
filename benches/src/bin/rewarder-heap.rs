//! `rewarder-heap parse|compute|handler S|M|L|ids128`: the peak heap bytes and the number of heap
//! allocations of one operation (the same operations as `rewarder-icount`), counted by
//! `dhat`'s allocator from just before the operation to just after it. Deterministic: the
//! same binary and inputs make the same requests of the allocator. Prints one JSON line.
//!
//! `HEAP_EXTRA_BYTES=N` and `HEAP_EXTRA_ALLOCS=K` (for demonstrating the gate only) make the
//! measured region hold N more bytes (across the operation) and K more allocations — a deliberate
//! regression that never touches product code. `scripts/perf-gate.sh --demo-slowdown PCT`
//! sets them from the committed baseline.

use std::hint::black_box;

use rewarder_benches::gate::{Doc, Op, Prepared};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn env_number(name: &str) -> usize {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("{name} must be a non-negative integer, got {v:?}");
            std::process::exit(2);
        }),
        Err(_) => 0,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [op, doc] => Op::from_name(op).zip(Doc::from_name(doc)),
        _ => None,
    };
    let Some((op, doc)) = parsed else {
        eprintln!("usage: rewarder-heap parse|compute|handler S|M|L|ids128  (got {args:?})");
        std::process::exit(2);
    };
    let (extra_bytes, extra_allocs) = (env_number("HEAP_EXTRA_BYTES"), env_number("HEAP_EXTRA_ALLOCS"));
    let prepared = Prepared::new(op, doc);
    // Testing mode: nothing is written to disk when the profiler stops.
    let profiler = dhat::Profiler::builder().testing().build();
    // Held across the operation, so that it adds to its peak. The list itself and its first
    // element are two of the extra allocations.
    let mut waste: Vec<Vec<u8>> = Vec::new();
    if extra_bytes > 0 || extra_allocs > 0 {
        waste.reserve_exact(extra_allocs.max(2) - 1);
        waste.push(vec![1u8; extra_bytes.max(1)]);
        waste.extend((2..extra_allocs).map(|_| vec![1u8; 1]));
    }
    black_box(&waste);
    let out = black_box(&prepared).run();
    let stats = dhat::HeapStats::get();
    drop(waste);
    drop(profiler);
    println!(
        "{{\"op\":\"{}\",\"scale\":\"{doc}\",\"peak_bytes\":{},\"allocations\":{},\"result\":{out}}}",
        op.name(),
        stats.max_bytes,
        stats.total_blocks
    );
}
