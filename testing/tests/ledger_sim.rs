//! `rewarder-testkit ledger-sim` end to end: the built binary on `127.0.0.1:0`, driven with
//! hand-written HTTP/1.1 over `std::net::TcpStream`. Every wait is bounded; every child is
//! killed when its guard drops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rewarder_core::commit::intent_key;
use serde_json::{Value, json};

const IO_TIMEOUT: Duration = Duration::from_secs(10);
const TENANT: &str = "default";
const EPOCH: &str = "2026-11-29";

/// A running `ledger-sim` child, killed on drop.
struct Sim {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Sim {
    /// Starts `ledger-sim --bind 127.0.0.1:0 ARGS…` and waits (bounded) for its address.
    fn start(args: &[&str]) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rewarder-testkit"))
            .args(["ledger-sim", "--bind", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rewarder-testkit ledger-sim");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let lines = Arc::clone(&stderr);
        // Drains stderr for the child's whole life, so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let addr = wait_for_address(&rx).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ledger-sim did not report its address: {:?}", stderr.lock().unwrap())
        });
        Sim { child, addr, stderr }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Vec<u8>), String> {
        call(self.addr, method, path, body.map(|b| b.to_string().into_bytes()).as_deref())
    }

    /// A call that must get an answer with a JSON body.
    fn json(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let (status, bytes) =
            self.call(method, path, body).unwrap_or_else(|e| panic!("{method} {path}: no answer: {e}"));
        let v = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("{method} {path}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes))
        });
        (status, v)
    }

    fn stats(&self) -> Value {
        let (status, v) = self.json("GET", "/v1/stats", None);
        assert_eq!(status, 200, "{v}");
        v
    }

    fn register(&self, tenant: &str, epoch: &str, run: &Run) -> (u16, Value) {
        self.json("PUT", &format!("/v1/runs/{tenant}/{epoch}"), Some(&run.registration()))
    }

    fn post(&self, intents: &[Value]) -> (u16, Value) {
        self.json("POST", "/v1/intents", Some(&json!({ "intents": intents })))
    }

    fn signal(&self, name: &str) {
        let ok =
            Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// Waits (bounded) for the child to exit.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "ledger-sim did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash.
    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.wait_exit();
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_address(rx: &Receiver<String>) -> Option<SocketAddr> {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let line = rx.recv_timeout(deadline.checked_duration_since(Instant::now())?).ok()?;
        if let Some(addr) = line.strip_prefix("ledger-sim listening on http://") {
            return addr.parse().ok();
        }
    }
}

/// One HTTP/1.1 exchange on a fresh connection; `Err` when no complete answer comes back.
fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>), String> {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(&[head.as_bytes(), body].concat()).map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("connection closed without an answer")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status =
        head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(format!("bad status line: {head}"))?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
        })
        .ok_or("no Content-Length")?;
    let body = raw[split + 4..].to_vec();
    assert_eq!(body.len(), len, "{head}");
    Ok((status, body))
}

fn b3(c: char) -> String {
    format!("b3:{}", c.to_string().repeat(64))
}

/// A run as the rewarder would register it.
struct Run {
    run_id: String,
    digest: String,
    payouts: Vec<(String, u64)>,
}

impl Run {
    fn new(id: char, payouts: &[(&str, u64)]) -> Run {
        Run {
            run_id: b3(id),
            digest: format!("b3:{}{id}", "d".repeat(63)),
            payouts: payouts.iter().map(|&(a, m)| (a.to_owned(), m)).collect(),
        }
    }

    fn registration(&self) -> Value {
        json!({
            "run_id": self.run_id,
            "manifest_digest": self.digest,
            "payout_total_minor": self.payouts.iter().map(|p| p.1).sum::<u64>().to_string(),
            "payees": self.payouts.len(),
        })
    }

