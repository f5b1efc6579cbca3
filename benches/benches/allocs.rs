//! Heap allocations per operation at S/M/L, counted by a wrapping global allocator.
//! Prints a table; fails if computing allocates per event rather than per actor.

use std::alloc::System;

use rewarder_benches::{Fixture, keys};
use rewarder_core::{Inputs, Limits, Run};
use rewarder_testkit::Scale;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn count<T>(f: impl FnOnce() -> T) -> (usize, usize) {
    let region = Region::new(GLOBAL);
    let out = f();
    let stats = region.change();
    drop(out);
    (stats.allocations + stats.reallocations, stats.bytes_allocated)
}

fn main() {
    let ed = keys(false);
    println!(
        "{:<6} {:>8} {:>8} {:>14} {:>14} {:>16}",
        "scale", "actors", "events", "parse allocs", "compute allocs", "compute bytes"
    );
    for scale in [Scale::S, Scale::M, Scale::L] {
        let f = Fixture::new(scale);
        let (parse_allocs, _) = count(|| Inputs::parse(&f.inputs_raw, &Limits::UNBOUNDED).unwrap());
        let (compute_allocs, compute_bytes) = count(|| {
            let run = Run::compute(&f.inputs, &f.policy, "default").unwrap();
            ed.sign(run.digest_bytes());
            run
        });
        println!(
            "{:<6} {:>8} {:>8} {:>14} {:>14} {:>16}",
            scale.to_string(),
            f.inputs.actor_count(),
            f.inputs.event_count(),
            parse_allocs,
            compute_allocs,
            compute_bytes
        );
        // Allocation counts must not grow with events: O(1) here, by construction.
        assert!(compute_allocs < 200, "compute allocates {compute_allocs} times at {scale}");
        assert!(
            parse_allocs < 200 + f.inputs.event_count() / 1000,
            "parse allocates {parse_allocs} times at {scale}"
        );
    }
}
