//! The FFI surface from Rust, as the bindings see it: every shared golden vector and invalid
//! case, and `verify_result` on real answers of an embedded node over HTTP.

use std::path::Path;
use std::time::Duration;

use rewarder_ffi::{
    Allocation, EmbeddedConfig, EmbeddedNode, Manifest, ProofStep, RewarderError, compute, compute_json,
    content_id, manifest_digest, verify_allocation, verify_result, verify_signature,
};
use rewarder_testkit::golden::{cases, vectors};
use serde_json::Value;

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

fn expected(dir: &Path) -> Value {
    serde_json::from_slice(&read(dir, "expected.json")).unwrap()
}

fn manifest_of(v: &Value) -> Manifest {
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    Manifest {
        schema: s("schema"),
        tenant: s("tenant"),
        epoch: s("epoch"),
        run_id: s("run_id"),
        inputs_cid: s("inputs_cid"),
        policy_id: s("policy_id"),
        policy_hash: s("policy_hash"),
        pool_minor: s("pool_minor"),
        distributable_minor: s("distributable_minor"),
        payout_total_minor: s("payout_total_minor"),
        residual_minor: s("residual_minor"),
        payees: v["payees"].as_u64().unwrap(),
        allocations_root: s("allocations_root"),
    }
}

fn allocation_of(v: &Value) -> Allocation {
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    Allocation { actor: s("actor"), amount_minor: s("amount_minor"), score: s("score") }
}

fn steps_of(v: &Value) -> Vec<ProofStep> {
    let s = |x: &Value, k: &str| x[k].as_str().unwrap().to_owned();
    v.as_array().unwrap().iter().map(|x| ProofStep { side: s(x, "side"), hash: s(x, "hash") }).collect()
}

fn code_of(e: RewarderError) -> String {
    match e {
        RewarderError::Invalid { code, .. } => code,
        other => panic!("expected Invalid, got {other}"),
    }
}