    fn intent(&self, tenant: &str, epoch: &str, actor: &str, amount: u64) -> Value {
        json!({
            "idempotency_key": intent_key(tenant, epoch, actor),
            "tenant": tenant,
            "epoch": epoch,
            "actor": actor,
            "amount_minor": amount.to_string(),
            "run_id": self.run_id,
            "manifest_digest": self.digest,
        })
    }

    fn intents(&self) -> Vec<Value> {
        self.payouts.iter().map(|(a, m)| self.intent(TENANT, EPOCH, a, *m)).collect()
    }
}

fn alice_bob_carol() -> Run {
    Run::new('a', &[("acct:alice", 400), ("acct:bob", 150), ("acct:carol", 50)])
}

fn results(v: &Value) -> Vec<(String, String)> {
    v["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {v}"))
        .iter()
        .map(|r| {
            (r["idempotency_key"].as_str().unwrap().to_owned(), r["result"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn verdicts(v: &Value) -> Vec<String> {
    results(v).into_iter().map(|(_, r)| r).collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ledger-sim-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn registration_201_200_409() {
    let sim = Sim::start(&[]);
    let run = alice_bob_carol();
    let (status, v) = sim.register(TENANT, EPOCH, &run);
    assert_eq!(status, 201, "{v}");
    assert_eq!(v, json!({"status": "registered", "tenant": TENANT, "epoch": EPOCH, "run_id": run.run_id}));
    let (status, v) = sim.register(TENANT, EPOCH, &run);
    assert_eq!((status, v["status"].as_str()), (200, Some("already_registered")), "{v}");

    let (status, v) = sim.register(TENANT, EPOCH, &Run::new('b', &[("acct:alice", 1)]));
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"]["code"], "epoch_conflict");
    assert_eq!(v["error"]["details"]["run_id"], run.run_id.as_str());

    // The same run id with another manifest is a client defect, not "the same run".
    let mut other_digest = run.registration();
    other_digest["manifest_digest"] = json!(b3('9'));
    let (status, v) = sim.json("PUT", &format!("/v1/runs/{TENANT}/{EPOCH}"), Some(&other_digest));
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("run_mismatch")), "{v}");

    // Other tenants and epochs are independent; path segments are percent-decoded.
    assert_eq!(sim.register("tenant-b", EPOCH, &Run::new('b', &[("x", 1)])).0, 201);
    let (status, v) = sim.register(TENANT, "2026%3A11", &run);
    assert_eq!((status, v["epoch"].as_str()), (201, Some("2026:11")), "{v}");

    for (path, body) in [
        (format!("/v1/runs/{TENANT}/{EPOCH}"), json!({"run_id": run.run_id})),
        (
            format!("/v1/runs/{TENANT}/{EPOCH}"),
            json!({"run_id": "b3:xyz", "manifest_digest": b3('1'), "payout_total_minor": "1", "payees": 1}),
        ),
        (format!("/v1/runs/bad%20tenant/{EPOCH}"), run.registration()),
        (format!("/v1/runs/{TENANT}/bad%2Fepoch"), run.registration()),
    ] {
        let (status, v) = sim.json("PUT", &path, Some(&body));
        assert_eq!((status, v["error"]["code"].as_str()), (400, Some("bad_request")), "{path} {body}: {v}");
    }
    let (status, bytes) = sim.call("PUT", &format!("/v1/runs/{TENANT}/{EPOCH}"), None).unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("malformed_json")), "{v}");

    let stats = sim.stats();
    let epochs: Vec<(&str, &str)> = stats["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["tenant"].as_str().unwrap(), e["epoch"].as_str().unwrap()))
        .collect();
    assert_eq!(epochs, [(TENANT, "2026-11-29"), (TENANT, "2026:11"), ("tenant-b", EPOCH)], "sorted: {stats}");
    assert_eq!(
        stats["epochs"][0],
        json!({
            "tenant": TENANT, "epoch": EPOCH, "run_id": run.run_id, "manifest_digest": run.digest,
            "payout_total_minor": "600", "payees": 3, "total_minor": "0", "intents": 0,
        })
    );
    assert_eq!(stats["requests"], 11, "every call but /v1/stats: {stats}");
}

#[test]
fn intents_accepted_dup_conflict_in_request_order() {
    let sim = Sim::start(&[]);
    let run = alice_bob_carol();
    assert_eq!(sim.register(TENANT, EPOCH, &run).0, 201);
    let [a, b, c] = <[Value; 3]>::try_from(run.intents()).unwrap();

    let (status, v) = sim.post(&[a.clone(), b.clone()]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        results(&v),
        [
            (intent_key(TENANT, EPOCH, "acct:alice"), "accepted".to_owned()),
            (intent_key(TENANT, EPOCH, "acct:bob"), "accepted".to_owned()),
        ]
    );
    // A retry with one more intent, an intent whose amount changed, and a key twice in one batch.
    let a_more = run.intent(TENANT, EPOCH, "acct:alice", 401);
    let (status, v) = sim.post(&[b.clone(), c.clone(), a_more, c.clone(), a.clone()]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(verdicts(&v), ["dup", "accepted", "conflict", "dup", "dup"]);
    assert_eq!(results(&v)[1].0, intent_key(TENANT, EPOCH, "acct:carol"));
    let (status, v) = sim.post(&[]);
    assert_eq!((status, v), (200, json!({"results": []})));

    let stats = sim.stats();
    assert_eq!(stats["results"], json!({"accepted": 3, "dup": 3, "conflict": 1}), "{stats}");
    assert_eq!(stats["keys"], 3);
    assert_eq!(stats["requests"], 4);
    assert_eq!(stats["epochs"][0]["total_minor"], "600", "the conflicting amount is not paid: {stats}");
    assert_eq!(stats["epochs"][0]["intents"], 3);
    assert_eq!(stats["epochs"][0]["payout_total_minor"], "600");
}

#[test]
fn bad_or_unregistered_batches_are_refused_whole() {
    let sim = Sim::start(&[]);
    let run = alice_bob_carol();
    let intents = run.intents();
    let (status, v) = sim.post(&intents);
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("run_not_registered")), "{v}");
    assert_eq!(sim.register(TENANT, EPOCH, &run).0, 201);

    let intruder = Run::new('b', &[("acct:dave", 1)]);
    let (status, v) = sim.post(&[intents[0].clone(), intruder.intent(TENANT, EPOCH, "acct:dave", 1)]);
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("epoch_conflict")), "{v}");
    assert_eq!(v["error"]["details"]["index"], 1);

    let mut wrong_key = intents[1].clone();
    wrong_key["idempotency_key"] = json!(intent_key(TENANT, "other-epoch", "acct:bob"));
    let mut extra_field = intents[2].clone();
    extra_field["memo"] = json!("hi");
    let mut numeric_amount = intents[2].clone();
    numeric_amount["amount_minor"] = json!(50);
    for (bad, field) in
        [(wrong_key, "idempotency_key"), (extra_field, "memo"), (numeric_amount, "amount_minor")]
    {
        let (status, v) = sim.post(&[intents[0].clone(), bad]);
        assert_eq!((status, v["error"]["code"].as_str()), (400, Some("bad_request")), "{v}");
        assert_eq!(
            (v["error"]["details"]["index"].as_u64(), v["error"]["details"]["field"].as_str()),
            (Some(1), Some(field))
        );
    }
    let (status, bytes) = call(sim.addr, "POST", "/v1/intents", Some(b"{\"intents\": [")).unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("malformed_json")), "{v}");
    let (status, v) = sim.json("POST", "/v1/intents", Some(&json!({"intents": {}})));
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("bad_request")), "{v}");

    let (status, v) = sim.json("GET", "/v1/nope", None);
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("not_found")), "{v}");
    let (status, v) = sim.json("GET", "/v1/intents", None);
    assert_eq!((status, v["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{v}");

    let stats = sim.stats();
    assert_eq!(stats["keys"], 0, "nothing applied: {stats}");
    assert_eq!(stats["results"], json!({"accepted": 0, "dup": 0, "conflict": 0}));
    assert_eq!(stats["epochs"][0]["intents"], 0);
}

#[test]
fn health() {
    let sim = Sim::start(&[]);
    assert_eq!(sim.json("GET", "/v1/health", None), (200, json!({"ok": true})));
    assert_eq!(sim.json("POST", "/v1/health", None).0, 405);
}

#[test]
fn journal_survives_kill_9_and_restart_exactly_once() {
    let dir = scratch("journal");
    let journal = dir.join("ledger.jsonl");
    let j = journal.to_str().unwrap();
    let run = alice_bob_carol();
    let intents = run.intents();

    let sim = Sim::start(&["--journal", j]);
    assert_eq!(sim.register(TENANT, EPOCH, &run).0, 201);
    assert_eq!(verdicts(&sim.post(&intents[..2]).1), ["accepted", "accepted"]);
    assert_eq!(verdicts(&sim.post(&intents[..2]).1), ["dup", "dup"], "dups are not journaled");
    let before = sim.stats();
    sim.kill_9();

    let lines = std::fs::read_to_string(&journal).unwrap();
    let records: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2, "{lines}");
    assert_eq!(records[0]["op"], "run");
    assert_eq!(records[0]["run_id"], run.run_id.as_str());
    assert_eq!(records[1], json!({"op": "intents", "intents": intents[..2]}));

    // A crash in the middle of writing the next request's line.
    let torn = format!("{{\"op\":\"intents\",\"intents\":[{}", intents[2]);
    std::fs::OpenOptions::new().append(true).open(&journal).unwrap().write_all(torn.as_bytes()).unwrap();

    let sim = Sim::start(&["--journal", j]);
    let after = sim.stats();
    assert_eq!(after["epochs"], before["epochs"], "state survives");
    assert_eq!(after["keys"], 2);
    assert_eq!(after["results"], json!({"accepted": 0, "dup": 0, "conflict": 0}), "counters are per process");
    let stderr = sim.stderr();
    assert!(stderr.contains("replayed 2 records (1 epochs, 2 keys)"), "{stderr}");
    assert!(stderr.contains(&format!("ignored a torn last line of {} bytes", torn.len())), "{stderr}");

    // The client retries the whole run after the crash: paid once, the rest completes.
    assert_eq!(sim.register(TENANT, EPOCH, &run).0, 200);
    assert_eq!(verdicts(&sim.post(&intents).1), ["dup", "dup", "accepted"]);
    assert_eq!(sim.register(TENANT, EPOCH, &Run::new('b', &[("x", 1)])).0, 409);
    sim.kill_9();

    let sim = Sim::start(&["--journal", j]);
    let stats = sim.stats();
    assert_eq!(stats["keys"], 3);
    assert_eq!(stats["epochs"][0]["total_minor"], "600");
    assert_eq!(stats["epochs"][0]["intents"], 3);
    assert_eq!(verdicts(&sim.post(&intents).1), ["dup", "dup", "dup"]);
    assert_eq!(std::fs::read_to_string(&journal).unwrap().lines().count(), 3);
}

