//! The request handler of API.md driven through its public API (`Service::handle`) with a fake
//! clock, fake artifacts and a fake reload: every route, the golden vectors end to end for
//! both tenants, auth, isolation, limits, metrics and reload.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rewarder_core::service::{
    Artifacts, Clock, Config, HTML, HotKnobs, JSON, Kept, Overlap, PROMETHEUS_TEXT, Profile, Reload, Request,
    Response, Service, auth,
};
use rewarder_core::{Limits, SigningKeys, merkle, sign};
use serde_json::{Value, json};

use rewarder_gen::golden;

use golden::{cases, vectors};

const NOW: u64 = 1_800_000_000;
const KID: &str = "k1";
const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

// ---------------------------------------------------------------------------------------------
// Fakes and helpers

struct FakeClock {
    mono_ns: AtomicU64,
    unix: AtomicU64,
}

impl FakeClock {
    fn advance(&self, d: Duration) {
        self.mono_ns.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
        self.unix.fetch_add(d.as_secs(), Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.mono_ns.load(Ordering::SeqCst))
    }
    fn unix_seconds(&self) -> u64 {
        self.unix.load(Ordering::SeqCst)
    }
}

#[derive(Default)]
struct FakeArtifacts {
    refuse: AtomicBool,
    /// Names kept, in order; a discarded one leaves the list.
    kept: Mutex<Vec<String>>,
    /// Names discarded, with the byte lengths given back.
    discarded: Mutex<Vec<(String, usize)>>,
}

impl Artifacts for FakeArtifacts {
    fn keep(&self, name: &str, _bytes: &[u8]) -> Kept {
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b":._-".contains(&b)),
            "{name}"
        );
        self.kept.lock().unwrap().push(name.to_owned());
        if self.refuse.load(Ordering::SeqCst) { Kept::Spilled } else { Kept::Written }
    }

    fn discard(&self, name: &str, bytes_len: usize) {
        let mut kept = self.kept.lock().unwrap();
        let at = kept.iter().rposition(|k| k == name).expect("only what was kept is discarded");
        kept.remove(at);
        self.discarded.lock().unwrap().push((name.to_owned(), bytes_len));
    }
}

struct FakeReload {
    next: Mutex<Result<HotKnobs, String>>,
}

impl Reload for FakeReload {
    fn hot_knobs(&self) -> Result<HotKnobs, String> {
        self.next.lock().unwrap().clone()
    }
}

struct Node {
    service: Service,
    clock: Arc<FakeClock>,
    artifacts: Arc<FakeArtifacts>,
    reload: Arc<FakeReload>,
}

struct Setup {
    auth: bool,
    pq: bool,
    hot: HotKnobs,
    runs_max: usize,
    runs_max_bytes: usize,
    documents_max_bytes: usize,
    tenant_store_max_bytes: Option<usize>,
    tenant_runs_max: Option<usize>,
    req_body_max_bytes: usize,
    overlap: Option<Arc<dyn Overlap>>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            auth: false,
            pq: false,
            hot: HotKnobs { tenant_rps_max: 1_000_000, ..HotKnobs::default() },
            runs_max: 1024,
            runs_max_bytes: usize::MAX,
            documents_max_bytes: 256 << 20,
            tenant_store_max_bytes: None,
            tenant_runs_max: None,
            req_body_max_bytes: 1 << 20,
            overlap: None,
        }
    }
}

impl Setup {
    fn node(self) -> Node {
        let clock = Arc::new(FakeClock { mono_ns: AtomicU64::new(5_000_000_000), unix: AtomicU64::new(NOW) });
        let artifacts = Arc::new(FakeArtifacts::default());
        let reload = Arc::new(FakeReload { next: Mutex::new(Err("unset".into())) });
        let config = Config {
            profile: Profile::Micronode,
            auth_keys: self
                .auth
                .then(|| vec![(KID.to_owned(), KEY.to_vec()), ("old".to_owned(), b"old-key".to_vec())]),
            limits: Limits { actors_max: 100_000, events_max: 1_000_000 },
            req_body_max_bytes: self.req_body_max_bytes,
            inputs_max_bytes: 64 << 20,
            runs_max: self.runs_max,
            runs_max_bytes: self.runs_max_bytes,
            documents_max_bytes: self.documents_max_bytes,
            tenant_store_max_bytes: self.tenant_store_max_bytes,
            tenant_runs_max: self.tenant_runs_max,
            keys: SigningKeys::from_seeds(&[7; 32], self.pq.then_some(&[9; 32])),
            hot: self.hot,
            features: vec!["gzip"],
        };
        let mut service = Service::new(config, clock.clone(), artifacts.clone(), reload.clone());
        if let Some(overlap) = self.overlap {
            service = service.with_overlap(overlap);
        }
        Node { service, clock, artifacts, reload }
    }
}

fn node() -> Node {
    Setup::default().node()
}

fn token(tenant: &str, scopes: &str) -> String {
    format!("Bearer {}", auth::mint(KID, KEY, tenant, scopes, NOW + 3600, None))
}

struct Answer {
    response: Response,
    json: Value,
}

impl Answer {
    fn status(&self) -> u16 {
        self.response.status
    }
    fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("<none>")
    }
}

impl Node {
    fn call(&self, method: &str, url: &str, authorization: Option<&str>, body: &[u8]) -> Answer {
        let request = Request { method, url, authorization, body, corr_id: "corr-1" };
        let response = self.service.handle(&request);
        let json = if response.content_type == JSON {
            serde_json::from_slice(&response.body).unwrap_or_else(|e| panic!("{method} {url}: not JSON: {e}"))
        } else {
            Value::Null
        };
        if response.status >= 400 && url != "/readyz" {
            assert_eq!(json["error"]["corr_id"], "corr-1", "{method} {url}: {json}");
        }
        if matches!(response.status, 429 | 503) {
            assert!(response.retry_after_s.is_some(), "{method} {url}: no Retry-After");
        }
        Answer { response, json }
    }

    fn get(&self, url: &str, authorization: Option<&str>) -> Answer {
        self.call("GET", url, authorization, b"")
    }

    fn put_inputs(&self, raw: &[u8], authorization: Option<&str>) -> Answer {
        self.call("PUT", "/rewarder/inputs", authorization, raw)
    }

    fn put_policy(&self, raw: &[u8], authorization: Option<&str>) -> Answer {
        self.call("PUT", "/rewarder/policies", authorization, raw)
    }

    fn compute(&self, epoch: &str, body: &Value, authorization: Option<&str>) -> Answer {
        let url = format!("/rewarder/epochs/{epoch}/compute");
        self.call("POST", &url, authorization, body.to_string().as_bytes())
    }

    /// PUTs both documents and computes; returns the compute answer.
    fn run(&self, inputs: &[u8], policy: &[u8], authorization: Option<&str>) -> Answer {
        let i = self.put_inputs(inputs, authorization);
        assert!(matches!(i.status(), 200 | 201), "{}", i.json);
        let p = self.put_policy(policy, authorization);
        assert!(matches!(p.status(), 200 | 201), "{}", p.json);
        self.compute(i.json["epoch"].as_str().unwrap(), &compute_body(&i.json, &p.json), authorization)
    }

    fn metrics(&self) -> String {
        let a = self.get("/metrics", None);
        assert_eq!(a.status(), 200);
        assert_eq!(a.response.content_type, PROMETHEUS_TEXT);
        String::from_utf8(a.response.body).unwrap()
    }
}

