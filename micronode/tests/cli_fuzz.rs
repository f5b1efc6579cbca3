//! `rewarder-micronode compute --inputs F --policy G` on hostile files: random bytes, mutated
//! valid documents (bytes flipped, set, inserted, deleted, truncated) and valid documents.
//! The binary never crashes: it exits 0 with the result or 1 with the `{"error":{...}}`
//! envelope — never by a signal or a panic (101) — and stdout is one JSON document. It exits
//! 0 exactly when rewarder-core accepts both documents, with the core's manifest, and
//! otherwise names the core's error code.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use proptest::sample::Index;
use rewarder_core::{Error, Inputs, Limits, Policy, Run};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_rewarder-micronode");

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let name = format!(
            "rewarder-cli-fuzz-{}-{nanos}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path).expect("a fresh temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `compute` on the two documents (empty environment, 60 s bound).
fn run_compute(inputs: &[u8], policy: &[u8]) -> Output {
    let dir = TempDir::new();
    let (fi, fp) = (dir.path().join("inputs.json"), dir.path().join("policy.json"));
    std::fs::write(&fi, inputs).unwrap();
    std::fs::write(&fp, policy).unwrap();
    let child = Command::new(BIN)
        .args(["compute", "--inputs", fi.to_str().unwrap(), "--policy", fp.to_str().unwrap()])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the micronode binary starts");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.expect("waiting for the binary"),
        Err(_) => {
            // Only the child this test started, by its id.
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
            panic!("compute did not finish in 60 s");
        }
    }
}

/// What the core itself makes of the documents.
fn core_compute(inputs: &[u8], policy: &[u8]) -> Result<Run, Error> {
    let inputs = Arc::new(Inputs::parse(inputs, &Limits::UNBOUNDED)?);
    let policy = Policy::parse(policy)?;
    Run::compute(&inputs, &policy, "default")
}

/// A small valid pair of documents (serde_json writes the escapes).
fn valid_docs() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        prop::collection::vec("[!-~]{1,24}", 0..8),
        prop::collection::vec(
            (any::<Index>(), 0usize..3, prop_oneof![0u64..100, Just((1 << 53) - 1)]),
            0..16,
        ),
        prop_oneof![Just(0u64), 0u64..1000, any::<u64>()],
        prop::option::of(1u64..=10_000),
        prop::option::of(0u64..50),
    )
        .prop_map(|(actors, events, pool, bps, min_payout)| {
            let mut seen = std::collections::HashSet::new();
            let actors: Vec<String> = actors.into_iter().filter(|a| seen.insert(a.clone())).collect();
            let events: Vec<Value> = if actors.is_empty() {
                Vec::new()
            } else {
                events
                    .iter()
                    .enumerate()
                    .map(|(id, (a, k, u))| json!([id, a.index(actors.len()), k, u]))
                    .collect()
            };
            let inputs = json!({
                "schema": "rewarder.inputs.v1", "epoch": "2026-11-29", "pool_minor": pool.to_string(),
                "kinds": ["bytes_served", "uptime_s", "zero"], "actors": actors, "events": events,
            });
            let mut policy = json!({
                "schema": "rewarder.policy.v1", "policy_id": "fuzz",
                "weights": {"bytes_served": 1, "uptime_s": 250}, "caps": {"uptime_s": 86_400},
            });
            if let Some(bps) = bps {
                policy["actor_cap_bps"] = json!(bps);
            }
            if let Some(m) = min_payout {
                policy["min_payout_minor"] = json!(m.to_string());
            }
            (serde_json::to_vec(&inputs).unwrap(), serde_json::to_vec_pretty(&policy).unwrap())
        })
}