#[test]
fn damaged_journal_refuses_to_start() {
    let dir = scratch("damaged");
    let journal = dir.join("ledger.jsonl");
    std::fs::write(&journal, "not a record\n{\"op\":\"intents\",\"intents\":[]}\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_rewarder-testkit"))
        .args(["ledger-sim", "--bind", "127.0.0.1:0", "--journal", journal.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 1"), "{stderr}");
}

#[test]
fn fail_rate_one_answers_503_and_changes_nothing() {
    let sim = Sim::start(&["--fail-rate", "1.0"]);
    let run = alice_bob_carol();
    let (status, v) = sim.register(TENANT, EPOCH, &run);
    assert_eq!((status, v["error"]["code"].as_str()), (503, Some("unavailable")), "{v}");
    assert_eq!(sim.post(&run.intents()).0, 503);
    assert_eq!(sim.json("GET", "/v1/health", None).0, 503);
    let stats = sim.stats();
    assert_eq!(
        stats,
        json!({
            "results": {"accepted": 0, "dup": 0, "conflict": 0}, "requests": 3,
            "calls": {"runs": 1, "intents": 1, "health": 1}, "epochs": [], "keys": 0,
        })
    );
}

#[test]
fn lost_ack_applies_then_answers_503() {
    let sim = Sim::start(&["--lost-ack-rate", "1"]);
    let run = alice_bob_carol();
    assert_eq!(sim.register(TENANT, EPOCH, &run).0, 503);
    assert_eq!(sim.register(TENANT, EPOCH, &run).0, 200, "an already registered run is no state change");
    assert_eq!(sim.post(&run.intents()).0, 503);
    assert_eq!(sim.post(&run.intents()).0, 503);
    let stats = sim.stats();
    assert_eq!(stats["keys"], 3);
    assert_eq!(stats["results"], json!({"accepted": 3, "dup": 3, "conflict": 0}), "{stats}");
    assert_eq!(stats["epochs"][0]["total_minor"], "600");
}

#[test]
fn down_window_drops_connections_then_recovers() {
    let started = Instant::now();
    let sim = Sim::start(&["--down", "0..3"]);
    let run = alice_bob_carol();
    let e = sim.call("GET", "/v1/health", None).unwrap_err();
    assert!(e.contains("closed without an answer") || e.contains("read"), "{e}");
    assert!(sim.call("PUT", &format!("/v1/runs/{TENANT}/{EPOCH}"), Some(&run.registration())).is_err());
    let stats = sim.stats();
    assert_eq!(stats["epochs"], json!([]), "{stats}");
    assert_eq!(stats["requests"], 2);

    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.call("GET", "/v1/health", None).is_err() {
        assert!(Instant::now() < deadline, "still down long after the window");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(started.elapsed() >= Duration::from_secs(3), "up before the window ended");
    assert_eq!(sim.register(TENANT, EPOCH, &run).0, 201);

    // A window later in the run leaves the start alone.
    let later = Sim::start(&["--down", "300..600"]);
    assert_eq!(later.json("GET", "/v1/health", None).0, 200);
}

#[test]
fn garbage_modes_apply_nothing() {
    let run = alice_bob_carol();
    for mode in ["non-json", "wrong-count"] {
        let sim = Sim::start(&["--garbage", mode]);
        assert_eq!(sim.register(TENANT, EPOCH, &run).0, 201, "{mode}: registration is unaffected");
        let (status, body) = sim
            .call("POST", "/v1/intents", Some(&json!({ "intents": run.intents() })))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(status, 200, "{mode}");
        match mode {
            "non-json" => assert!(serde_json::from_slice::<Value>(&body).is_err(), "{mode}"),
            _ => {
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["results"].as_array().unwrap().len(), 2, "{mode}: {v}");
                assert_eq!(sim.post(&[]).1["results"].as_array().unwrap().len(), 1, "{mode}");
            }
        }
        let stats = sim.stats();
        assert_eq!(stats["keys"], 0, "{mode}: {stats}");
        assert_eq!(stats["results"], json!({"accepted": 0, "dup": 0, "conflict": 0}), "{mode}");
        // A malformed body is still a plain 400.
        let (status, v) = sim.json("POST", "/v1/intents", Some(&json!({"x": 1})));
        assert_eq!(status, 400, "{mode}: {v}");
    }
}

#[test]
fn latency_applies_to_calls_but_not_to_stats() {
    let sim = Sim::start(&["--latency-ms", "150..250"]);
    for _ in 0..4 {
        let t = Instant::now();
        assert_eq!(sim.json("GET", "/v1/health", None).0, 200);
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(150), "{took:?}");
        assert!(took < IO_TIMEOUT, "{took:?}");
    }
    let fastest_stats = (0..3)
        .map(|_| {
            let t = Instant::now();
            sim.stats();
            t.elapsed()
        })
        .min()
        .unwrap();
    assert!(fastest_stats < Duration::from_millis(150), "{fastest_stats:?}");
}

