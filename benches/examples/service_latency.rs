//! The in-process latency of a compute through core's `Service` — the same request the HTTP
//! harness sends (`testing/performance/transport.py latency`), without a socket, on a Service
//! with the micronode's side thread as the node has — so the transport's own cost is the
//! difference of the two p95s.
//!
//! Usage: `cargo run --release -p rewarder-benches --example service_latency -- SCALE RUNS`
//! (SCALE is S, M or L). Prints one JSON line ([`rewarder_benches::latency_json`]). Each
//! request is a distinct run (its own policy id) with full allocations, a dry run, exactly as
//! the HTTP harness asks.

use std::sync::Arc;
use std::time::Instant;

use rewarder_benches::{Fixture, service};
use rewarder_core::service::{Request, Service};
use rewarder_micronode::overlap::SideThread;
use rewarder_testkit::Scale;

fn call(service: &Service, method: &str, url: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let r = service.handle(&Request { method, url, authorization: None, body, corr_id: "bench" });
    (r.status, r.body)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scale = match args.next().as_deref() {
        Some("S") => Scale::S,
        Some("L") => Scale::L,
        _ => Scale::M,
    };
    let runs: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
    let fixture = Fixture::new(scale);
    // The node's second thread too (leaves in two halves, a PQ signature beside the answer):
    // the same Service the node runs, so that the difference of the p95s is the transport's.
    let side = SideThread::start().expect("the side thread starts");
    let service = service().with_overlap(Arc::new(side));
    let (status, body) = call(&service, "PUT", "/rewarder/inputs", &fixture.inputs_raw);
    assert!(status == 201, "inputs: {status} {}", String::from_utf8_lossy(&body));
    let cid = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["inputs_cid"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut policy: serde_json::Value = serde_json::from_slice(&fixture.policy_raw).unwrap();
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs + runs / 10 {
        policy["policy_id"] = format!("lat-{i}").into();
        let (status, body) = call(&service, "PUT", "/rewarder/policies", policy.to_string().as_bytes());
        assert!(status == 201, "policy: {status}");
        let p: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let request = serde_json::json!({
            "inputs_cid": cid, "policy_id": p["policy_id"], "policy_hash": p["policy_hash"], "dry_run": true,
        })
        .to_string();
        let started = Instant::now();
        let (status, answer) = call(&service, "POST", "/rewarder/epochs/demo/compute", request.as_bytes());
        let took = started.elapsed();
        assert!(status == 200, "compute: {status} {}", String::from_utf8_lossy(&answer));
        // The first tenth warms caches and the allocator, as the HTTP harness's warm-up does.
        if i >= runs / 10 {
            times.push(took.as_secs_f64() * 1e3);
        }
    }
    println!("{}", rewarder_benches::latency_json(&times));
}
