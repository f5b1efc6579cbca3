//! `rewarder-micronode verify` (the real binary) on genuine, tampered, re-signed and garbage
//! results, and `GET /rewarder/keys` over HTTP: a result fetched from a node verifies against
//! the keys the node lists, across a restart with the same `SIGNING_KEY_FILE`, and a retired key
//! stays listed.

mod support;

use std::process::Output;

use rewarder_core::{SigningKeys, commit, merkle};
use rewarder_micronode::offline;
use serde_json::Value;
use support::{Node, Scratch, compute_over_http, read_vector, run_cli};

/// The node's Ed25519 seed in these tests, and its RFC 8032 public key.
const SEED_HEX: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const PUBLIC_KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

/// The `basic` vector's result, signed by [`SEED`] (and an ML-DSA-65 key with `pq`).
fn genuine(pq: bool) -> Value {
    let seed: [u8; 32] = hex::decode(SEED_HEX).unwrap().try_into().unwrap();
    let keys = SigningKeys::from_seeds(&seed, pq.then_some(&[5; 32]));
    let body = offline::compute(
        &read_vector("basic", "inputs.json"),
        &read_vector("basic", "policy.json"),
        "default",
        &keys,
    )
    .unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// Files of one `verify` run.
struct Files {
    dir: Scratch,
}

impl Files {
    fn new() -> Files {
        Files { dir: Scratch::new("verify") }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

/// Runs `verify --result <result> ARGS`; `{inputs}` / `{policy}` in ARGS name the documents of
/// the `basic` vector (or of `documents`).
fn verify_with(result: &[u8], args: &[&str], documents: &str) -> Output {
    let files = Files::new();
    let result = files.write("result.json", result);
    let inputs = files.write("inputs.json", &read_vector(documents, "inputs.json"));
    let policy = files.write("policy.json", &read_vector(documents, "policy.json"));
    let mut all = vec!["verify", "--result", result.as_str()];
    all.extend(args.iter().map(|a| match *a {
        "{inputs}" => inputs.as_str(),
        "{policy}" => policy.as_str(),
        other => other,
    }));
    run_cli(&all, &[])
}

fn verify(result: &Value, args: &[&str]) -> Output {
    verify_with(result.to_string().as_bytes(), args, "basic")
}

/// The exit code and the report printed on stdout.
fn report(out: &Output) -> (Option<i32>, Value) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not a JSON report ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

/// The names of the checks that failed.
fn failed(report: &Value) -> Vec<String> {
    let checks = report["checks"].as_array().expect("checks");
    checks.iter().filter(|c| c["status"] == "fail").map(|c| c["check"].as_str().unwrap().to_owned()).collect()
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    let checks = report["checks"].as_array().expect("checks");
    checks.iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("no {name} check in {report}"))
}

/// Asserts exit 1 and exactly `expected` failed.
fn fails_with(out: &Output, expected: &[&str]) -> Value {
    let (code, report) = report(out);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["ok"], false);
    assert_eq!(failed(&report), expected, "{report}");
    report
}

fn passes(out: &Output) -> Value {
    let (code, report) = report(out);
    assert_eq!(code, Some(0), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(report["ok"], true);
    assert!(failed(&report).is_empty());
    report
}

/// The Ed25519 key id: the first 16 hex digits of BLAKE3 of the key bytes.
fn key_id(public_key_hex: &str) -> String {
    hex::encode(&blake3_hash(&hex::decode(public_key_hex).unwrap())[..8])
}

fn blake3_hash(bytes: &[u8]) -> [u8; 32] {
    // content_id is "b3:" + hex(BLAKE3(bytes)).
    let id = commit::content_id(bytes);
    hex::decode(&id[3..]).unwrap().try_into().unwrap()
}

#[test]
fn a_genuine_result_passes_with_its_key_and_with_the_embedded_keys() {
    let result = genuine(false);
    assert_eq!(result["signatures"]["ed25519"]["key_id"], key_id(PUBLIC_KEY).as_str());
    let report = passes(&verify(&result, &["--public-key", PUBLIC_KEY]));
    let key = check(&report, "key.ed25519");
    assert_eq!((&key["status"], &key["key_id"]), (&"pass".into(), &key_id(PUBLIC_KEY).into()));
    assert_eq!(check(&report, "recompute")["status"], "skipped");
    assert_eq!(report["manifest_digest"], result["manifest_digest"]);

    let out = verify(&result, &["--trust-embedded-keys"]);
    passes(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("integrity only"), "no warning on stderr");

    // Uppercase hex names the same key; with the documents, the recompute holds too.
    let report = passes(&verify(
        &result,
        &["--public-key", &PUBLIC_KEY.to_uppercase(), "--inputs", "{inputs}", "--policy", "{policy}"],
    ));
    assert_eq!(check(&report, "recompute")["status"], "pass");
}

#[test]
fn without_a_key_option_nothing_is_trusted() {
    let report = fails_with(&verify(&genuine(false), &[]), &["key.ed25519"]);
    assert_eq!(check(&report, "key.ed25519")["key_id"], key_id(PUBLIC_KEY).as_str());
}

#[test]
fn a_result_re_signed_with_a_foreign_key_fails_naming_that_key() {
    // The forger moves one unit between two payees, recommits root and digest, and signs.
    let mut forged = genuine(false);
    let list = forged["allocations"].as_array_mut().unwrap();
    let amount = |v: &Value| v["amount_minor"].as_str().unwrap().parse::<u64>().unwrap();
    let (a, b) = (amount(&list[0]), amount(&list[1]));
    list[0]["amount_minor"] = (a + 1).to_string().into();
    list[1]["amount_minor"] = (b - 1).to_string().into();
    let pairs: Vec<(String, u64)> =
        list.iter().map(|v| (v["actor"].as_str().unwrap().to_owned(), amount(v))).collect();
    let root = merkle::root(&merkle::leaves(pairs.iter().map(|(actor, x)| (actor.as_str(), *x))));
    forged["manifest"]["allocations_root"] = commit::b3_hex(&root).into();
    let manifest: rewarder_core::Manifest = serde_json::from_value(forged["manifest"].clone()).unwrap();
    forged["manifest_digest"] = manifest.digest().into();
    let foreign = SigningKeys::from_seeds(&[0xee; 32], None).sign(&manifest.digest_bytes());
    forged["signatures"]["ed25519"] = serde_json::json!({
        "public_key": foreign.ed25519.public_key, "signature": foreign.ed25519.signature, "key_id": foreign.ed25519.key_id,
    });

    let report = fails_with(&verify(&forged, &["--public-key", PUBLIC_KEY]), &["key.ed25519"]);
    let key = check(&report, "key.ed25519");
    assert_eq!(key["key_id"], foreign.ed25519.key_id.as_str());
    assert_eq!(key["public_key"], foreign.ed25519.public_key.as_str());
    assert!(key["detail"].as_str().unwrap().contains(&foreign.ed25519.key_id), "{key}");
    // Trusting whatever the result carries accepts the forgery: integrity only.
    passes(&verify(&forged, &["--trust-embedded-keys"]));
    // The documents expose it whatever the trust.
    let report = fails_with(
        &verify(&forged, &["--trust-embedded-keys", "--inputs", "{inputs}", "--policy", "{policy}"]),
        &["recompute"],
    );
    assert_eq!(check(&report, "recompute")["fields"], serde_json::json!(["allocations_root"]));
}

#[test]
fn each_tampering_fails_with_its_own_report() {
    let original = genuine(false);
    let key = ["--public-key", PUBLIC_KEY];

    let mut amount = original.clone();
    amount["allocations"][0]["amount_minor"] = "1".into();
    let report = fails_with(&verify(&amount, &key), &["allocations"]);
    let detail = check(&report, "allocations")["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("sum to") && detail.contains("Merkle root"), "{detail}");

    let mut root = original.clone();
    root["manifest"]["allocations_root"] = commit::b3_hex(&[7; 32]).into();
    let report = fails_with(&verify(&root, &key), &["digest", "signature.ed25519", "allocations"]);
    assert_eq!(check(&report, "allocations")["expected"], commit::b3_hex(&[7; 32]).as_str());
    // The same with the digest recommitted: only the signature and the root can tell.
    let manifest: rewarder_core::Manifest = serde_json::from_value(root["manifest"].clone()).unwrap();
    root["manifest_digest"] = manifest.digest().into();
    fails_with(&verify(&root, &key), &["signature.ed25519", "allocations"]);

    let mut digest = original.clone();
    digest["manifest_digest"] = commit::b3_hex(&[1; 32]).into();
    let report = fails_with(&verify(&digest, &key), &["digest"]);
    assert_eq!(check(&report, "digest")["expected"], original["manifest_digest"]);
    assert_eq!(check(&report, "digest")["found"], commit::b3_hex(&[1; 32]).as_str());

    let mut signature = original.clone();
    let sig = signature["signatures"]["ed25519"]["signature"].as_str().unwrap();
    let flipped = format!("{}{}", if sig.starts_with('0') { "1" } else { "0" }, &sig[1..]);
    signature["signatures"]["ed25519"]["signature"] = flipped.into();
    fails_with(&verify(&signature, &key), &["signature.ed25519"]);
    let mut key_id = original.clone();
    key_id["signatures"]["ed25519"]["key_id"] = "0000000000000000".into();
    fails_with(&verify(&key_id, &key), &["signature.ed25519"]);

    // Another epoch's documents: the recompute names what differs.
    let out = verify_with(
        original.to_string().as_bytes(),
        &["--public-key", PUBLIC_KEY, "--inputs", "{inputs}", "--policy", "{policy}"],
        "gen-001",
    );
    let report = fails_with(&out, &["recompute"]);
    let fields = check(&report, "recompute")["fields"].as_array().unwrap().clone();
    assert!(fields.contains(&"inputs_cid".into()) && fields.contains(&"run_id".into()), "{report}");
}

#[test]
fn post_quantum_results_need_both_keys_trusted() {
    let result = genuine(true);
    let pq = result["signatures"]["ml_dsa_65"]["public_key"].as_str().unwrap().to_owned();
    passes(&verify(&result, &["--public-key", PUBLIC_KEY, "--public-key", &pq]));
    let report = fails_with(&verify(&result, &["--public-key", PUBLIC_KEY]), &["key.ml_dsa_65"]);
    assert_eq!(check(&report, "key.ml_dsa_65")["key_id"], result["signatures"]["ml_dsa_65"]["key_id"]);
    let mut tampered = result.clone();
    let sig = tampered["signatures"]["ml_dsa_65"]["signature"].as_str().unwrap();
    let flipped = format!("{}{}", &sig[..40], if &sig[40..41] == "0" { "1" } else { "0" }) + &sig[41..];
    tampered["signatures"]["ml_dsa_65"]["signature"] = flipped.into();
    fails_with(
        &verify(&tampered, &["--public-key", PUBLIC_KEY, "--public-key", &pq]),
        &["signature.ml_dsa_65"],
    );
}

#[test]
fn garbage_exits_1_with_a_report_and_never_panics() {
    let mut truncated = genuine(false).to_string();
    truncated.truncate(truncated.len() / 2);
    let mut no_ledger = genuine(false);
    no_ledger.as_object_mut().unwrap().remove("ledger");
    let mut cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "malformed_json"),
        (b"\xff\xfe garbage".to_vec(), "malformed_json"),
        (truncated.into_bytes(), "malformed_json"),
        (b"{}".to_vec(), "schema"),
        (b"[]".to_vec(), "schema"),
        (no_ledger.to_string().into_bytes(), "schema"),
    ];
    // Nested past serde_json's recursion limit, in a member a result may carry.
    let mut deep = r#"{"timing":"#.to_owned() + &"[".repeat(10_000);
    deep.push_str(&"]".repeat(10_000));
    deep.push('}');
    cases.push((deep.into_bytes(), "schema"));
    for (bytes, code) in cases {
        let out = verify_with(&bytes, &["--public-key", PUBLIC_KEY], "basic");
        let report = fails_with(&out, &["result"]);
        assert_eq!(check(&report, "result")["code"], code, "{report}");
    }
    // A public key field that is not a key: a failed check, not a crash.
    let mut bad_key = genuine(false);
    bad_key["signatures"]["ed25519"]["public_key"] = "zz".into();
    fails_with(&verify(&bad_key, &["--public-key", PUBLIC_KEY]), &["signature.ed25519", "key.ed25519"]);
}

#[test]
fn usage_errors_exit_2() {
    let result = genuine(false);
    for args in [
        vec!["--public-key", "zz"],
        vec!["--public-key", &PUBLIC_KEY[..62]],
        vec!["--public-key", PUBLIC_KEY, "--trust-embedded-keys"],
        vec!["--public-key", PUBLIC_KEY, "--inputs", "{inputs}"],
        vec!["--public-key", PUBLIC_KEY, "--policy", "{policy}"],
        vec!["--public-key", PUBLIC_KEY, "--inputs", "/nonexistent/inputs.json", "--policy", "{policy}"],
    ] {
        let out = verify(&result, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = run_cli(&["verify", "--result", "/nonexistent/result.json", "--trust-embedded-keys"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_nodes_results_verify_against_the_keys_it_lists_across_a_restart() {
    let scratch = Scratch::new("keys");
    let file = scratch.path().join("node.key");
    let pq_seed = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    std::fs::write(&file, format!("# node identity\n{SEED_HEX}\n{pq_seed}\n")).unwrap();
    let retired = SigningKeys::from_seeds(&[0x42; 32], None).ed25519_public_hex().to_owned();
    let env = [
        ("SIGNING_KEY_FILE", file.to_str().unwrap()),
        ("REQUIRE_PQ_ON", "true"),
        ("SIGNING_KEYS_RETIRED", retired.as_str()),
    ];
    let mut listed_before = Value::Null;
    for restart in 0..2 {
        let node = Node::start(&env);
        let reply = node.call("GET", "/rewarder/keys", &[], None);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("Content-Type"), Some("application/json"));
        let listed = reply.json();
        let keys = listed["keys"].as_array().unwrap();
        let summary: Vec<(&str, &str)> =
            keys.iter().map(|k| (k["algorithm"].as_str().unwrap(), k["status"].as_str().unwrap())).collect();
        assert_eq!(summary, [("ed25519", "active"), ("ml_dsa_65", "active"), ("ed25519", "retired")]);
        for k in keys {
            assert_eq!(k["key_id"], key_id(k["public_key"].as_str().unwrap()).as_str(), "{k}");
        }
        assert_eq!(keys[0]["public_key"], PUBLIC_KEY);
        assert_eq!(keys[2]["public_key"], retired.as_str());
        if restart == 1 {
            assert_eq!(listed, listed_before, "the same SIGNING_KEY_FILE is the same identity");
        }

        let result = compute_over_http(&node, "basic", None);
        assert_eq!(result.status, 200, "{}", String::from_utf8_lossy(&result.body));
        let body = result.json();
        for (algorithm, listed) in [("ed25519", &keys[0]), ("ml_dsa_65", &keys[1])] {
            assert_eq!(body["signatures"][algorithm]["key_id"], listed["key_id"], "{algorithm}");
        }
        let mut args = vec!["--inputs", "{inputs}", "--policy", "{policy}"];
        for k in keys {
            args.extend(["--public-key", k["public_key"].as_str().unwrap()]);
        }
        let report = passes(&verify_with(&result.body, &args, "basic"));
        assert_eq!(check(&report, "recompute")["status"], "pass");
        // Listed as retired, trusted alone: the node's current results are not its.
        fails_with(
            &verify_with(&result.body, &["--public-key", &retired], "basic"),
            &["key.ed25519", "key.ml_dsa_65"],
        );
        listed_before = listed;
    }
}

#[test]
fn the_keys_route_is_open_and_get_only() {
    let key = "00".repeat(32);
    let node = Node::start(&[("AUTH_KEYS", &format!("k1:{key}"))]);
    let listed = node.call("GET", "/rewarder/keys", &[], None);
    assert_eq!(listed.status, 200, "{}", String::from_utf8_lossy(&listed.body));
    assert_eq!(listed.json()["keys"].as_array().unwrap().len(), 1);
    let post = node.call("POST", "/rewarder/keys", &[("Content-Type", "application/json")], Some(b"{}"));
    assert_eq!(post.status, 405);
    assert_eq!(post.json()["error"]["details"]["allow"], "GET");
}

#[test]
fn a_retired_key_that_is_the_active_one_is_refused_at_start() {
    let scratch = Scratch::new("keys");
    let file = scratch.path().join("node.key");
    std::fs::write(&file, SEED_HEX).unwrap();
    for (retired, says) in [(PUBLIC_KEY, "signs with"), ("abcd", "SIGNING_KEYS_RETIRED")] {
        let out = run_cli(
            &["serve"],
            &[
                ("BIND_ADDR", "127.0.0.1:0"),
                ("SIGNING_KEY_FILE", file.to_str().unwrap()),
                ("SIGNING_KEYS_RETIRED", retired),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("SIGNING_KEYS_RETIRED") && stderr.contains(says), "{stderr}");
    }
}
