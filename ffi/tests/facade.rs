//! The FFI surface from Rust, as the bindings see it: every shared golden vector and invalid
//! case, and `verify_result` on real answers of an embedded node over HTTP.

use std::path::Path;
use std::time::Duration;

use rewarder_ffi::{
    Allocation, EmbeddedConfig, EmbeddedNode, Manifest, ProofStep, RewarderError, Trust, compare, compute,
    compute_json, content_id, manifest_digest, verify_allocation, verify_result, verify_signature,
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

/// Uploads `basic` to a node (with its token) and computes it; the raw result body.
fn compute_over_http(node: &EmbeddedNode, query: &str) -> String {
    let base = node.base_url();
    let authorization = format!("Bearer {}", node.token().expect("a node private to its app has a token"));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let send = |method: &str, path: &str, body: &[u8]| -> Value {
        let url = format!("{base}{path}");
        let rb = if method == "PUT" { agent.put(&url) } else { agent.post(&url) };
        let rb = rb.header("Content-Type", "application/json").header("Authorization", &authorization);
        let mut r = rb.send(body).unwrap();
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

/// The integrity flags of a body, trusting the keys it carries.
fn flags(body: &str) -> [bool; 4] {
    let v = verify_result(body.to_owned(), Trust::EmbeddedKeys, None, None).unwrap();
    [v.digest_ok, v.signatures_ok, v.allocations_ok, v.pq_signed]
}

#[test]
fn verify_result_on_real_answers_and_tampered_ones() {
    let config = EmbeddedConfig { port: 0, require_pq: true, auth_keys: None, open: false };
    let node = EmbeddedNode::new(config).unwrap();
    // The embedded node opens exactly one listener in the host process: its own port.
    let listeners = rewarder_testkit::node::listening_sockets(std::process::id());
    let port = node.port();
    assert_eq!(listeners.iter().filter(|a| a.port() == port).count(), 1, "{listeners:?}");
    let body = compute_over_http(&node, "");
    assert_eq!(flags(&body), [true, true, true, true]);
    let mut v: Value = serde_json::from_str(&body).unwrap();
    let keys: Vec<String> = ["ed25519", "ml_dsa_65"]
        .iter()
        .map(|a| v["signatures"][a]["public_key"].as_str().unwrap().to_owned())
        .collect();
    let verification =
        verify_result(body.clone(), Trust::Keys { public_keys: keys.clone() }, None, None).unwrap();
    assert!(verification.ok && verification.keys_trusted, "{}", verification.report_json);
    assert_eq!(verification.manifest_digest, v["manifest_digest"].as_str().unwrap());
    // Only the Ed25519 key trusted: the ML-DSA-65 signature's key is named as untrusted.
    let half =
        verify_result(body.clone(), Trust::Keys { public_keys: keys[..1].to_vec() }, None, None).unwrap();
    assert!(!half.ok && !half.keys_trusted && half.signatures_ok);
    assert_eq!(half.untrusted_key_ids, [v["signatures"]["ml_dsa_65"]["key_id"].as_str().unwrap()]);
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
    assert_eq!(flags(&v.to_string()), [true, false, true, true]);
    let mut v = original;
    v["allocations"][0]["amount_minor"] = "01".into();
    assert_eq!(flags(&v.to_string()), [true, true, false, true]);

    let without = compute_over_http(&node, "?allocations=false");
    assert_eq!(flags(&without), [true, true, true, true]);
    assert_eq!(
        code_of(verify_result("{".into(), Trust::EmbeddedKeys, None, None).unwrap_err()),
        "malformed_json"
    );
    assert_eq!(code_of(verify_result("{}".into(), Trust::EmbeddedKeys, None, None).unwrap_err()), "schema");
    node.stop();
    node.stop();
}

#[test]
fn embedded_node_options_are_checked() {
    let bad = EmbeddedConfig { port: 0, require_pq: false, auth_keys: Some("k1:00".into()), open: false };
    assert_eq!(code_of(EmbeddedNode::new(bad).err().unwrap()), "bad_request");
    let node = EmbeddedNode::new(EmbeddedConfig { port: 0, require_pq: false, auth_keys: None, open: false })
        .unwrap();
    let taken = EmbeddedConfig { port: node.port(), require_pq: false, auth_keys: None, open: false };
    assert!(matches!(EmbeddedNode::new(taken).err().unwrap(), RewarderError::Io { .. }));
    assert_eq!(node.base_url(), format!("http://127.0.0.1:{}", node.port()));
}

/// Loopback is shared by every app of a device: by default the embedded node answers only the
/// app holding the token it made at start. Another process (curl here) without it gets 401;
/// `open` is the explicit way to serve everyone, and an app's own `auth_keys` mean no token.
#[test]
fn the_embedded_node_is_private_to_its_app() {
    let node = EmbeddedNode::new(EmbeddedConfig { port: 0, require_pq: false, auth_keys: None, open: false })
        .unwrap();
    let curl = |url: &str, token: Option<&str>| -> String {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"]);
        if let Some(token) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        String::from_utf8(cmd.arg(url).output().unwrap().stdout).unwrap()
    };
    let epoch = format!("{}/rewarder/epochs/e1", node.base_url());
    assert_eq!(curl(&epoch, None), "401", "another process without the token");
    assert_eq!(curl(&epoch, Some("forged")), "401");
    assert_eq!(curl(&epoch, node.token().as_deref()), "404", "the app's token opens it (no such epoch yet)");
    assert_eq!(curl(&format!("{}/readyz", node.base_url()), None), "200", "probes stay open");
    assert!(!compute_over_http(&node, "").is_empty());
    let open = EmbeddedNode::new(EmbeddedConfig { port: 0, require_pq: false, auth_keys: None, open: true })
        .unwrap();
    assert_eq!(open.token(), None);
    assert_eq!(curl(&format!("{}/rewarder/epochs/e1", open.base_url()), None), "404", "open serves anyone");
    let key = "k1:".to_owned() + &"cd".repeat(32);
    let own =
        EmbeddedNode::new(EmbeddedConfig { port: 0, require_pq: false, auth_keys: Some(key), open: false })
            .unwrap();
    assert_eq!(own.token(), None, "the app mints its own tokens");
    assert_eq!(curl(&format!("{}/rewarder/epochs/e1", own.base_url()), None), "401");
}

#[test]
fn compare_gives_the_golden_comparison_and_a_participants_row() {
    let dir = vectors().join("waterfill");
    let golden = vectors().join("../compare/waterfill");
    let want = expected(&golden);
    let (inputs, a, b) =
        (read(&dir, "inputs.json"), read(&dir, "policy.json"), read(&golden, "policy-b.json"));
    let out = compare(&inputs, &a, &b, "default".into(), 100, Some("s1".into())).unwrap();
    assert_eq!(out.population, 5);
    for (side, key, policy) in [(&out.a, "a", &a), (&out.b, "b", &b)] {
        assert_eq!(side.manifest, manifest_of(&want[key]["manifest"]));
        assert_eq!(side.manifest_digest, want[key]["manifest_digest"]);
        let plain = compute(&inputs, policy, "default".into()).unwrap();
        assert_eq!((&side.manifest, &side.manifest_digest), (&plain.manifest, &plain.manifest_digest));
        let s = &want[key]["summary"];
        assert_eq!(side.summary.gini, s["gini"]);
        assert_eq!(side.summary.top1_share, s["top1_share"]);
        assert_eq!(side.summary.top10_share, s["top10_share"]);
        assert_eq!(
            (side.summary.capped, side.summary.dust),
            (s["capped"].as_u64().unwrap(), s["dust"].as_u64().unwrap())
        );
    }
    let movers: Vec<(String, String)> =
        out.movers.iter().map(|m| (m.actor.clone(), m.delta_minor.clone())).collect();
    let want_movers: Vec<(String, String)> = want["movers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["actor"].as_str().unwrap().to_owned(), m["delta_minor"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(movers, want_movers);
    let s1 = out.actor.unwrap();
    assert_eq!(
        (s1.amount_a_minor.as_str(), s1.amount_b_minor.as_str(), s1.dust_a, s1.dust_b),
        ("0", "39", true, false)
    );

    let same = compare(&inputs, &a, &a, "default".into(), 100, Some("nobody".into())).unwrap();
    assert!(same.movers.is_empty() && same.actor.is_none());
    assert_eq!(same.a, same.b);
    let e = compare(&inputs, &a, b"{}", "default".into(), 100, None).unwrap_err();
    assert_eq!(code_of(e), "schema");
}
