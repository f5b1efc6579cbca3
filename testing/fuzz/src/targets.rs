//! The fuzz targets of svc-rewarder as plain functions of `&[u8]`, so that the same code runs
//! under libFuzzer (`testing/fuzz/fuzz_targets/*.rs`, nightly `cargo fuzz`) and, on stable, as
//! a regression test over every committed corpus file (`micronode/tests/abuse.rs` includes this
//! file with `#[path]`).
//!
//! Each target panics when a property fails, and only then: a parser may refuse anything, but
//! with a 4xx code, deterministically, and what it accepts must be consistent (content ids,
//! sorted tables, a run that passes its invariants and verifies). This file depends only on
//! crates both hosts already have: `rewarder-core`, `rewarder-micronode` (for the gzip
//! inflater of `wire`), `serde_json`, `hex` and `flate2`.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rewarder_core::manifest::Manifest;
use rewarder_core::result::ResultJson;
use rewarder_core::service::{
    Artifacts, Clock, Config, HotKnobs, JSON, Kept, PROMETHEUS_TEXT, Profile, Reload, Request, Service, auth,
};
use rewarder_core::verify::{self, Trust};
use rewarder_core::{Code, Error, Inputs, Limits, Policy, PublicKey, Run, SigningKeys, commit, merkle};
use serde_json::{Value, json};

/// A fuzz target: panics when a property fails.
pub type Target = fn(&[u8]);

/// Every target by name: the name is also its corpus directory (`corpora/<name>/`).
pub const TARGETS: [(&str, Target); 6] = [
    ("inputs", inputs),
    ("policy", policy),
    ("handler", handler),
    ("http", http),
    ("gzip", gzip),
    ("verify", verify),
];

/// Document bounds while fuzzing: large enough for every shared vector, small enough that one
/// execution stays in microseconds.
const LIMITS: Limits = Limits { actors_max: 4096, events_max: 65_536 };
/// The correlation id of every fuzzed request.
const CORR_ID: &str = "fuzz-corr";
/// Requests in one handler input at most (separated by NUL bytes).
const REQUESTS_MAX: usize = 16;
/// Allocations whose Merkle proofs are rebuilt and checked per result at most.
const PROOFS_CHECKED_MAX: usize = 64;

// ---- documents ----------------------------------------------------------------------------

/// The inputs parser: deterministic; a refusal is a 4xx; an accepted document is consistent,
/// is JSON for `serde_json` too, and computes under a policy naming its kinds.
pub fn inputs(data: &[u8]) {
    let parsed = Inputs::parse(data, &LIMITS);
    assert_eq!(parsed, Inputs::parse(data, &LIMITS), "parsing is deterministic");
    match parsed {
        Err(e) => document_error(&e, data),
        Ok(doc) => {
            accepted_is_json(data);
            check_inputs(&doc, data);
            let policy = policy_for(&doc, data.first().copied().unwrap_or(0));
            compute_and_check(&Arc::new(doc), &policy);
        }
    }
}

/// The policy parser: deterministic; a refusal is a 4xx; an accepted policy is consistent and
/// computes over a small fixed document.
pub fn policy(data: &[u8]) {
    let parsed = Policy::parse(data);
    assert_eq!(parsed, Policy::parse(data), "parsing is deterministic");
    match parsed {
        Err(e) => document_error(&e, data),
        Ok(p) => {
            accepted_is_json(data);
            assert_eq!(p.hash(), commit::content_id(data), "the policy hash is the content id of the bytes");
            assert!(!p.policy_id().is_empty(), "an empty policy id was accepted");
            if let Some(bps) = p.actor_cap_bps() {
                assert!((1..=10_000).contains(&bps), "actor_cap_bps {bps} accepted");
            }
            let kinds: Vec<String> = fixed_kinds(&p);
            let doc = json!({
                "schema": "rewarder.inputs.v1", "epoch": "fz", "pool_minor": "1000003",
                "kinds": kinds, "actors": ["a", "b", "c", "d"],
                "events": (0..kinds.len() * 4).map(|i| json!([i, i % 4, i % kinds.len(), 1 + i * 7919 % 1000])).collect::<Vec<_>>(),
            });
            let raw = serde_json::to_vec(&doc).expect("a JSON value serializes");
            let doc = Inputs::parse(&raw, &LIMITS).expect("the fixed inputs document parses");
            compute_and_check(&Arc::new(doc), &p);
        }
    }
}

