//! Every golden case of `testing/vectors` reproduced bit for bit through the public API.

use std::path::Path;
use std::sync::Arc;

use rewarder_core::{Inputs, Limits, Manifest, Policy, Run, commit, merkle};
use serde_json::Value;

use rewarder_gen::golden;

use golden::{cases, vectors};

fn load(dir: &Path) -> (Arc<Inputs>, Policy, Value) {
    let inputs = Inputs::parse(&std::fs::read(dir.join("inputs.json")).unwrap(), &Limits::UNBOUNDED).unwrap();
    let policy = Policy::parse(&std::fs::read(dir.join("policy.json")).unwrap()).unwrap();
    let expected = serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    (Arc::new(inputs), policy, expected)
}

const MANIFEST_ORDER: [&str; 13] = [
    "schema",
    "tenant",
    "epoch",
    "run_id",
    "inputs_cid",
    "policy_id",
    "policy_hash",
    "pool_minor",
    "distributable_minor",
    "payout_total_minor",
    "residual_minor",
    "payees",
    "allocations_root",
];

#[test]
fn manifests_and_digests_match_for_both_tenants() {
    for dir in cases() {
        let (inputs, policy, expected) = load(&dir);
        for tenant in ["default", "tenant-b"] {
            let run = Run::compute(&inputs, &policy, tenant).unwrap();
            let want: Manifest = serde_json::from_value(expected[tenant]["manifest"].clone()).unwrap();
            assert_eq!(run.manifest(), &want, "{} / {tenant}", dir.display());
            assert_eq!(run.manifest_digest(), expected[tenant]["manifest_digest"], "{}", dir.display());
        }
    }
}

#[test]
fn manifest_serializes_fields_in_spec_order() {
    let (inputs, policy, _) = load(&vectors().join("basic"));
    let run = Run::compute(&inputs, &policy, "default").unwrap();
    let text = serde_json::to_string(run.manifest()).unwrap();
    let positions: Vec<usize> =
        MANIFEST_ORDER.iter().map(|f| text.find(&format!("\"{f}\":")).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
}

#[test]
fn allocations_match() {
    for dir in cases() {
        let (inputs, policy, expected) = load(&dir);
        let run = Run::compute(&inputs, &policy, "default").unwrap();
        let got: Vec<Value> = run
            .allocations()
            .map(|a| {
                serde_json::json!({"actor": a.actor, "amount_minor": a.amount.to_string(), "score": a.score.to_string()})
            })
            .collect();
        assert_eq!(Value::Array(got), expected["allocations"], "{}", dir.display());
    }
}

#[test]
fn intent_keys_match() {
    for dir in cases() {
        let (inputs, _, expected) = load(&dir);
        for (actor, key) in expected["intent_keys"].as_object().unwrap() {
            assert_eq!(&commit::intent_key("default", inputs.epoch(), actor), key, "{}", dir.display());
        }
    }
}

#[test]
fn proof_examples_match_and_verify() {
    let mut seen = 0;
    for dir in cases() {
        let (inputs, policy, expected) = load(&dir);
        let Some(example) = expected.get("proof_example") else { continue };
        seen += 1;
        let run = Run::compute(&inputs, &policy, example["tenant"].as_str().unwrap()).unwrap();
        let actor = example["actor"].as_str().unwrap();
        let proof = run.proof(actor).unwrap();
        assert_eq!(proof.index as u64, example["index"].as_u64().unwrap());
        assert_eq!(proof.amount.to_string(), example["amount_minor"].as_str().unwrap());
        let steps: Vec<Value> = proof
            .steps
            .iter()
            .map(|s| serde_json::json!({"side": s.side(), "hash": hex::encode(s.hash)}))
            .collect();
        assert_eq!(Value::Array(steps), example["proof"], "{}", dir.display());
        let root_hex = run.manifest().allocations_root.strip_prefix("b3:").unwrap();
        let mut root = [0u8; 32];
        hex::decode_to_slice(root_hex, &mut root).unwrap();
        assert!(merkle::verify(&root, actor, proof.amount, &proof.steps));
    }
    assert!(seen >= 10, "only {seen} proof examples found");
}