fn compute_body(inputs: &Value, policy: &Value) -> Value {
    json!({"inputs_cid": inputs["inputs_cid"], "policy_id": policy["policy_id"], "policy_hash": policy["policy_hash"]})
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

fn basic() -> (Vec<u8>, Vec<u8>) {
    let dir = vectors().join("basic");
    (read(&dir, "inputs.json"), read(&dir, "policy.json"))
}

/// The basic inputs with another epoch.
fn basic_of(epoch: &str) -> Vec<u8> {
    String::from_utf8(basic().0).unwrap().replace("2026-11-29", epoch).into_bytes()
}

/// An inputs document of `actors` actors with one event each (a large upload).
fn large_inputs(epoch: &str, actors: usize) -> Vec<u8> {
    let names: Vec<String> = (0..actors).map(|i| format!("\"acct:n{i:06}\"")).collect();
    let events: Vec<String> = (0..actors).map(|i| format!("[{},{i},0,{}]", i + 1, i + 1)).collect();
    let text = format!(
        r#"{{"schema":"rewarder.inputs.v1","epoch":"{epoch}","pool_minor":"1000000","kinds":["bytes_served","uptime_s"],"actors":[{}],"events":[{}]}}"#,
        names.join(","),
        events.join(",")
    );
    text.into_bytes()
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no series {series}"))
        .parse()
        .unwrap()
}

fn verify_signatures(result: &Value) {
    let digest_hex = result["manifest_digest"].as_str().unwrap().strip_prefix("b3:").unwrap();
    let mut digest = [0u8; 32];
    hex::decode_to_slice(digest_hex, &mut digest).unwrap();
    for (alg, sig) in result["signatures"].as_object().unwrap() {
        let ok = sign::verify(
            alg,
            sig["public_key"].as_str().unwrap(),
            &digest,
            sig["signature"].as_str().unwrap(),
        );
        assert!(ok.unwrap(), "{alg} signature does not verify");
    }
}

// ---------------------------------------------------------------------------------------------
// Probes

#[test]
fn probes_answer_without_a_token() {
    let n = Setup { auth: true, ..Setup::default() }.node();
    let h = n.get("/healthz", None);
    assert_eq!((h.status(), h.json.clone()), (200, json!({"status": "ok"})));
    let r = n.get("/readyz", None);
    assert_eq!(r.status(), 200);
    assert_eq!(r.json["ready"], true);
    let v = n.get("/version", None);
    assert_eq!(v.status(), 200);
    assert_eq!(v.json["name"], "svc-rewarder");
    assert_eq!(v.json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v.json["profile"], "micronode");
    assert_eq!(v.json["pq_required"], false);
    assert_eq!(v.json["features"], json!(["ed25519", "auth", "gzip"]));
    assert_eq!(v.json["public_keys"]["ed25519"].as_str().unwrap().len(), 64);
    assert!(v.json["public_keys"].get("ml_dsa_65").is_none());
    assert!(n.metrics().contains("build_info{"));
}

#[test]
fn version_names_the_pq_key_when_pq_is_required() {
    let n = Setup { pq: true, ..Setup::default() }.node();
    let v = n.get("/version", None);
    assert_eq!(v.json["pq_required"], true);
    assert_eq!(v.json["features"], json!(["ed25519", "ml_dsa_65", "gzip"]));
    assert_eq!(v.json["public_keys"]["ml_dsa_65"].as_str().unwrap().len(), 2 * 1952);
    let (inputs, policy) = basic();
    let c = n.run(&inputs, &policy, None);
    assert_eq!(c.status(), 200);
    assert!(c.json["signatures"]["ml_dsa_65"].is_object());
    verify_signatures(&c.json);
}

#[test]
fn version_carries_the_hosts_build_only_when_given() {
    assert!(node().get("/version", None).json.get("build").is_none());
    let mut n = node();
    let build =
        rewarder_core::service::Build { target: "aarch64-unknown-linux-musl", git_revision: "0123456789ab" };
    n.service = n.service.with_build(&build);
    let v = n.get("/version", None);
    assert_eq!(
        v.json["build"],
        json!({"target": "aarch64-unknown-linux-musl", "git_revision": "0123456789ab"})
    );
    assert_eq!(v.json["features"], json!(["ed25519", "gzip"]), "the rest is unchanged");
}

#[test]
fn readyz_reports_missing_components_and_a_degraded_ledger() {
    let n = node();
    assert!(n.service.ready());
    n.service.mark_missing("amnesia_dir", true);
    let r = n.get("/readyz", None);
    assert_eq!(r.status(), 503);
    assert_eq!(r.response.retry_after_s, Some(1));
    assert_eq!(
        r.json,
        json!({"ready": false, "degraded": true, "missing": ["amnesia_dir"], "retry_after": 1})
    );
    assert!(!n.service.ready());
    assert!(n.metrics().contains("\nready 0\n"), "the ready gauge follows /readyz");
    n.service.mark_missing("amnesia_dir", false);
    assert!(n.metrics().contains("\nready 1\n"));
    n.service.metrics().set_ledger_degraded(true);
    let r = n.get("/readyz", None);
    assert_eq!(r.status(), 200);
    assert_eq!(r.json["ledger_degraded"], true);
    assert!(n.metrics().contains("\nledger_degraded 1\n"));
}

// ---------------------------------------------------------------------------------------------
// Routing

#[test]
fn unknown_routes_and_wrong_methods() {
    let n = node();
    for url in ["/", "/nope", "/rewarder/epochs/", "/rewarder/epochs/e1/proof/", "/healthz/x"] {
        let a = n.get(url, None);
        assert_eq!((a.status(), a.code()), (404, "not_found"), "{url}");
    }
    for (method, url) in [
        ("POST", "/healthz"),
        ("GET", "/rewarder/inputs"),
        ("POST", "/rewarder/policies"),
        ("GET", "/rewarder/epochs/e1/compute"),
        ("DELETE", "/rewarder/epochs/e1"),
        ("GET", "/rewarder/admin/reload"),
    ] {
        let a = n.call(method, url, None, b"");
        assert_eq!((a.status(), a.code()), (405, "method_not_allowed"), "{method} {url}");
    }
    let a = n.call("POST", "/rewarder/epochs/e1/compute?allocations=maybe", None, b"{}");
    assert_eq!((a.status(), a.code()), (400, "bad_request"));
}

#[test]
fn body_caps_are_enforced_in_the_handler_too() {
    let n = Setup { req_body_max_bytes: 64, ..Setup::default() }.node();
    assert_eq!(n.service.body_limit("PUT", "/rewarder/inputs"), 64 << 20);
    assert_eq!(n.service.body_limit("PUT", "/rewarder/policies"), 64);
    let a = n.put_policy(&[b' '; 65], None);
    assert_eq!((a.status(), a.code()), (413, "body_too_large"));
}

// ---------------------------------------------------------------------------------------------
// Golden vectors end to end

fn golden_through(n: &Node, tenant: &str, authorization: Option<&str>) {
    // Some cases share a document; the second PUT of the same bytes is 200.
    let mut seen = std::collections::HashSet::new();
    let mut first_put = |raw: &[u8]| if seen.insert(raw.to_vec()) { 201 } else { 200 };
    for dir in cases() {
        let name = dir.display().to_string();
        let expected: Value = serde_json::from_slice(&read(&dir, "expected.json")).unwrap();
        let (inputs, policy) = (read(&dir, "inputs.json"), read(&dir, "policy.json"));

        let i = n.put_inputs(&inputs, authorization);
        assert_eq!(i.status(), first_put(&inputs), "{name}: {}", i.json);
        let want = &expected[tenant]["manifest"];
        assert_eq!(i.json["inputs_cid"], want["inputs_cid"], "{name}");
        assert_eq!(i.json["epoch"], want["epoch"], "{name}");
        assert!(i.json["actors"].is_u64() && i.json["events"].is_u64(), "{name}");
        assert_eq!(n.put_inputs(&inputs, authorization).status(), 200, "{name}: second PUT");
        let p = n.put_policy(&policy, authorization);
        assert_eq!(p.status(), first_put(&policy), "{name}: {}", p.json);
        assert_eq!(p.json["policy_hash"], want["policy_hash"], "{name}");
        assert_eq!(p.json["policy_id"], want["policy_id"], "{name}");
        assert_eq!(n.put_policy(&policy, authorization).status(), 200, "{name}: second PUT");

        let epoch = want["epoch"].as_str().unwrap();
        let c = n.compute(epoch, &compute_body(&i.json, &p.json), authorization);
        assert_eq!(c.status(), 200, "{name}: {}", c.json);
        assert_eq!(&c.json["manifest"], want, "{name}");
        assert_eq!(c.json["manifest_digest"], expected[tenant]["manifest_digest"], "{name}");
        assert_eq!(c.json["allocations"], expected["allocations"], "{name}");
        assert_eq!(c.json["ledger"], json!({"status": "dry_run", "accepted": 0, "dup": 0, "pending": 0}));
        assert!(c.json["timing"]["compute_ms"].as_f64().unwrap() >= 0.0);
        verify_signatures(&c.json);

        let g = n.get(&format!("/rewarder/epochs/{epoch}"), authorization);
        assert_eq!(g.status(), 200, "{name}");
        assert_eq!(g.json["manifest"], c.json["manifest"], "{name}");
        assert_eq!(g.json["allocations"], c.json["allocations"], "{name}");

        if let Some(example) = expected.get("proof_example") {
            // The tree does not depend on the tenant, so the example holds for both.
            let actor = example["actor"].as_str().unwrap();
            let url = format!("/rewarder/epochs/{epoch}/proof/{}", encode(actor));
            let pr = n.get(&url, authorization);
            assert_eq!(pr.status(), 200, "{name}: {}", pr.json);
            assert_eq!(pr.json["manifest"], *want, "{name}");
            assert_eq!(pr.json["manifest_digest"], expected[tenant]["manifest_digest"], "{name}");
            assert_eq!(pr.json["actor"], example["actor"], "{name}");
            assert_eq!(pr.json["amount_minor"], example["amount_minor"], "{name}");
            assert_eq!(pr.json["index"], example["index"], "{name}");
            assert_eq!(pr.json["proof"], example["proof"], "{name}");
        }
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn golden_vectors_for_tenant_default_without_auth() {
    let n = node();
    golden_through(&n, "default", None);
}

#[test]
fn golden_vectors_for_tenant_b_with_a_minted_token() {
    let n = Setup { auth: true, ..Setup::default() }.node();
    golden_through(&n, "tenant-b", Some(&token("tenant-b", "compute read")));
}

#[test]
fn invalid_documents_get_their_code_and_nothing_is_stored() {
    let n = node();
    let cases: Vec<Value> =
        serde_json::from_slice(&std::fs::read(vectors().join("invalid.json")).unwrap()).unwrap();
    assert!(cases.len() >= 30);
    for case in &cases {
        let raw = case["raw"].as_str().unwrap().as_bytes();
        let a = match case["doc"].as_str().unwrap() {
            "inputs" => n.put_inputs(raw, None),
            "policy" => n.put_policy(raw, None),
            other => panic!("unknown doc kind {other}"),
        };
        assert_eq!(a.status(), 422, "{case}");
        assert_eq!(a.code(), case["code"], "{case}");
    }
    for raw in [&b"not json"[..], b"", b"{\"schema\":"] {
        let a = n.put_inputs(raw, None);
        assert_eq!((a.status(), a.code()), (400, "malformed_json"));
        let a = n.put_policy(raw, None);
        assert_eq!((a.status(), a.code()), (400, "malformed_json"));
    }
    assert!(n.artifacts.kept.lock().unwrap().is_empty(), "a refused document was kept");
}

// ---------------------------------------------------------------------------------------------
// Compute

#[test]
fn compute_refusals() {
    let n = node();
    let (inputs, policy) = basic();
    let i = n.put_inputs(&inputs, None).json;
    let p = n.put_policy(&policy, None).json;
    let good = compute_body(&i, &p);
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let cases = [
        ("2026-11-29", with("inputs_cid", json!("b3:00")), 404, "unknown_inputs"),
        ("2026-11-29", with("policy_hash", json!("b3:00")), 404, "unknown_policy"),
        ("2026-11-29", with("policy_id", json!("rev43")), 422, "policy_mismatch"),
        ("2026-11-28", good.clone(), 422, "epoch_mismatch"),
        ("2026-11-29", with("dry_run", json!("yes")), 422, "schema"),
        ("2026-11-29", with("extra", json!(1)), 422, "schema"),
        ("2026-11-29", with("inputs_cid", json!(7)), 422, "schema"),
        ("2026-11-29", json!({"policy_id": "rev42"}), 422, "schema"),
        ("2026-11-29", json!([1, 2]), 422, "schema"),
    ];
    for (epoch, body, status, code) in cases {
        let a = n.compute(epoch, &body, None);
        assert_eq!((a.status(), a.code()), (status, code), "{body}");
    }
    let a = n.compute("2026-11-28", &good, None);
    assert_eq!(a.json["error"]["message"], "inputs epoch is 2026-11-29, path says 2026-11-28");
    let a = n.call("POST", "/rewarder/epochs/2026-11-29/compute", None, b"{nope");
    assert_eq!((a.status(), a.code()), (400, "malformed_json"));
    // Nothing was computed by any of them.
    assert_eq!(n.get("/rewarder/epochs/2026-11-29", None).code(), "unknown_epoch");
}

#[test]
fn the_same_request_is_the_same_run() {
    let n = node();
    let (inputs, policy) = basic();
    let first = n.run(&inputs, &policy, None);
    n.clock.advance(Duration::from_secs(5));
    let mut body = compute_body(&n.put_inputs(&inputs, None).json, &n.put_policy(&policy, None).json);
    body["dry_run"] = json!(true);
    let second = n.compute("2026-11-29", &body, None);
    assert_eq!(second.status(), 200);
    for field in ["manifest", "manifest_digest", "allocations", "signatures", "timing"] {
        assert_eq!(first.json[field], second.json[field], "{field}");
    }
    let text = n.metrics();
    assert_eq!(metric(&text, "reward_runs_total{status=\"ok\"}"), 1);
    assert_eq!(metric(&text, "reward_runs_total{status=\"cached\"}"), 1);
    assert_eq!(metric(&text, "reward_compute_latency_seconds_count{scale=\"S\"}"), 1);
    assert_eq!(metric(&text, "reward_invariant_fail_total"), 0);
}

// ---------------------------------------------------------------------------------------------
// Compare (API.md §1.3)

/// The waterfill vector with its golden second policy (testing/compare/waterfill).
fn waterfill_pair() -> (Vec<u8>, Vec<u8>, Vec<u8>, Value) {
    let dir = vectors().join("waterfill");
    let compare = vectors().join("../compare/waterfill");
    let expected = serde_json::from_slice(&read(&compare, "expected.json")).unwrap();
    (read(&dir, "inputs.json"), read(&dir, "policy.json"), read(&compare, "policy-b.json"), expected)
}

impl Node {
    /// Uploads the inputs and both policies; the compare body naming them.
    fn upload_pair(&self, inputs: &[u8], a: &[u8], b: &[u8], authorization: Option<&str>) -> Value {
        let i = self.put_inputs(inputs, authorization).json;
        let (pa, pb) = (self.put_policy(a, authorization).json, self.put_policy(b, authorization).json);
        json!({
            "inputs_cid": i["inputs_cid"],
            "policy_a": {"policy_id": pa["policy_id"], "policy_hash": pa["policy_hash"]},
            "policy_b": {"policy_id": pb["policy_id"], "policy_hash": pb["policy_hash"]},
        })
    }

    fn compare(&self, url: &str, body: &Value, authorization: Option<&str>) -> Answer {
        self.call("POST", url, authorization, body.to_string().as_bytes())
    }
}

#[test]
fn compare_answers_the_golden_comparison_and_stores_sends_signs_nothing() {
    let n = node();
    let (inputs, a, b, expected) = waterfill_pair();
    let body = n.upload_pair(&inputs, &a, &b, None);
    let kept_before = n.artifacts.kept.lock().unwrap().len();
    let answer = n.compare("/rewarder/epochs/waterfill/compare", &body, None);
    assert_eq!((answer.status(), answer.response.content_type), (200, JSON));
    assert_eq!(answer.json, expected, "the HTTP comparison is the golden one");

    let html = n.compare("/rewarder/epochs/waterfill/compare?format=html", &body, None);
    assert_eq!((html.status(), html.response.content_type), (200, HTML));
    let page = String::from_utf8(html.response.body).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';"));
    for side in ["a", "b"] {
        assert!(page.contains(expected[side]["manifest_digest"].as_str().unwrap()));
    }

    // A what-if is no run of the epoch: nothing stored, kept or sent.
    assert_eq!(n.get("/rewarder/epochs/waterfill", None).code(), "unknown_epoch");
    assert_eq!(n.artifacts.kept.lock().unwrap().len(), kept_before);
    let text = n.metrics();
    assert_eq!(metric(&text, "reward_runs_total{status=\"ok\"}"), 4, "two runs per compare");
    assert_eq!(metric(&text, "reward_compute_latency_seconds_count{scale=\"S\"}"), 4);
    assert_eq!(
        metric(&text, "http_requests_total{route=\"/rewarder/epochs/{epoch}/compare\",code=\"200\"}"),
        2
    );
}

#[test]
fn compare_with_the_same_policy_twice_is_an_empty_diff() {
    let n = node();
    let (inputs, a, _, _) = waterfill_pair();
    let mut body = n.upload_pair(&inputs, &a, &a, None);
    body["top"] = json!(10_000);
    let answer = n.compare("/rewarder/epochs/waterfill/compare", &body, None);
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json["movers"], json!([]));
    assert_eq!(answer.json["change"]["movers"], 0);
    assert_eq!(answer.json["change"]["gini"], "0.000000");
    assert_eq!(answer.json["a"], answer.json["b"]);
}

#[test]
fn compare_refusals_are_the_envelopes_of_compute() {
    let n = node();
    let (inputs, a, b, _) = waterfill_pair();
    let good = n.upload_pair(&inputs, &a, &b, None);
    let with = |path: &[&str], v: Value| {
        let mut body = good.clone();
        match path {
            [k] => body[*k] = v,
            [k, inner] => body[*k][*inner] = v,
            _ => unreachable!(),
        }
        body
    };
    let url = "/rewarder/epochs/waterfill/compare";
    let cases = [
        (url, with(&["inputs_cid"], json!("b3:00")), 404, "unknown_inputs", Some("inputs_cid")),
        (
            url,
            with(&["policy_a", "policy_hash"], json!("b3:00")),
            404,
            "unknown_policy",
            Some("policy_a.policy_hash"),
        ),
        (
            url,
            with(&["policy_b", "policy_hash"], json!("b3:00")),
            404,
            "unknown_policy",
            Some("policy_b.policy_hash"),
        ),
        (
            url,
            with(&["policy_a", "policy_id"], json!("other")),
            422,
            "policy_mismatch",
            Some("policy_a.policy_id"),
        ),
        (
            url,
            with(&["policy_b", "policy_id"], json!("p")),
            422,
            "policy_mismatch",
            Some("policy_b.policy_id"),
        ),
        ("/rewarder/epochs/ties/compare", good.clone(), 422, "epoch_mismatch", Some("epoch")),
        (url, with(&["top"], json!(10_001)), 422, "schema", Some("top")),
        (url, with(&["dry_run"], json!(true)), 422, "schema", Some("dry_run")),
        (url, with(&["policy_b"], json!("b3:00")), 422, "schema", Some("policy_b")),
        (url, json!([]), 422, "schema", None),
        ("/rewarder/epochs/waterfill/compare?format=pdf", good.clone(), 400, "bad_request", Some("format")),
    ];
    for (url, body, status, code, field) in cases {
        let a = n.compare(url, &body, None);
        assert_eq!((a.status(), a.code()), (status, code), "{url} {body}");
        assert_eq!(a.json["error"]["details"]["field"].as_str(), field, "{body}");
    }
    let a = n.call("POST", url, None, b"{nope");
    assert_eq!((a.status(), a.code()), (400, "malformed_json"));
    assert_eq!(n.call("GET", url, None, b"").code(), "method_not_allowed");
    assert_eq!(metric(&n.metrics(), "reward_runs_total{status=\"ok\"}"), 0, "no refusal computed");
}

#[test]
fn compare_needs_the_compute_scope_and_sees_only_the_tenants_documents() {
    let n = Setup { auth: true, ..Setup::default() }.node();
    let (inputs, a, b, _) = waterfill_pair();
    let (owner, other) = (token("tenant-a", "compute"), token("tenant-b", "compute"));
    let body = n.upload_pair(&inputs, &a, &b, Some(&owner));
    let url = "/rewarder/epochs/waterfill/compare";
    assert_eq!(n.compare(url, &body, None).code(), "unauthenticated");
    assert_eq!(n.compare(url, &body, Some(&token("tenant-a", "read"))).code(), "forbidden");
    assert_eq!(n.compare(url, &body, Some(&other)).code(), "unknown_inputs");
    let answer = n.compare(url, &body, Some(&owner));
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json["tenant"], "tenant-a");
    assert_eq!(answer.json["b"]["manifest"]["tenant"], "tenant-a");
}

#[test]
fn compare_is_held_by_the_inflight_cap() {
    let n = Setup { hot: HotKnobs { max_inflight: 0, ..HotKnobs::default() }, ..Setup::default() }.node();
    let (inputs, a, b, _) = waterfill_pair();
    let body = n.upload_pair(&inputs, &a, &b, None);
    let answer = n.compare("/rewarder/epochs/waterfill/compare", &body, None);
    assert_eq!((answer.status(), answer.code()), (503, "overloaded"));
    assert_eq!(metric(&n.metrics(), "rejected_total{reason=\"inflight\"}"), 1);
}

/// An [`Overlap`] on a second thread that counts its uses.
#[derive(Default)]
struct CountingThreads(AtomicU64);

impl Overlap for CountingThreads {
    fn both(&self, side: &mut (dyn FnMut() + Send), main: &mut dyn FnMut()) {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::thread::scope(|scope| {
            scope.spawn(side);
            main();
        });
    }
}

/// An inputs document of more than `bytes` bytes (compact events), with an event id varied
/// by `salt` (same length for salts of the same number of digits).
fn big_inputs(bytes: usize, salt: u64) -> Vec<u8> {
    let mut doc = String::from(
        r#"{"schema":"rewarder.inputs.v1","epoch":"big","pool_minor":"1000000","kinds":["k","j"],"actors":["a","b","c"],"events":["#,
    );
    let mut i = 0u64;
    while doc.len() < bytes {
        let id = if i == 0 { salt } else { 1_000_000 + i };
        doc.push_str(&format!("[{id},{},{},{}],", i % 3, i % 2, i % 1000));
        i += 1;
    }
    doc.pop();
    doc.push_str("]}");
    doc.into_bytes()
}

#[test]
fn large_uploads_are_hashed_once_beside_the_parse_and_re_uploads_skip_the_parse() {
    let threads = Arc::new(CountingThreads::default());
    let n = Setup { overlap: Some(threads.clone()), ..Setup::default() }.node();
    let inputs = big_inputs(2 << 20, 11);
    let first = n.put_inputs(&inputs, None);
    assert_eq!(first.status(), 201, "{}", first.json);
    assert_eq!(first.json["inputs_cid"], rewarder_core::commit::content_id(&inputs));
    // Hashed on the second thread, once.
    assert_eq!(threads.0.load(Ordering::SeqCst), 1);
    // The same bytes again: hashed first (a stored document of that length), answered 200.
    let again = n.put_inputs(&inputs, None);
    assert_eq!((again.status(), &again.json), (200, &first.json));
    assert_eq!(threads.0.load(Ordering::SeqCst), 1);
    // Other bytes of the same length: hashed first, not found, parsed and stored.
    let other = big_inputs(2 << 20, 12);
    assert_eq!(other.len(), inputs.len());
    let third = n.put_inputs(&other, None);
    assert_eq!(third.status(), 201, "{}", third.json);
    assert_eq!(third.json["inputs_cid"], rewarder_core::commit::content_id(&other));
    assert_ne!(third.json["inputs_cid"], first.json["inputs_cid"]);
    // A refused large document is refused the same way on either path.
    let mut bad = big_inputs(2 << 20, 13);
    let at = bad.len() - 3;
    bad[at] = b'x';
    assert_eq!(n.put_inputs(&bad, None).code(), "malformed_json");
    assert_eq!(Setup::default().node().put_inputs(&bad, None).code(), "malformed_json");
}

/// A large upload is written to the host beside its parse, before the service knows whether it
/// stores it: when the parse or the tenant's quota refuses it, the artifact is taken back, and
/// nothing is stored or counted; a good one is kept once and re-uploads as before.
#[test]
fn a_refused_large_upload_takes_back_its_artifact_and_stores_nothing() {
    use rewarder_core::commit::content_id;
    let threads = Arc::new(CountingThreads::default());
    let n = Setup { overlap: Some(threads.clone()), ..Setup::default() }.node();
    let mut bad = big_inputs(2 << 20, 13);
    let at = bad.len() - 3;
    bad[at] = b'x';
    for _ in 0..2 {
        // Refused each time: the first refusal stored nothing to answer the second from.
        assert_eq!(n.put_inputs(&bad, None).code(), "malformed_json");
    }
    assert_eq!(threads.0.load(Ordering::SeqCst), 2, "hashed beside each parse");
    assert!(n.artifacts.kept.lock().unwrap().is_empty());
    // Written and taken back, or never written when the parse failed before the hash was done.
    let discarded = n.artifacts.discarded.lock().unwrap().clone();
    assert!(discarded.iter().all(|d| *d == (content_id(&bad), bad.len())), "{discarded:?}");
    // A host without a second thread writes before it parses: always written, then taken back.
    let sequential = Setup::default().node();
    assert_eq!(sequential.put_inputs(&bad, None).code(), "malformed_json");
    assert!(sequential.artifacts.kept.lock().unwrap().is_empty());
    assert_eq!(*sequential.artifacts.discarded.lock().unwrap(), vec![(content_id(&bad), bad.len())]);
    // Over the tenant's quota: parsed, refused, taken back, and refused again.
    let good = big_inputs(2 << 20, 11);
    let tight =
        Setup { overlap: Some(threads.clone()), tenant_store_max_bytes: Some(64), ..Setup::default() }.node();
    for _ in 0..2 {
        let refused = tight.put_inputs(&good, None);
        assert_eq!((refused.status(), refused.code()), (413, "quota_exceeded"), "{}", refused.json);
    }
    assert!(tight.artifacts.kept.lock().unwrap().is_empty());
    assert_eq!(tight.artifacts.discarded.lock().unwrap().len(), 2);
    assert_eq!(metric(&tight.metrics(), "amnesia_spill_total"), 0);
    // A good one: kept once, under its content id; the re-upload is answered from the store.
    let first = n.put_inputs(&good, None);
    assert_eq!(first.status(), 201, "{}", first.json);
    assert_eq!(*n.artifacts.kept.lock().unwrap(), vec![content_id(&good)]);
    let again = n.put_inputs(&good, None);
    assert_eq!((again.status(), &again.json), (200, &first.json));
    assert_eq!(n.artifacts.kept.lock().unwrap().len(), 1);
    assert_eq!(*n.artifacts.discarded.lock().unwrap(), discarded);
    assert_eq!(metric(&n.metrics(), "amnesia_spill_total"), 0);
    // One the host cannot keep is stored, and counted as a spill once; nothing to take back.
    n.artifacts.refuse.store(true, Ordering::SeqCst);
    assert_eq!(n.put_inputs(&big_inputs(2 << 20, 12), None).status(), 201);
    assert_eq!(metric(&n.metrics(), "amnesia_spill_total"), 1);
    assert_eq!(*n.artifacts.discarded.lock().unwrap(), discarded);
}

#[test]
fn pq_signing_overlaps_the_answer_once_per_run_and_changes_no_byte() {
    let threads = Arc::new(CountingThreads::default());
    let overlapped = Setup { pq: true, overlap: Some(threads.clone()), ..Setup::default() }.node();
    let sequential = Setup { pq: true, ..Setup::default() }.node();
    let mut fresh = 0;
    for case in cases() {
        let (inputs, policy) = (read(&case, "inputs.json"), read(&case, "policy.json"));
        let a = overlapped.run(&inputs, &policy, None);
        let b = sequential.run(&inputs, &policy, None);
        fresh += 1;
        assert_eq!(a.status(), 200, "{}", a.json);
        assert_eq!(a.response.body, b.response.body, "{}", case.display());
        assert!(a.json["signatures"]["ml_dsa_65"]["signature"].is_string());
        verify_signatures(&a.json);
        // The same run again is answered from the store, already signed: no second thread.
        let again = overlapped.run(&inputs, &policy, None);
        assert_eq!(again.response.body, a.response.body);
        let epoch = a.json["manifest"]["epoch"].as_str().unwrap();
        let read_back = overlapped.get(&format!("/rewarder/epochs/{epoch}"), None);
        assert_eq!(read_back.json["signatures"], a.json["signatures"]);
    }
    assert_eq!(threads.0.load(Ordering::SeqCst), fresh);
    // Without PQ keys the Ed25519 signature is made in line.
    let plain = Arc::new(CountingThreads::default());
    let n = Setup { overlap: Some(plain.clone()), ..Setup::default() }.node();
    let (inputs, policy) = basic();
    assert_eq!(n.run(&inputs, &policy, None).status(), 200);
    assert_eq!(plain.0.load(Ordering::SeqCst), 0);
}

#[test]
fn allocations_can_be_left_out() {
    let n = node();
    let (inputs, policy) = basic();
    let i = n.put_inputs(&inputs, None).json;
    let p = n.put_policy(&policy, None).json;
    let c = n.call(
        "POST",
        "/rewarder/epochs/2026-11-29/compute?allocations=false",
        None,
        compute_body(&i, &p).to_string().as_bytes(),
    );
    assert_eq!(c.status(), 200);
    assert!(c.json.get("allocations").is_none());
    assert!(c.json["manifest"].is_object());
    let g = n.get("/rewarder/epochs/2026-11-29?allocations=false", None);
    assert!(g.json.get("allocations").is_none());
    let g = n.get("/rewarder/epochs/2026-11-29?allocations=true", None);
    assert_eq!(g.json["allocations"].as_array().unwrap().len(), 2);
}

#[test]
fn timing_comes_from_the_monotonic_clock() {
    // The fake clock does not move during a compute, so the time is exactly zero.
    let n = node();
    let (inputs, policy) = basic();
    assert_eq!(n.run(&inputs, &policy, None).json["timing"]["compute_ms"], 0.0);
}

#[test]
fn proofs_of_actor_ids_with_reserved_characters() {
    let n = node();
    let actors = ["a/b", "c%2F", "d?e#f", "g+h", "plain"];
    let inputs = json!({
        "schema": "rewarder.inputs.v1", "epoch": "e:1", "pool_minor": "1000", "kinds": ["k"],
        "actors": actors,
        "events": [[1, 0, 0, 5], [2, 1, 0, 6], [3, 2, 0, 7], [4, 3, 0, 8], [5, 4, 0, 9]],
    });
    let policy = br#"{"schema":"rewarder.policy.v1","policy_id":"p","weights":{"k":1}}"#;
    let c = n.run(inputs.to_string().as_bytes(), policy, None);
    assert_eq!(c.status(), 200, "{}", c.json);
    let root_hex =
        c.json["manifest"]["allocations_root"].as_str().unwrap().strip_prefix("b3:").unwrap().to_owned();
    let mut root = [0u8; 32];
    hex::decode_to_slice(root_hex, &mut root).unwrap();
    for actor in actors {
        let p = n.get(&format!("/rewarder/epochs/e%3A1/proof/{}", encode(actor)), None);
        assert_eq!(p.status(), 200, "{actor}: {}", p.json);
        assert_eq!(p.json["actor"], actor);
        let steps: Vec<merkle::ProofStep> = p.json["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(s["hash"].as_str().unwrap(), &mut hash).unwrap();
                merkle::ProofStep { left: s["side"] == "L", hash }
            })
            .collect();
        let amount: u64 = p.json["amount_minor"].as_str().unwrap().parse().unwrap();
        assert!(merkle::verify(&root, actor, amount, &steps), "{actor}");
    }
    // An unencoded slash works too.
    assert_eq!(n.get("/rewarder/epochs/e:1/proof/a/b", None).json["actor"], "a/b");
    let a = n.get("/rewarder/epochs/e:1/proof/nobody", None);
    assert_eq!((a.status(), a.code()), (404, "unknown_actor"));
    let a = n.get("/rewarder/epochs/e:2/proof/plain", None);
    assert_eq!((a.status(), a.code()), (404, "unknown_epoch"));
}