/// The kinds the fixed document of the policy target uses: the policy's own names (through
/// `weight`/`cap` lookups, which need names) plus one it does not know.
fn fixed_kinds(p: &Policy) -> Vec<String> {
    // The policy's tables are not public; probe the names the seeds and vectors use.
    let mut kinds: Vec<String> = ["k", "k0", "k1", "k2", "k3", "k4", "bytes_served", "uptime_s", "x"]
        .into_iter()
        .filter(|k| p.weight(k) > 0 || p.cap(k).is_some())
        .map(str::to_owned)
        .collect();
    kinds.push("unknown-kind".to_owned());
    kinds
}

/// A refusal of a document: a client error, never a server one, with a stable code.
fn document_error(e: &Error, data: &[u8]) {
    assert!(
        matches!(e.status(), 400 | 413 | 422),
        "a document was refused with {} {}: {}",
        e.status(),
        e.code(),
        e.message()
    );
    if e.code() == Code::MalformedJson {
        assert!(
            serde_json::from_slice::<Value>(data).is_err() || nesting_depth(data) > 127,
            "malformed_json for a text serde_json accepts: {}",
            e.message()
        );
    }
}

/// What the core parsers accept is JSON for `serde_json` too (a differential check of the
/// hand-written scanner), except for numbers `serde_json` cannot represent.
fn accepted_is_json(data: &[u8]) {
    if let Err(e) = serde_json::from_slice::<Value>(data) {
        assert!(e.to_string().contains("number out of range"), "accepted a text serde_json refuses: {e}");
    }
}

