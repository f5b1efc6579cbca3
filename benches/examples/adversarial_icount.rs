//! One bare compute (`?allocations=false`) of an adversarial shape through core's `Service`,
//! for instruction counting under callgrind: the in-process twin of
//! `testing/performance/adversarial.py`, so that a shape's extra cost over the nominal M
//! document shows per function, deterministically.
//!
//! Usage:
//!
//! ```text
//! cargo build --release -p rewarder-benches --example adversarial_icount
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_compute*' \
//!     target/release/examples/adversarial_icount SHAPE
//! ```
//!
//! SHAPE is `nominal_M` (the testkit's M document, epoch `adv-nominal_M`, seed 0) or
//! `actor_ids_128` (10,000 actors of exactly 128-byte ids, 100,000 events spread over them
//! and 4 kinds, generated as adversarial.py does). The documents are stored beforehand; only
//! the compute request is counted. Prints the shape, the payees and the answer's size.

use std::hint::black_box;

use rewarder_benches::gate::Doc;
use rewarder_benches::service;
use rewarder_core::service::{Request, Service};
use rewarder_testkit::Scale;

fn call(service: &Service, method: &str, url: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let r = service.handle(&Request { method, url, authorization: None, body, corr_id: "adv" });
    (r.status, r.body)
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("a JSON answer")
}

/// The counted region: one compute request, answered.
#[inline(never)]
fn measured_compute(service: &Service, url: &str, body: &[u8]) -> (u16, Vec<u8>) {
    call(service, "POST", black_box(url), black_box(body))
}

fn main() {
    let shape = std::env::args().nth(1).unwrap_or_default();
    let (inputs, policy) = match shape.as_str() {
        "nominal_M" => rewarder_testkit::generate(Scale::M, "adv-nominal_M", 0),
        "actor_ids_128" => Doc::Ids128.documents(),
        _ => {
            eprintln!("usage: adversarial_icount nominal_M|actor_ids_128 (got {shape:?})");
            std::process::exit(2);
        }
    };
    let service = service();
    let (status, stored) = call(&service, "PUT", "/rewarder/inputs", &inputs);
    assert!(status == 201, "inputs: {status} {}", String::from_utf8_lossy(&stored));
    let (status, p) = call(&service, "PUT", "/rewarder/policies", &policy);
    assert!(status == 201, "policy: {status} {}", String::from_utf8_lossy(&p));
    let (i, p) = (json(&stored), json(&p));
    let url = format!("/rewarder/epochs/{}/compute?allocations=false", i["epoch"].as_str().expect("epoch"));
    let body = serde_json::json!({
        "inputs_cid": i["inputs_cid"], "policy_id": p["policy_id"], "policy_hash": p["policy_hash"], "dry_run": true,
    })
    .to_string();
    let (status, answer) = measured_compute(&service, &url, body.as_bytes());
    assert!(status == 200, "compute: {status} {}", String::from_utf8_lossy(&answer));
    println!("shape={shape} payees={} answer_bytes={}", json(&answer)["manifest"]["payees"], answer.len());
}