#[test]
fn golden_vectors_come_out_of_the_surface_unchanged() {
    for dir in cases() {
        let want = expected(&dir);
        let (inputs, policy) = (read(&dir, "inputs.json"), read(&dir, "policy.json"));
        for tenant in ["default", "tenant-b"] {
            let out = compute(&inputs, &policy, tenant.into()).unwrap();
            assert_eq!(out.manifest, manifest_of(&want[tenant]["manifest"]), "{} / {tenant}", dir.display());
            // The JSON form says the same: manifest as on the wire, digest, allocations.
            let text = compute_json(&inputs, &policy, tenant.into()).unwrap();
            let bytes = text.as_bytes();
            let (digest_at, list_at) =
                (text.find(r#","manifest_digest":"#), text.find(r#","allocations":["#));
            assert!(text.starts_with(r#"{"manifest":{"schema":"#) && text.ends_with("]}"), "{text}");
            assert!(digest_at.is_some() && digest_at < list_at, "{text}");
            let json: Value = serde_json::from_slice(bytes).unwrap();
            assert_eq!(json.as_object().unwrap().len(), 3, "{text}");
            assert_eq!(json["manifest"], want[tenant]["manifest"], "{} / {tenant}", dir.display());
            assert_eq!(json["manifest_digest"].as_str(), Some(out.manifest_digest.as_str()));
            let listed: Vec<Allocation> =
                json["allocations"].as_array().unwrap().iter().map(allocation_of).collect();
            assert_eq!(listed, out.allocations);
            assert_eq!(out.manifest_digest, want[tenant]["manifest_digest"].as_str().unwrap());
            assert_eq!(manifest_digest(out.manifest.clone()), out.manifest_digest);
            if tenant == "default" {
                let allocations: Vec<Allocation> =
                    want["allocations"].as_array().unwrap().iter().map(allocation_of).collect();
                assert_eq!(out.allocations, allocations, "{}", dir.display());
                assert_eq!(content_id(&inputs), out.manifest.inputs_cid);
                assert_eq!(content_id(&policy), out.manifest.policy_hash);
            }
        }
        if let Some(example) = want.get("proof_example") {
            let tenant = example["tenant"].as_str().unwrap();
            let root = want[tenant]["manifest"]["allocations_root"].as_str().unwrap().to_owned();
            let actor = example["actor"].as_str().unwrap().to_owned();
            let amount = example["amount_minor"].as_str().unwrap().to_owned();
            let steps = steps_of(&example["proof"]);
            assert!(verify_allocation(root.clone(), actor.clone(), amount.clone(), steps.clone()));
            let more = (amount.parse::<u64>().unwrap() + 1).to_string();
            assert!(!verify_allocation(root, actor, more, steps));
        }
    }
}

#[test]
fn every_invalid_case_is_invalid_with_its_code() {
    let cases: Value =
        serde_json::from_slice(&std::fs::read(vectors().join("invalid.json")).unwrap()).unwrap();
    let basic = vectors().join("basic");
    for case in cases.as_array().unwrap() {
        let raw = case["raw"].as_str().unwrap().as_bytes().to_vec();
        let (inputs, policy) = match case["doc"].as_str().unwrap() {
            "inputs" => (raw, read(&basic, "policy.json")),
            _ => (read(&basic, "inputs.json"), raw),
        };
        let e = compute(&inputs, &policy, "default".into()).unwrap_err();
        assert_eq!(code_of(e), case["code"].as_str().unwrap(), "{case}");
        let e = compute_json(&inputs, &policy, "default".into()).unwrap_err();
        assert_eq!(code_of(e), case["code"].as_str().unwrap(), "{case}");
    }
}

/// Uploads `basic` to a node and computes it; the raw result body.
fn compute_over_http(base: &str, query: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let send = |method: &str, path: &str, body: &[u8]| -> Value {
        let url = format!("{base}{path}");
        let rb = if method == "PUT" { agent.put(&url) } else { agent.post(&url) };
        let mut r = rb.header("Content-Type", "application/json").send(body).unwrap();
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    };
    let basic = vectors().join("basic");
    let inputs = send("PUT", "/rewarder/inputs", &read(&basic, "inputs.json"));
    let policy = send("PUT", "/rewarder/policies", &read(&basic, "policy.json"));
    let request = serde_json::json!({
        "inputs_cid": inputs["inputs_cid"], "policy_id": policy["policy_id"], "policy_hash": policy["policy_hash"],
    });
    let path = format!("/rewarder/epochs/{}/compute{query}", inputs["epoch"].as_str().unwrap());
    send("POST", &path, request.to_string().as_bytes()).to_string()
}

fn flags(body: &str) -> [bool; 4] {
    let v = verify_result(body.to_owned()).unwrap();
    [v.digest_ok, v.signatures_ok, v.allocations_ok, v.pq_signed]
}

#[test]
fn verify_result_on_real_answers_and_tampered_ones() {
    let config = EmbeddedConfig { port: 0, require_pq: true, auth_keys: None };
    let node = EmbeddedNode::new(config).unwrap();
    let body = compute_over_http(&node.base_url(), "");
    assert_eq!(flags(&body), [true, true, true, true]);
    let mut v: Value = serde_json::from_str(&body).unwrap();
    let verification = verify_result(body.clone()).unwrap();
    assert_eq!(verification.manifest_digest, v["manifest_digest"].as_str().unwrap());
    let digest = verification.manifest_digest.clone();
    for algorithm in ["ed25519", "ml_dsa_65"] {
        let sig = &v["signatures"][algorithm];
        let (key, signature) = (sig["public_key"].as_str().unwrap(), sig["signature"].as_str().unwrap());
        assert!(verify_signature(digest.clone(), algorithm.into(), key.into(), signature.into()));
        assert!(!verify_signature(
            digest.replace("b3:", "b3:f"),
            algorithm.into(),
            key.into(),
            signature.into()
        ));
    }

    let flip = |s: &str| -> String {
        let mut chars: Vec<char> = s.chars().collect();
        chars[10] = if chars[10] == '0' { '1' } else { '0' };
        chars.into_iter().collect()
    };
    let original = v.clone();
    v["manifest_digest"] = flip(v["manifest_digest"].as_str().unwrap()).into();
    assert_eq!(flags(&v.to_string()), [false, true, true, true]);
    for algorithm in ["ed25519", "ml_dsa_65"] {
        let mut v = original.clone();
        v["signatures"][algorithm]["signature"] =
            flip(v["signatures"][algorithm]["signature"].as_str().unwrap()).into();
        assert_eq!(flags(&v.to_string()), [true, false, true, true], "{algorithm}");
    }
    let mut v = original.clone();
    v["allocations"][0]["amount_minor"] = "1".into();
    assert_eq!(flags(&v.to_string()), [true, true, false, true]);
    let mut v = original.clone();
    v["signatures"]["ed25519"]["signature"] = "zz".into();
    assert_eq!(code_of(verify_result(v.to_string()).unwrap_err()), "bad_request");
    let mut v = original;
    v["allocations"][0]["amount_minor"] = "01".into();
    assert_eq!(code_of(verify_result(v.to_string()).unwrap_err()), "invalid_amount");

    let without = compute_over_http(&node.base_url(), "?allocations=false");
    assert_eq!(flags(&without), [true, true, true, true]);
    assert_eq!(code_of(verify_result("{".into()).unwrap_err()), "malformed_json");
    assert_eq!(code_of(verify_result("{}".into()).unwrap_err()), "schema");
    node.stop();
    node.stop();
}

#[test]
fn embedded_node_options_are_checked() {
    let bad = EmbeddedConfig { port: 0, require_pq: false, auth_keys: Some("k1:00".into()) };
    assert_eq!(code_of(EmbeddedNode::new(bad).err().unwrap()), "bad_request");
    let node = EmbeddedNode::new(EmbeddedConfig { port: 0, require_pq: false, auth_keys: None }).unwrap();
    let taken = EmbeddedConfig { port: node.port(), require_pq: false, auth_keys: None };
    assert!(matches!(EmbeddedNode::new(taken).err().unwrap(), RewarderError::Io { .. }));
    assert_eq!(node.base_url(), format!("http://127.0.0.1:{}", node.port()));
}