/// Deepest nesting of `[`/`{` outside strings (serde_json stops at 128).
fn nesting_depth(data: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in data {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn check_inputs(doc: &Inputs, data: &[u8]) {
    assert_eq!(doc.cid(), commit::content_id(data), "the cid is the content id of the bytes");
    assert!(doc.actor_count() <= LIMITS.actors_max && doc.event_count() <= LIMITS.events_max);
    assert!(doc.kinds().len() <= 256, "{} kinds accepted", doc.kinds().len());
    let mut previous: Option<&str> = None;
    for i in 0..doc.actor_count() {
        let actor = doc.actor(i);
        assert!((1..=128).contains(&actor.len()), "actor of {} bytes accepted", actor.len());
        assert!(previous.is_none_or(|p| p.as_bytes() < actor.as_bytes()), "actors not strictly ascending");
        assert_eq!(doc.actor_index(actor), Some(i), "actor_index finds actor {i}");
        let usage = doc.usage(i);
        assert!(usage.windows(2).all(|w| w[0].kind < w[1].kind), "usage of actor {i} not ascending by kind");
        assert!(usage.iter().all(|u| usize::from(u.kind) < doc.kinds().len()), "usage names no kind");
        previous = Some(actor);
    }
}

/// A policy over the kinds of `doc`, shaped by `seed` (weights, caps, ceiling, dust, pool
/// limit), so that every accepted document also runs the calculus.
fn policy_for(doc: &Inputs, seed: u8) -> Policy {
    let s = u64::from(seed);
    let mut weights = serde_json::Map::new();
    let mut caps = serde_json::Map::new();
    for (i, kind) in doc.kinds().iter().enumerate() {
        let i = i as u64;
        weights.insert(kind.clone(), json!((s + i * 31) % 7 * 1000 % 1_000_001));
        if (s >> (i % 8)) & 1 == 1 {
            caps.insert(kind.clone(), json!((s * 13 + i) % 50));
        }
    }
    let mut p = json!({
        "schema": "rewarder.policy.v1", "policy_id": "fuzz", "weights": weights, "caps": caps,
        "min_payout_minor": (s % 5).to_string(),
    });
    if s % 3 == 0 {
        p["actor_cap_bps"] = json!(1 + s * 37 % 10_000);
    }
    if s % 4 == 1 {
        p["max_pool_minor"] = json!((s * 1009).to_string());
    }
    let raw = serde_json::to_vec(&p).expect("a JSON value serializes");
    Policy::parse(&raw).unwrap_or_else(|e| panic!("the generated policy is valid: {e}"))
}

/// Computes, expects success (invariants hold), and checks the commitments of the run.
fn compute_and_check(doc: &Arc<Inputs>, policy: &Policy) {
    let run = match Run::compute(doc, policy, "default") {
        Ok(run) => run,
        Err(e) => panic!("a valid document and policy failed to compute: {e}"),
    };
    let m = run.manifest();
    assert_eq!(run.manifest_digest(), m.digest(), "digest of the manifest");
    let pairs: Vec<(&str, u64)> = run.allocations().map(|a| (a.actor, a.amount)).collect();
    assert_eq!(m.payees, pairs.len() as u64);
    let total: u128 = pairs.iter().map(|(_, x)| u128::from(*x)).sum();
    assert_eq!(m.payout_total_minor, total.to_string());
    let leaves = merkle::leaves(pairs.iter().copied());
    let root = merkle::root(&leaves);
    assert_eq!(m.allocations_root, commit::b3_hex(&root));
    for (i, (actor, amount)) in pairs.iter().enumerate().take(PROOFS_CHECKED_MAX) {
        let proof = run.proof(actor).expect("every payee has a proof");
        assert_eq!((proof.index, proof.amount), (i, *amount));
        assert!(merkle::verify(&root, actor, *amount, &proof.steps), "proof of payee {i}");
        assert!(!merkle::verify(&root, actor, amount.wrapping_add(1), &proof.steps), "forged amount");
    }
}

// ---- the transport-agnostic handler --------------------------------------------------------

/// A clock that moves 1 ms per reading (rate limits refill; tokens stay valid).
struct FakeClock(AtomicU64);

/// Unix time of the fake clock (tokens are minted to be valid then).
const NOW: u64 = 1_800_000_000;

impl Clock for FakeClock {
    fn monotonic(&self) -> Duration {
        Duration::from_millis(self.0.fetch_add(1, Ordering::Relaxed))
    }
    fn unix_seconds(&self) -> u64 {
        NOW
    }
}

/// Keeps nothing, alternately saying it wrote and could not (both paths of the stores, and a
/// refused large upload's discard).
struct FakeArtifacts(AtomicU64);

impl Artifacts for FakeArtifacts {
    fn keep(&self, name: &str, _bytes: &[u8]) -> Kept {
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b":._-".contains(&b)),
            "an artifact name outside [a-z0-9:._-]: {name:?}"
        );
        if self.0.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) { Kept::Written } else { Kept::Spilled }
    }
}

struct FakeReload;

impl Reload for FakeReload {
    fn hot_knobs(&self) -> Result<HotKnobs, String> {
        Ok(HotKnobs {
            tenant_rps_max: 1_000_000,
            max_inflight: 4,
            work_queue_max: 16,
            ledger_quarantine_only: false,
        })
    }
}

/// The Ed25519 public key of the handler target's service (seed 7), hex: the key its results
/// are verified against, and the verify target's trusted key.
fn trusted_key_hex() -> String {
    SigningKeys::from_seeds(&[7; 32], None).ed25519_public_hex().to_owned()
}

/// The key id and key of the handler target when authentication is on.
const KID: &str = "k1";
const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

/// The tokens the handler target knows: `(token, tenant)`. Seeds carry them verbatim.
pub fn tokens() -> Vec<(String, &'static str)> {
    vec![
        (auth::mint(KID, KEY, "t1", "compute read", NOW + 3600, None), "t1"),
        (auth::mint(KID, KEY, "t2", "compute read admin", NOW + 3600, None), "t2"),
        (auth::mint(KID, KEY, "t1", "read", NOW + 3600, None), "t1"),
    ]
}

