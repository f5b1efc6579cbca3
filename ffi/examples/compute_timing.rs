//! The in-process Rust side of the FFI overhead measurement (scripts/ffi-bench.sh): times
//! `compute` and `compute_json` on an epoch's documents called from Rust (no foreign
//! boundary), and the core alone (parse, compute, commit) for reference; each pair
//! interleaved. The last `rust_core_compute` line printed is the one the script reads. The Kotlin side is
//! android/src/bench/kotlin/rewarder/android/ComputeTiming.kt, with the same method.
//!
//! `cargo run --release -p rewarder-ffi --example compute_timing -- DIR [ITERATIONS]`
//! where DIR holds inputs.json and policy.json (`rewarder-testkit vectors --scale M --out DIR`).
//! Prints one line per measurement: `NAME median_ms=… min_ms=… iterations=…`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rewarder_core::{Inputs, Limits, Policy, Run};

/// Fewest warm-up rounds before timing (caches, allocator, CPU frequency).
const WARMUP_ROUNDS_MIN: usize = 20;

/// Median and minimum of `samples`, in milliseconds.
fn summary(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples[0])
}

fn elapsed_ms(f: &mut impl FnMut()) -> f64 {
    let started = Instant::now();
    f();
    started.elapsed().as_secs_f64() * 1e3
}

/// Times `a` and `b` interleaved (alternating which goes first), so that load from other
/// processes and frequency changes weigh on both alike.
fn time_pair(names: [&str; 2], iterations: usize, mut a: impl FnMut(), mut b: impl FnMut()) {
    for _ in 0..WARMUP_ROUNDS_MIN {
        a();
        b();
    }
    let (mut sa, mut sb) = (Vec::with_capacity(iterations), Vec::with_capacity(iterations));
    for i in 0..iterations {
        if i % 2 == 0 {
            sa.push(elapsed_ms(&mut a));
            sb.push(elapsed_ms(&mut b));
        } else {
            sb.push(elapsed_ms(&mut b));
            sa.push(elapsed_ms(&mut a));
        }
    }
    for (name, samples) in names.into_iter().zip([&mut sa, &mut sb]) {
        let (median, min) = summary(samples);
        println!("{name} median_ms={median:.3} min_ms={min:.3} iterations={iterations}");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: compute_timing DIR [ITERATIONS]")?);
    let iterations: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(30).max(1);
    let inputs = std::fs::read(dir.join("inputs.json"))?;
    let policy = std::fs::read(dir.join("policy.json"))?;

    time_pair(
        ["rust_ffi_compute_json", "rust_core_compute"],
        iterations,
        || {
            black_box(rewarder_ffi::compute_json(&inputs, &policy, "default".into()).unwrap());
        },
        || {
            let parsed = Arc::new(Inputs::parse(&inputs, &Limits::UNBOUNDED).unwrap());
            let policy = Policy::parse(&policy).unwrap();
            black_box(Run::compute(&parsed, &policy, "default").unwrap());
        },
    );
    time_pair(
        ["rust_ffi_compute", "rust_core_compute"],
        iterations,
        || {
            black_box(rewarder_ffi::compute(&inputs, &policy, "default".into()).unwrap());
        },
        || {
            let parsed = Arc::new(Inputs::parse(&inputs, &Limits::UNBOUNDED).unwrap());
            let policy = Policy::parse(&policy).unwrap();
            black_box(Run::compute(&parsed, &policy, "default").unwrap());
        },
    );
    Ok(())
}
