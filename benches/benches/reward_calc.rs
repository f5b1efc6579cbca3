//! Criterion benches of the hot paths at the seed's S/M/L scales (PERFORMANCE.md "core").

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rewarder_benches::{Fixture, keys};
use rewarder_core::{Inputs, Limits, Run, merkle};
use rewarder_micronode::overlap::SideThread;
use rewarder_testkit::Scale;

fn scales() -> Vec<Fixture> {
    [Scale::S, Scale::M, Scale::L].into_iter().map(Fixture::new).collect()
}

fn benches(c: &mut Criterion) {
    let fixtures = scales();

    // Parse + validate + content id from raw bytes in memory: on one thread, and with the
    // content id hashed on a second thread beside the parse, as a node does for a large new
    // upload (`Inputs::parse_overlapped`), on the node's own side thread.
    let side = SideThread::start().expect("the side thread starts");
    let mut g = c.benchmark_group("parse_validate");
    for f in &fixtures {
        g.throughput(Throughput::Bytes(f.inputs_raw.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(f.scale), &f.inputs_raw, |b, raw| {
            b.iter(|| Inputs::parse(black_box(raw), &Limits::UNBOUNDED).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("hash_beside", f.scale), &f.inputs_raw, |b, raw| {
            b.iter(|| Inputs::parse_overlapped(black_box(raw), &Limits::UNBOUNDED, &side).unwrap())
        });
    }
    g.finish();

    // Compute from parsed inputs, with Merkle root, manifest and an Ed25519 signature:
    // everything a run costs after its documents are stored.
    let ed = keys(false);
    let mut g = c.benchmark_group("compute_signed");
    for f in &fixtures {
        g.bench_function(BenchmarkId::from_parameter(f.scale), |b| {
            b.iter(|| {
                let run = Run::compute(black_box(&f.inputs), &f.policy, "default").unwrap();
                ed.sign(run.digest_bytes())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("merkle_root");
    for f in &fixtures {
        let run = Run::compute(&f.inputs, &f.policy, "default").unwrap();
        let leaves = merkle::leaves(run.allocations().map(|a| (a.actor, a.amount)));
        g.throughput(Throughput::Elements(leaves.len() as u64));
        g.bench_function(BenchmarkId::new("tree", f.scale), |b| b.iter(|| merkle::root(black_box(&leaves))));
        g.bench_function(BenchmarkId::new("leaves+tree", f.scale), |b| {
            b.iter(|| merkle::root(&merkle::leaves(run.allocations().map(|a| (a.actor, a.amount)))))
        });
    }
    g.finish();

    // The `allocations` array of a full answer (API.md §1.2): rendered once per fresh run.
    let mut g = c.benchmark_group("render_allocations");
    for f in &fixtures {
        let run = Run::compute(&f.inputs, &f.policy, "default").unwrap();
        g.throughput(Throughput::Elements(run.allocations().len() as u64));
        g.bench_function(BenchmarkId::from_parameter(f.scale), |b| {
            b.iter(|| rewarder_core::result::render_allocations(black_box(&run)))
        });
    }
    g.finish();

    let pq = keys(true);
    let mut g = c.benchmark_group("sign_manifest");
    let run = Run::compute(&fixtures[1].inputs, &fixtures[1].policy, "default").unwrap();
    g.bench_function("manifest_digest", |b| b.iter(|| black_box(run.manifest()).digest_bytes()));
    g.bench_function("ed25519", |b| b.iter(|| ed.sign(black_box(run.digest_bytes()))));
    g.bench_function("ed25519+ml_dsa_65", |b| b.iter(|| pq.sign(black_box(run.digest_bytes()))));
    // ML-DSA signing loops until a candidate passes its bounds, a number of rounds that depends
    // on the digest: one digest alone can be a lucky or an unlucky one. These cycle through 64.
    let digests: Vec<[u8; 32]> = (0u8..64).map(|i| rewarder_core::commit::framed_hash(&[&[i]])).collect();
    let mut next = digests.iter().cycle();
    g.bench_function("ed25519+ml_dsa_65/64_digests", |b| {
        b.iter(|| pq.sign(black_box(next.next().expect("a cycle never ends"))))
    });
    g.finish();
}

criterion_group! {
    name = reward_calc;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(reward_calc);