#[test]
fn same_seed_same_faults() {
    let pattern = |seed: &str| {
        let sim = Sim::start(&["--fail-rate", "0.5", "--seed", seed]);
        (0..24).map(|_| sim.json("GET", "/v1/health", None).0).collect::<Vec<u16>>()
    };
    let (a, b, c) = (pattern("7"), pattern("7"), pattern("8"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.contains(&200) && a.contains(&503), "{a:?}");
}

#[test]
fn concurrent_overlapping_batches_pay_each_key_once() {
    let sim = Sim::start(&[]);
    let actors: Vec<String> = (0..40).map(|i| format!("acct:{i:02}")).collect();
    let run = Run::new('c', &actors.iter().map(|a| (a.as_str(), 10)).collect::<Vec<_>>());
    assert_eq!(sim.register(TENANT, EPOCH, &run).0, 201);
    let intents = run.intents();
    let accepted: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|t| {
                // Each thread sends an overlapping window of the run, twice.
                let batch = intents[t * 5..t * 5 + 15].to_vec();
                let sim = &sim;
                s.spawn(move || {
                    (0..2)
                        .map(|_| {
                            let (status, v) = sim.post(&batch);
                            assert_eq!(status, 200, "{v}");
                            verdicts(&v).iter().filter(|r| *r == "accepted").count()
                        })
                        .sum::<usize>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(accepted, 40);
    let stats = sim.stats();
    assert_eq!(stats["keys"], 40);
    assert_eq!(stats["results"]["accepted"], 40);
    assert_eq!(stats["results"]["dup"], 6 * 2 * 15 - 40);
    assert_eq!(stats["epochs"][0]["total_minor"], "400");
}

#[test]
fn sigterm_and_sigint_exit_0() {
    for signal in ["TERM", "INT"] {
        let mut sim = Sim::start(&[]);
        assert_eq!(sim.json("GET", "/v1/health", None).0, 200);
        sim.signal(signal);
        assert_eq!(sim.wait_exit().code(), Some(0), "SIG{signal}: {}", sim.stderr());
        // The reader thread may still be collecting the last line.
        let deadline = Instant::now() + IO_TIMEOUT;
        while !sim.stderr().contains("ledger-sim stopped after 1 requests") {
            assert!(Instant::now() < deadline, "{}", sim.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn bad_flags() {
    let bin = env!("CARGO_BIN_EXE_rewarder-testkit");
    for args in [
        &["ledger-sim"][..],
        &["ledger-sim", "--bind", "nope"],
        &["ledger-sim", "--bind", "127.0.0.1:0", "--latency-ms", "5..1"],
        &["ledger-sim", "--bind", "127.0.0.1:0", "--fail-rate", "1.5"],
        &["ledger-sim", "--bind", "127.0.0.1:0", "--down", "3..1"],
        &["ledger-sim", "--bind", "127.0.0.1:0", "--garbage", "nope"],
    ] {
        let o = Command::new(bin).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let o = Command::new(bin).args(["ledger-sim", "--bind", "0.0.0.0:0"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a loopback address"), "{stderr}");

    let o = Command::new(bin).args(["ledger-sim", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in ["--bind", "--latency-ms", "--fail-rate", "--down", "--journal", "--garbage", "--seed"] {
        assert!(help.contains(flag), "{help}");
    }
}