fn service(auth_on: bool) -> Service {
    let config = Config {
        profile: Profile::Micronode,
        auth_keys: auth_on.then(|| vec![(KID.to_owned(), KEY.to_vec())]),
        limits: LIMITS,
        req_body_max_bytes: 64 << 10,
        inputs_max_bytes: 256 << 10,
        runs_max: 8,
        runs_max_bytes: 1 << 20,
        documents_max_bytes: 1 << 20,
        tenant_store_max_bytes: None,
        tenant_runs_max: None,
        keys: SigningKeys::from_seeds(&[7; 32], None),
        hot: HotKnobs {
            tenant_rps_max: 1_000_000,
            max_inflight: 4,
            work_queue_max: 16,
            ledger_quarantine_only: false,
        },
        features: vec!["gzip"],
    };
    Service::new(
        config,
        Arc::new(FakeClock(AtomicU64::new(5_000))),
        Arc::new(FakeArtifacts(AtomicU64::new(0))),
        Arc::new(FakeReload),
    )
}

/// The handler: a fresh service gets up to [`REQUESTS_MAX`] requests, NUL-separated, each
/// `METHOD SP URL [SP AUTHORIZATION] LF BODY`; an input starting `AUTH\n` turns tokens on.
///
/// Every answer is well-formed (a JSON envelope with our correlation id for errors, `Retry-After`
/// on 429/503); no request is ever a 500; a compute or epoch answer verifies against the
/// service's published key (`rewarder_core::verify`) and belongs to the caller's tenant; a proof answer verifies; with tokens
/// on, only a known token gets a 2xx from a scoped route.
pub fn handler(data: &[u8]) {
    let (auth_on, rest) = match data.strip_prefix(b"AUTH\n") {
        Some(rest) => (true, rest),
        None => (false, data),
    };
    let service = service(auth_on);
    let known = tokens();
    let trusted = [PublicKey::from_hex(&trusted_key_hex()).expect("the service's key parses")];
    for raw in rest.split(|&b| b == 0).take(REQUESTS_MAX) {
        let (line, body) = match raw.iter().position(|&b| b == b'\n') {
            Some(i) => (&raw[..i], &raw[i + 1..]),
            None => (raw, &[][..]),
        };
        let line = String::from_utf8_lossy(line);
        let mut parts = line.splitn(3, ' ');
        let method = parts.next().unwrap_or("");
        let url = parts.next().unwrap_or("");
        let authorization = parts.next().filter(|a| !a.is_empty());
        let request = Request { method, url, authorization, body, corr_id: CORR_ID };
        let response = service.handle(&request);
        let status = response.status;
        let what = format!("{method} {url:?} -> {status}");
        assert!((200..600).contains(&status), "{what}");
        assert_ne!(status, 500, "{what}: {}", String::from_utf8_lossy(&response.body));
        if matches!(status, 429 | 503) {
            assert!(response.retry_after_s.is_some(), "{what} without Retry-After");
        }
        let route = Service::route_label(url);
        if response.content_type == PROMETHEUS_TEXT {
            assert_eq!((status, route), (200, "/metrics"), "{what}");
            assert!(std::str::from_utf8(&response.body).is_ok(), "{what}: metrics not UTF-8");
            continue;
        }
        assert_eq!(response.content_type, JSON, "{what}");
        let body: Value = serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| panic!("{what}: the body is not JSON ({e})"));
        if status >= 400 && !(route == "/readyz" && status == 503) {
            assert!(body["error"]["code"].is_string(), "{what}: no error envelope: {body}");
            assert_eq!(body["error"]["corr_id"], CORR_ID, "{what}");
            continue;
        }
        let tenant = if !auth_on {
            "default"
        } else if matches!(route, "/healthz" | "/readyz" | "/metrics" | "/version" | "/rewarder/keys") {
            continue;
        } else {
            // Only a token the target minted opens a scoped route.
            let presented = authorization
                .and_then(|a| a.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim_matches(' '));
            let Some((_, tenant)) = known.iter().find(|(t, _)| Some(t.as_str()) == presented) else {
                panic!("{what} with an unknown token {authorization:?}");
            };
            *tenant
        };
        if let Some(manifest) = body.get("manifest") {
            assert_eq!(manifest["tenant"], tenant, "{what}: another tenant's run");
        }
        if status == 200 && body.get("signatures").is_some() {
            let report = verify::verify(&response.body, Trust::Keys(&trusted), None);
            assert!(report.ok, "{what}: {}", report.to_json());
        }
        if route == "/rewarder/keys" {
            assert_eq!(body["keys"][0]["public_key"], trusted[0].hex().as_str(), "{what}");
            assert_eq!(body["keys"][0]["key_id"], trusted[0].key_id().as_str(), "{what}");
        }
        if status == 200 && body.get("proof").is_some() {
            assert_eq!(proof_verifies(&response.body), Ok(true), "{what}: the proof does not verify");
        }
    }
}