/// Bytes and fragments that matter to a JSON scanner.
const BYTES: &[u8] = b"{}[]\",:-+.eE0123456789\\u/ \n\x00\x1f\x7f\x80\xc3\xff";
const FRAGMENTS: &[&str] =
    &["\\ud800", "\\u0000", "-0", "1e3", "1.5", "18446744073709551616", "null", "[]", "{}", "\u{e9}", "[[[["];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, Index),
    Insert(Index, Index),
    Fragment(Index, Index),
    Delete(Index, usize),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, c)| Mutation::Set(i, c)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, c)| Mutation::Insert(i, c)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, f)| Mutation::Fragment(i, f)),
        (any::<Index>(), 1usize..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        let at = |i: &Index| if len == 0 { 0 } else { i.index(len) };
        match m {
            Mutation::Flip(i, bit) if len > 0 => bytes[at(i)] ^= 1 << bit,
            Mutation::Set(i, c) if len > 0 => bytes[at(i)] = BYTES[c.index(BYTES.len())],
            Mutation::Insert(i, c) => bytes.insert(at(i), BYTES[c.index(BYTES.len())]),
            Mutation::Fragment(i, f) => {
                let at = at(i);
                bytes.splice(at..at, FRAGMENTS[f.index(FRAGMENTS.len())].bytes());
            }
            Mutation::Delete(i, n) if len > 0 => {
                let at = at(i);
                bytes.drain(at..(at + n).min(len));
            }
            Mutation::Truncate(i) => bytes.truncate(at(i)),
            _ => {}
        }
    }
    bytes
}

/// A pair of documents: random bytes, one of a valid pair mutated, or a valid pair.
fn documents() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let random = prop::collection::vec(any::<u8>(), 0..256);
    prop_oneof![
        2 => (random.clone(), random),
        3 => (valid_docs(), prop::collection::vec(mutation(), 1..5))
            .prop_map(|((inputs, policy), ms)| (mutate(inputs, &ms), policy)),
        3 => (valid_docs(), prop::collection::vec(mutation(), 1..5))
            .prop_map(|((inputs, policy), ms)| (inputs, mutate(policy, &ms))),
        1 => valid_docs(),
    ]
}

/// 32 cases, times `REWARDER_PROPERTIES_SCALE` when set (for a longer hunt).
fn config() -> ProptestConfig {
    let scale =
        std::env::var("REWARDER_PROPERTIES_SCALE").ok().and_then(|s| s.parse::<u32>().ok()).unwrap_or(1);
    ProptestConfig { cases: 32 * scale.max(1), failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn compute_never_crashes_and_always_answers_json((inputs, policy) in documents()) {
        let out = run_compute(&inputs, &policy);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let shown = format!(
            "status {:?}\ninputs: {}\npolicy: {}\nstdout: {stdout}\nstderr: {stderr}",
            out.status,
            String::from_utf8_lossy(&inputs),
            String::from_utf8_lossy(&policy)
        );
        let code = out.status.code();
        prop_assert!(matches!(code, Some(0 | 1)), "not exit 0 or 1 (a signal is None, a panic 101): {}", shown);
        prop_assert!(!stderr.contains("panicked"), "{}", shown);
        let body: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| TestCaseError::fail(format!("stdout is not JSON ({e}): {shown}")))?;

        match core_compute(&inputs, &policy) {
            Ok(run) => {
                prop_assert_eq!(code, Some(0), "the core accepts both documents: {}", shown);
                prop_assert!(body.get("error").is_none(), "{}", shown);
                prop_assert_eq!(&body["manifest"]["allocations_root"], &json!(run.manifest().allocations_root));
                prop_assert_eq!(&body["manifest_digest"], &json!(run.manifest_digest()));
                prop_assert_eq!(body["allocations"].as_array().map(Vec::len), Some(run.allocations().len()));
            }
            Err(e) => {
                prop_assert_eq!(code, Some(1), "the core refuses ({}): {}", e, shown);
                prop_assert_eq!(&body["error"]["code"], &json!(e.code().as_str()), "{}", shown);
                prop_assert!(body["error"]["message"].is_string(), "{}", shown);
            }
        }
    }
}