#[test]
fn inflight_cap_refuses_computes_with_overloaded() {
    let n = Setup { hot: HotKnobs { max_inflight: 0, ..HotKnobs::default() }, ..Setup::default() }.node();
    let (inputs, policy) = basic();
    let a = n.run(&inputs, &policy, None);
    assert_eq!((a.status(), a.code()), (503, "overloaded"));
    assert_eq!(a.response.retry_after_s, Some(1));
    let text = n.metrics();
    assert_eq!(metric(&text, "rejected_total{reason=\"inflight\"}"), 1);
    assert_eq!(metric(&text, "inflight"), 0);
}

#[test]
fn documents_are_bounded_by_bytes() {
    let n = Setup { documents_max_bytes: 1, ..Setup::default() }.node();
    let (inputs, policy) = basic();
    // With a one-byte budget only the last document stored survives: the policy evicts the inputs.
    let i = n.put_inputs(&inputs, None);
    let p = n.put_policy(&policy, None);
    assert_eq!((i.status(), p.status()), (201, 201));
    let a = n.compute("2026-11-29", &compute_body(&i.json, &p.json), None);
    assert_eq!((a.status(), a.code()), (404, "unknown_inputs"));
    assert_eq!(n.put_inputs(&inputs, None).status(), 201, "evicted, so stored anew");
}