// ---- the transport's framing -----------------------------------------------------------------

/// The server's framing (`rewarder_micronode::http::framing`), as the I/O thread drives it: the
/// input up to its first `CRLF CRLF` is a request head, the rest a chunked body.
///
/// The head end is found the same way whether the bytes arrive at once or split anywhere; a head
/// parses deterministically; a refusal is `400 bad_request` with a valid correlation id; an
/// accepted head has an origin-form ASCII target and consistent framing. The chunked decoder
/// gives the same body, the same refusal and stops at the same byte whether fed at once or in
/// pieces of 1–7 bytes (byte 0 picks the size), and never exceeds its cap.
pub fn http(data: &[u8]) {
    use rewarder_micronode::http::framing::{self, Chunked, Framing};
    const HEAD_BYTES_MAX: usize = 16 * 1024;
    const BODY_MAX: usize = 4096;
    let piece = usize::from(data.first().copied().unwrap_or(0) % 7) + 1;
    let end = framing::head_end(data, 0);
    // Found incrementally, as reads arrive.
    let mut incremental = None;
    for seen in (piece..data.len() + piece).step_by(piece) {
        let seen = seen.min(data.len());
        if let Some(e) = framing::head_end(&data[..seen], seen.saturating_sub(piece)) {
            incremental = Some(e);
            break;
        }
    }
    assert_eq!(end, incremental, "the head end depends on how the bytes arrived");
    let (body_start, chunked_head) = match end.filter(|&e| e <= HEAD_BYTES_MAX) {
        None => (0, false),
        Some(end) => {
            let parsed = framing::parse_head(&data[..end]);
            // Deterministic but for a fresh correlation id (none, or an invalid one, was sent).
            let again = framing::parse_head(&data[..end]);
            assert_eq!(
                parsed.as_ref().map_err(|r| &r.error).map(|h| (&h.method, &h.target, h.framing)),
                again.as_ref().map_err(|r| &r.error).map(|h| (&h.method, &h.target, h.framing)),
                "parsing is deterministic"
            );
            match parsed {
                Err(refused) => {
                    assert_eq!(refused.error.code(), Code::BadRequest, "{:?}", refused.error);
                    assert!(rewarder_micronode::wire::valid_corr_id(&refused.corr_id));
                    (end, false)
                }
                Ok(head) => {
                    assert!(head.target.starts_with('/') || head.target == "*", "{head:?}");
                    assert!(head.target.is_ascii() && !head.method.is_empty(), "{head:?}");
                    assert!(!head.expects_continue || head.framing != Framing::None, "{head:?}");
                    (end, head.framing == Framing::Chunked)
                }
            }
        }
    };
    let body = &data[body_start..];
    let decode_whole = || {
        let mut d = Chunked::new(BODY_MAX, HEAD_BYTES_MAX);
        let mut out = Vec::new();
        let used = d.feed(body, &mut out);
        (used.map(|u| (u, d.is_done())), out)
    };
    let (whole, whole_body) = decode_whole();
    let mut d = Chunked::new(BODY_MAX, HEAD_BYTES_MAX);
    let mut pieces_body = Vec::new();
    let mut buffered: Vec<u8> = Vec::new();
    let mut consumed = 0;
    let mut pieces = Ok((0, false));
    for part in body.chunks(piece) {
        buffered.extend_from_slice(part);
        match d.feed(&buffered, &mut pieces_body) {
            Err(e) => {
                pieces = Err(e);
                break;
            }
            Ok(used) => {
                buffered.drain(..used);
                consumed += used;
                pieces = Ok((consumed, d.is_done()));
                if d.is_done() {
                    break;
                }
            }
        }
    }
    assert!(whole_body.len() <= BODY_MAX && pieces_body.len() <= BODY_MAX, "the cap was exceeded");
    match (&whole, &pieces) {
        (Ok((_, true)), Ok((_, true))) => {
            assert_eq!(whole, pieces, "a complete body ends at another byte (chunked head: {chunked_head})");
            assert_eq!(whole_body, pieces_body, "a complete body decodes differently");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "the refusal depends on how the bytes arrived"),
        (Ok((_, false)), _) | (_, Ok((_, false))) => {
            // Incomplete either way, or refused only once more bytes came: a prefix of the
            // same decoding.
            let n = whole_body.len().min(pieces_body.len());
            assert_eq!(whole_body[..n], pieces_body[..n], "the bodies disagree on a prefix");
        }
        _ => panic!("whole {whole:?} vs pieces {pieces:?}"),
    }
}