#[test]
fn runs_are_bounded_by_count() {
    let n = Setup { runs_max: 1, ..Setup::default() }.node();
    let (inputs, policy) = basic();
    assert_eq!(n.run(&inputs, &policy, None).status(), 200);
    let other = String::from_utf8(inputs).unwrap().replace("2026-11-29", "2026-11-30");
    assert_eq!(n.run(other.as_bytes(), &policy, None).status(), 200);
    assert_eq!(n.get("/rewarder/epochs/2026-11-30", None).status(), 200);
    assert_eq!(n.get("/rewarder/epochs/2026-11-29", None).code(), "unknown_epoch");
}

#[test]
fn runs_are_bounded_by_bytes() {
    // Each run of the basic case weighs a few kilobytes (estimated): room for one, not two.
    let n = Setup { runs_max_bytes: 3_000, ..Setup::default() }.node();
    let (inputs, policy) = basic();
    assert_eq!(n.run(&inputs, &policy, None).status(), 200);
    assert_eq!(n.get("/rewarder/epochs/2026-11-29", None).status(), 200);
    let other = String::from_utf8(inputs.clone()).unwrap().replace("2026-11-29", "2026-11-30");
    assert_eq!(n.run(other.as_bytes(), &policy, None).status(), 200);
    assert_eq!(n.get("/rewarder/epochs/2026-11-30", None).status(), 200);
    assert_eq!(n.get("/rewarder/epochs/2026-11-29", None).code(), "unknown_epoch");
    // A run heavier than the whole bound is still answered, and kept alone until the next.
    let tiny = Setup { runs_max_bytes: 1, ..Setup::default() }.node();
    assert_eq!(tiny.run(&inputs, &policy, None).status(), 200);
    assert_eq!(tiny.get("/rewarder/epochs/2026-11-29", None).status(), 200);
}

#[test]
fn artifacts_are_kept_and_spills_counted() {
    let n = node();
    let (inputs, policy) = basic();
    n.run(&inputs, &policy, None);
    assert_eq!(n.artifacts.kept.lock().unwrap().len(), 3, "inputs, policy, run");
    n.artifacts.refuse.store(true, Ordering::SeqCst);
    let other = String::from_utf8(inputs).unwrap().replace("2026-11-29", "2026-11-30");
    assert_eq!(n.run(other.as_bytes(), &policy, None).status(), 200);
    assert_eq!(metric(&n.metrics(), "amnesia_spill_total"), 2, "new inputs and new run");
}

// ---------------------------------------------------------------------------------------------
// Tenants and tokens

#[test]
fn tenants_never_see_each_other() {
    let n = Setup { auth: true, ..Setup::default() }.node();
    let (a, b) = (token("tenant-a", "compute read"), token("tenant-b", "compute read"));
    let (inputs, policy) = basic();
    let ca = n.run(&inputs, &policy, Some(&a));
    assert_eq!(ca.status(), 200);
    assert_eq!(ca.json["manifest"]["tenant"], "tenant-a");
    let body = json!({
        "inputs_cid": ca.json["manifest"]["inputs_cid"],
        "policy_id": "rev42",
        "policy_hash": ca.json["manifest"]["policy_hash"],
    });
    assert_eq!(n.compute("2026-11-29", &body, Some(&b)).code(), "unknown_inputs");
    assert_eq!(n.get("/rewarder/epochs/2026-11-29", Some(&b)).code(), "unknown_epoch");
    assert_eq!(n.get("/rewarder/epochs/2026-11-29/proof/acct:bob", Some(&b)).code(), "unknown_epoch");
    assert_eq!(n.put_policy(&policy, Some(&b)).status(), 201, "b's own copy is new to b");
    assert_eq!(n.compute("2026-11-29", &body, Some(&b)).code(), "unknown_inputs");
    assert_eq!(n.put_inputs(&inputs, Some(&b)).status(), 201);
    let cb = n.compute("2026-11-29", &body, Some(&b));
    assert_eq!(cb.status(), 200);
    assert_eq!(cb.json["manifest"]["tenant"], "tenant-b");
    assert_ne!(cb.json["manifest"]["run_id"], ca.json["manifest"]["run_id"]);
    assert_eq!(n.get("/rewarder/epochs/2026-11-29", Some(&a)).json["manifest"], ca.json["manifest"]);
}