// ---- gzip ----------------------------------------------------------------------------------

/// The bounded gzip inflater of the transport: byte 0 picks the ratio cap (1..=256), bytes 1–2
/// the body cap (in 16-byte units), the rest is the compressed body. The output never exceeds
/// either cap, a refusal is `400 bad_request` or `413 decompression_limit`, and whatever an
/// unbounded decoder inflates within the caps is returned exactly.
pub fn gzip(data: &[u8]) {
    let [ratio, hi, lo, compressed @ ..] = data else { return };
    let ratio_max = u32::from(*ratio) + 1;
    let body_max = (usize::from(*hi) << 8 | usize::from(*lo)) * 16;
    let cap = body_max.min(compressed.len() * ratio_max as usize);
    let bounded = rewarder_micronode::wire::inflate_gzip(compressed, body_max, ratio_max);
    // The reference: flate2 read to the cap plus one byte.
    let mut reference = Vec::new();
    let unbounded =
        flate2::read::MultiGzDecoder::new(compressed).take(cap as u64 + 1).read_to_end(&mut reference);
    match bounded {
        Ok(out) => {
            assert!(out.len() <= cap, "inflated {} bytes past the cap {cap}", out.len());
            assert!(unbounded.is_ok(), "the inflater accepted what flate2 refuses");
            assert_eq!(out, reference, "the inflater changed the bytes");
        }
        Err(e) => {
            assert!(matches!(e.code(), Code::BadRequest | Code::DecompressionLimit), "{e}");
            if e.code() == Code::DecompressionLimit {
                assert!(reference.len() > cap, "decompression_limit within the cap: {e}");
            } else {
                assert!(unbounded.is_err(), "bad_request for a body flate2 inflates: {e}");
            }
        }
    }
}

// ---- results and proofs ---------------------------------------------------------------------

/// Every listed payee's Merkle proof, rebuilt from the allocations of a result body, folds
/// back to their root exactly when the payee's id is 1–128 bytes. Bodies that are not results
/// (or list amounts that are not decimals) have nothing to fold.
fn listed_proofs_fold(body: &[u8]) {
    let Ok(result) = serde_json::from_slice::<ResultJson>(body) else { return };
    let Some(list) = result.allocations else { return };
    let Some(pairs) = list
        .iter()
        .map(|a| rewarder_core::parse_amount(&a.amount_minor).map(|amount| (a.actor.as_str(), amount)))
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let leaves = merkle::leaves(pairs.iter().copied());
    let root = merkle::root(&leaves);
    for (i, (actor, amount)) in pairs.iter().enumerate().take(PROOFS_CHECKED_MAX) {
        let steps = merkle::proof(&leaves, i).expect("an index in range has a proof");
        let folds = merkle::verify(&root, actor, *amount, &steps);
        assert_eq!(folds, (1..=128).contains(&actor.len()), "the proof of leaf {i} of {}", pairs.len());
    }
}