/// Issue 15: tenant b floods both stores; tenant a, under its fair share of each, keeps its
/// documents, its run and its proofs.
#[test]
fn a_neighbours_floods_leave_a_tenants_documents_and_runs_answerable() {
    let n = Setup { auth: true, documents_max_bytes: 512 << 10, runs_max: 5, ..Setup::default() }.node();
    let (a, b) = (token("tenant-a", "compute read"), token("tenant-b", "compute read"));
    let (inputs, policy) = basic();
    let (ia, pa) = (n.put_inputs(&inputs, Some(&a)), n.put_policy(&policy, Some(&a)));
    let body_a = compute_body(&ia.json, &pa.json);
    assert_eq!(n.compute("2026-11-29", &body_a, Some(&a)).status(), 200);
    // Eight large documents: more than the whole store holds.
    let flood: Vec<Answer> =
        (0..8).map(|i| n.put_inputs(&large_inputs(&format!("big-{i}"), 4_000), Some(&b))).collect();
    assert!(flood.iter().all(|f| f.status() == 201));
    let pb = n.put_policy(&policy, Some(&b));
    let first = n.compute("big-0", &compute_body(&flood[0].json, &pb.json), Some(&b));
    assert_eq!(first.code(), "unknown_inputs", "the flood evicted b's own oldest");
    // Six runs with RUNS_MAX = 5.
    for i in 0..6 {
        assert_eq!(n.run(&basic_of(&format!("b-{i}")), &policy, Some(&b)).status(), 200);
    }
    assert_eq!(n.get("/rewarder/epochs/b-0", Some(&b)).code(), "unknown_epoch", "b's own oldest went");
    // a's documents, run and proofs are all still there.
    let again = n.compute("2026-11-29", &body_a, Some(&a));
    assert_eq!(again.status(), 200, "{}", again.json);
    assert_eq!(metric(&n.metrics(), "reward_runs_total{status=\"cached\"}"), 1);
    assert_eq!(n.get("/rewarder/epochs/2026-11-29", Some(&a)).status(), 200);
    assert_eq!(n.get("/rewarder/epochs/2026-11-29/proof/acct:alice", Some(&a)).status(), 200);
}

#[test]
fn a_document_over_the_tenants_quota_is_413_and_at_the_quota_its_own_oldest_go() {
    let n = Setup { auth: true, tenant_store_max_bytes: Some(32 << 10), ..Setup::default() }.node();
    let (a, b) = (token("tenant-a", "compute read"), token("tenant-b", "compute read"));
    let big = n.put_inputs(&large_inputs("big", 5_000), Some(&a));
    assert_eq!((big.status(), big.code()), (413, "quota_exceeded"), "{}", big.json);
    assert_eq!(big.json["error"]["details"]["quota_bytes"], 32 << 10);
    assert!(big.json["error"]["details"]["document_bytes"].as_u64().unwrap() > 32 << 10);
    assert_eq!(metric(&n.metrics(), "http_requests_total{route=\"/rewarder/inputs\",code=\"413\"}"), 1);
    // b's document, then a hundred of a's: a's quota makes room from a's own oldest.
    let (_, policy) = basic();
    assert_eq!(n.run(&basic_of("b-0"), &policy, Some(&b)).status(), 200);
    let uploads: Vec<Answer> =
        (0..100).map(|i| n.put_inputs(&basic_of(&format!("a-{i}")), Some(&a))).collect();
    assert!(uploads.iter().all(|u| u.status() == 201));
    let pa = n.put_policy(&policy, Some(&a));
    let first = n.compute("a-0", &compute_body(&uploads[0].json, &pa.json), Some(&a));
    assert_eq!(first.code(), "unknown_inputs");
    assert_eq!(n.compute("a-99", &compute_body(&uploads[99].json, &pa.json), Some(&a)).status(), 200);
    assert_eq!(n.run(&basic_of("b-0"), &policy, Some(&b)).status(), 200);
    assert_eq!(metric(&n.metrics(), "reward_runs_total{status=\"cached\"}"), 1, "b's documents stayed");
}

#[test]
fn a_tenant_at_its_runs_quota_loses_its_own_oldest_run() {
    let n = Setup { auth: true, tenant_runs_max: Some(2), ..Setup::default() }.node();
    let (a, b) = (token("tenant-a", "compute read"), token("tenant-b", "compute read"));
    let (_, policy) = basic();
    assert_eq!(n.run(&basic_of("b-0"), &policy, Some(&b)).status(), 200);
    for i in 0..3 {
        assert_eq!(n.run(&basic_of(&format!("a-{i}")), &policy, Some(&a)).status(), 200);
    }
    assert_eq!(n.get("/rewarder/epochs/a-0", Some(&a)).code(), "unknown_epoch");
    assert_eq!(n.get("/rewarder/epochs/a-2", Some(&a)).status(), 200);
    assert_eq!(n.get("/rewarder/epochs/b-0", Some(&b)).status(), 200);
}

#[test]
fn bad_tokens_are_401_and_missing_scopes_403() {
    let n = Setup { auth: true, ..Setup::default() }.node();
    let (inputs, _) = basic();
    let expired = format!("Bearer {}", auth::mint(KID, KEY, "t", "compute", NOW, None));
    let early = format!("Bearer {}", auth::mint(KID, KEY, "t", "compute", NOW + 60, Some(NOW + 30)));
    let forged = format!("Bearer {}", auth::mint(KID, b"wrong key", "t", "compute", NOW + 60, None));
    let unknown_kid = format!("Bearer {}", auth::mint("k9", KEY, "t", "compute", NOW + 60, None));
    let bad_tenant = format!("Bearer {}", auth::mint(KID, KEY, "t/1", "compute", NOW + 60, None));
    for authorization in
        [None, Some("Bearer"), Some("Bearer x.y.z"), Some(&*expired), Some(&*early), Some(&*forged)]
            .into_iter()
            .chain([Some(&*unknown_kid), Some(&*bad_tenant)])
    {
        let a = n.put_inputs(&inputs, authorization);
        assert_eq!((a.status(), a.code()), (401, "unauthenticated"), "{authorization:?}");
    }
    // A rotated-in second key works.
    let old = format!("Bearer {}", auth::mint("old", b"old-key", "t", "compute", NOW + 60, None));
    assert_eq!(n.put_inputs(&inputs, Some(&old)).status(), 201);
    // Time passes: the token that was early is now good, and a good one expires.
    n.clock.advance(Duration::from_secs(30));
    assert_eq!(n.put_inputs(&inputs, Some(&early)).status(), 200);
    n.clock.advance(Duration::from_secs(30));
    assert_eq!(n.put_inputs(&inputs, Some(&early)).code(), "unauthenticated");

    let read = token("t", "read");
    let compute = token("t", "compute");
    for (method, url, authorization) in [
        ("PUT", "/rewarder/inputs", &read),
        ("PUT", "/rewarder/policies", &read),
        ("POST", "/rewarder/epochs/e/compute", &read),
        ("POST", "/rewarder/epochs/e/compare", &read),
        ("GET", "/rewarder/epochs/e", &compute),
        ("GET", "/rewarder/epochs/e/proof/a", &compute),
        ("POST", "/rewarder/admin/reload", &compute),
    ] {
        let a = n.call(method, url, Some(authorization), b"{}");
        assert_eq!((a.status(), a.code()), (403, "forbidden"), "{method} {url}");
    }
}