/// Folds a proof body (`GET …/proof/{actor}`) against its manifest's root: `Err` for a body
/// that is not a proof.
pub fn proof_verifies(body: &[u8]) -> Result<bool, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let manifest: Manifest =
        serde_json::from_value(v["manifest"].clone()).map_err(|e| format!("no manifest: {e}"))?;
    let root = manifest.allocations_root.strip_prefix("b3:").ok_or("the root is not b3:")?;
    let mut root_bytes = [0u8; 32];
    hex::decode_to_slice(root, &mut root_bytes).map_err(|_| "the root is not hex of 32 bytes")?;
    let actor = v["actor"].as_str().ok_or("no actor")?;
    let amount = v["amount_minor"].as_str().and_then(rewarder_core::parse_amount).ok_or("no amount")?;
    let steps = v["proof"].as_array().ok_or("no proof")?;
    let mut parsed = Vec::with_capacity(steps.len().min(64));
    for step in steps {
        let left = match step["side"].as_str() {
            Some("L") => true,
            Some("R") => false,
            _ => return Err("a side is neither L nor R".into()),
        };
        let mut hash = [0u8; 32];
        hex::decode_to_slice(step["hash"].as_str().ok_or("no hash")?, &mut hash)
            .map_err(|_| "a hash is not hex of 32 bytes")?;
        parsed.push(merkle::ProofStep { left, hash });
    }
    let digest_ok = v["manifest_digest"].as_str() == Some(manifest.digest().as_str());
    Ok(digest_ok && merkle::verify(&root_bytes, actor, amount, &parsed))
}

/// The verifier's side (`rewarder_core::verify`, as the FFI and the CLI call it): a result body
/// or a proof body (or anything else) never panics it, the parsing, digest recomputation or
/// Merkle folding; its report is a pure function of the bytes and the trust, is JSON, and
/// trust changes only the `key.*` checks; what verifies is self-consistent.
pub fn verify(data: &[u8]) {
    let trusted = [PublicKey::from_hex(&trusted_key_hex()).expect("a generated key parses")];
    let report = verify::verify(data, Trust::Keys(&trusted), None);
    assert_eq!(report, verify::verify(data, Trust::Keys(&trusted), None), "verification is deterministic");
    let embedded = verify::verify(data, Trust::Embedded, None);
    let untrusted = verify::verify(data, Trust::Keys(&[]), None);
    for other in [&embedded, &untrusted] {
        assert_eq!(report.checks.len(), other.checks.len());
        for (a, b) in report.checks.iter().zip(&other.checks) {
            assert!(a == b || a.check.starts_with("key."), "trust changed {a:?} into {b:?}");
        }
    }
    assert!(!untrusted.ok, "a result verified trusting nobody");
    if report.ok {
        assert!(embedded.ok, "a result verified with a trusted key but not with its own");
    }
    assert!(serde_json::from_str::<Value>(&report.to_json()).is_ok(), "the report is not JSON");
    listed_proofs_fold(data);
    let _ = proof_verifies(data);
    // Raw proof folding with any actor (empty, > 128 bytes, any bytes) and any steps.
    if data.len() >= 41 {
        let (head, tail) = data.split_at(41);
        let root: [u8; 32] = head[..32].try_into().expect("32 bytes");
        let amount = u64::from_le_bytes(head[32..40].try_into().expect("8 bytes"));
        let n = usize::from(head[40] % 64);
        let (steps_bytes, actor) = tail.split_at((n * 33).min(tail.len()));
        let steps: Vec<merkle::ProofStep> = steps_bytes
            .chunks_exact(33)
            .map(|c| merkle::ProofStep { left: c[0] & 1 == 1, hash: c[1..].try_into().expect("32 bytes") })
            .collect();
        let actor = String::from_utf8_lossy(actor);
        let ok = merkle::verify(&root, &actor, amount, &steps);
        if actor.is_empty() || actor.len() > 128 {
            assert!(!ok, "an impossible actor id verified");
        }
    }
}