#[test]
fn rate_limit_clamps_one_tenant_while_another_passes() {
    let n =
        Setup { auth: true, hot: HotKnobs { tenant_rps_max: 2, ..HotKnobs::default() }, ..Setup::default() }
            .node();
    let (a, b) = (token("tenant-a", "read"), token("tenant-b", "read"));
    let url = "/rewarder/epochs/e1";
    assert_eq!(n.get(url, Some(&a)).status(), 404);
    assert_eq!(n.get(url, Some(&a)).status(), 404);
    let limited = n.get(url, Some(&a));
    assert_eq!((limited.status(), limited.code()), (429, "rate_limited"));
    assert_eq!(limited.response.retry_after_s, Some(1));
    assert_eq!(limited.json["error"]["details"]["retry_after"], 1);
    assert_eq!(n.get(url, Some(&b)).status(), 404, "tenant-b is not clamped");
    assert_eq!(n.get("/healthz", None).status(), 200, "probes are not clamped");
    n.clock.advance(Duration::from_millis(500));
    assert_eq!(n.get(url, Some(&a)).status(), 404, "one token back after half a second at 2/s");
    assert_eq!(n.get(url, Some(&a)).status(), 429);
    assert_eq!(metric(&n.metrics(), "rejected_total{reason=\"rate_limited\"}"), 2);
}

// ---------------------------------------------------------------------------------------------
// Reload

#[test]
fn reload_swaps_knobs_or_keeps_the_old_ones() {
    let n = node();
    let start = n.service.hot();
    let new =
        HotKnobs { tenant_rps_max: 7, max_inflight: 3, work_queue_max: 11, ledger_quarantine_only: true };
    *n.reload.next.lock().unwrap() = Ok(new);
    let a = n.call("POST", "/rewarder/admin/reload", None, b"");
    assert_eq!(a.status(), 200);
    assert_eq!(
        a.json,
        json!({"tenant_rps_max": 7, "max_inflight": 3, "work_queue_max": 11, "ledger_quarantine_only": true})
    );
    assert_eq!(n.service.hot(), new);
    assert_eq!(metric(&n.metrics(), "work_queue_max"), 11, "the gauge follows the knob");
    assert_eq!(metric(&n.metrics(), "ledger_quarantine_only"), 1, "and the switch");

    *n.reload.next.lock().unwrap() = Err("TENANT_RPS_MAX=abc is not a number".into());
    let a = n.call("POST", "/rewarder/admin/reload", None, b"");
    assert_eq!((a.status(), a.code()), (400, "bad_request"));
    assert!(a.json["error"]["message"].as_str().unwrap().contains("TENANT_RPS_MAX=abc"));
    assert_eq!(a.json["error"]["details"]["kept"]["tenant_rps_max"], 7);
    assert_eq!(n.service.hot(), new);
    assert_eq!(metric(&n.metrics(), "work_queue_max"), 11, "a refused reload keeps the gauge");
    assert!(n.service.reload_now().is_err());

    *n.reload.next.lock().unwrap() = Ok(start);
    assert_eq!(n.service.reload_now(), Ok(start));
    assert_eq!(n.service.hot(), start);
}

// ---------------------------------------------------------------------------------------------
// Metrics

const METRIC_NAMES: [&str; 17] = [
    "reward_compute_latency_seconds",
    "reward_runs_total",
    "reward_invariant_fail_total",
    "ledger_intents_total",
    "ledger_egress_latency_seconds",
    "ledger_egress_errors_total",
    "ledger_degraded",
    "ledger_quarantine_only",
    "quarantine_queue_depth",
    "queue_depth",
    "work_queue_max",
    "ready",
    "inflight",
    "rejected_total",
    "http_requests_total",
    "amnesia_spill_total",
    "build_info",
];

#[test]
fn metrics_names_each_appear_exactly_once_with_bounded_labels() {
    let n = node();
    let (inputs, policy) = basic();
    n.run(&inputs, &policy, None);
    n.get("/rewarder/epochs/2026-11-29/proof/acct:bob", None);
    n.get("/no/such/acct:secret", None);
    n.service.record_http("/rewarder/epochs/2026-11-29/compute?allocations=false", 413);
    n.service.record_http("/rewarder/inputs", 415);
    n.service.metrics().set_queue_depth(3);
    n.service.metrics().reject(rewarder_core::service::Rejection::QueueFull);
    n.service.metrics().ledger_intents(rewarder_core::service::IntentResult::Accepted, 2);
    let text = n.metrics();
    for name in METRIC_NAMES {
        let types = text.lines().filter(|l| l.starts_with(&format!("# TYPE {name} "))).count();
        assert_eq!(types, 1, "# TYPE {name}");
    }
    assert!(!text.contains("acct:"), "a raw path leaked into a label");
    assert_eq!(metric(&text, "http_requests_total{route=\"/rewarder/inputs\",code=\"201\"}"), 1);
    assert_eq!(metric(&text, "http_requests_total{route=\"/rewarder/inputs\",code=\"415\"}"), 1);
    assert_eq!(
        metric(&text, "http_requests_total{route=\"/rewarder/epochs/{epoch}/compute\",code=\"200\"}"),
        1
    );
    assert_eq!(
        metric(&text, "http_requests_total{route=\"/rewarder/epochs/{epoch}/compute\",code=\"413\"}"),
        1
    );
    assert_eq!(
        metric(&text, "http_requests_total{route=\"/rewarder/epochs/{epoch}/proof/{actor}\",code=\"200\"}"),
        1
    );
    assert_eq!(metric(&text, "http_requests_total{route=\"unmatched\",code=\"404\"}"), 1);
    assert_eq!(metric(&text, "queue_depth"), 3);
    assert_eq!(metric(&text, "rejected_total{reason=\"queue_full\"}"), 1);
    assert_eq!(metric(&text, "ledger_intents_total{result=\"accepted\"}"), 2);
    assert_eq!(metric(&text, "reward_runs_total{status=\"ok\"}"), 1);
    assert_eq!(
        metric(
            &text,
            &format!("build_info{{version=\"{}\",profile=\"micronode\"}}", env!("CARGO_PKG_VERSION"))
        ),
        1
    );
    assert_eq!(
        Service::route_label("/rewarder/epochs/x/proof/y/z"),
        "/rewarder/epochs/{epoch}/proof/{actor}"
    );
}

#[test]
fn service_is_shareable_across_threads() {
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<Service>();
    let n = Arc::new(node());
    let (inputs, policy) = basic();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (n, inputs, policy) = (Arc::clone(&n), inputs.clone(), policy.clone());
            std::thread::spawn(move || n.run(&inputs, &policy, None).json["manifest_digest"].clone())
        })
        .collect();
    let digests: Vec<Value> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
}

// ---------------------------------------------------------------------------------------------
// Robustness

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Whatever arrives, the answer is a known status with a JSON (or metrics) body, and the
    /// handler does not panic.
    #[test]
    fn any_request_gets_a_well_formed_answer(
        method in proptest::sample::select(vec!["GET", "PUT", "POST", "DELETE", "get", ""]),
        url in proptest::prop_oneof![
            "\\PC{0,40}",
            "/rewarder/epochs/[a-z0-9%/:?#=&.-]{0,30}",
            "/rewarder/epochs/e1/(compute|proof/[%0-9A-Fa-z/?#]{0,12})(\\?allocations=[a-z01]{0,6})?",
        ],
        body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        authorization in proptest::option::of("\\PC{0,80}"),
    ) {
        let n = Setup { auth: true, ..Setup::default() }.node();
        let request = Request { method, url: &url, authorization: authorization.as_deref(), body: &body, corr_id: "c" };
        let response = n.service.handle(&request);
        proptest::prop_assert!([200, 201, 400, 401, 403, 404, 405, 413, 422, 429, 503].contains(&response.status));
        if response.content_type == JSON {
            proptest::prop_assert!(serde_json::from_slice::<Value>(&response.body).is_ok());
        }
    }

    /// Compute bodies of any shape, on a node holding the basic documents, never panic.
    #[test]
    fn any_compute_body_gets_a_well_formed_answer(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let n = node();
        let (inputs, policy) = basic();
        n.put_inputs(&inputs, None);
        n.put_policy(&policy, None);
        let a = n.call("POST", "/rewarder/epochs/2026-11-29/compute", None, &body);
        proptest::prop_assert!([200, 400, 404, 422].contains(&a.status()));
    }
}
