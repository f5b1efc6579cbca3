//! Chaos tests of ledger egress (API.md §4, issue 4): the micronode binary against the
//! `rewarder-testkit ledger-sim` binary, both on loopback, with latency, an outage, restarts
//! of either side (SIGKILL), replays, conflicting recomputes and garbage answers. The rule
//! checked everywhere: **a payout is never emitted twice and never lost** — every intent key
//! is held by the ledger exactly once, and per epoch the ledger's total equals the manifest's
//! `payout_total_minor`.
//!
//! Every test bounds its waits and stops its processes itself. The measurements (dup ratio,
//! drain times) are printed on stderr; see them with
//! `cargo test -p rewarder-micronode --test chaos -- --nocapture`.
//!
//! The simulator binary is built on first use (`cargo build -p rewarder-testkit`, same
//! profile and target directory as this test), since cargo builds only the binaries of the
//! package under test.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rewarder_core::service::{Ledger, LedgerErrorKind};
use rewarder_micronode::ledger::HttpLedger;
use serde_json::{Value, json};
use support::{EXCHANGE_TIMEOUT, Node, Reply, Scratch, read_reply, request_bytes};

const JSON: (&str, &str) = ("Content-Type", "application/json");
const POLICY: &[u8] = br#"{"schema":"rewarder.policy.v1","policy_id":"chaos","weights":{"k":1}}"#;

// ---- the simulator ----------------------------------------------------------------------

/// The `rewarder-testkit` binary beside this test's micronode binary, built once if needed.
fn testkit_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let micronode = Path::new(support::BIN);
        let dir = micronode.parent().expect("the binary's directory");
        let bin = dir.join("rewarder-testkit");
        let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug").to_owned();
        let target_dir = dir.parent().expect("the target directory");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "rewarder-testkit", "--bin", "rewarder-testkit"])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        // Fresh or stale, cargo decides; a failed build with a binary in place still runs it.
        let status = cmd.status();
        assert!(
            bin.exists(),
            "{} is missing and `cargo build -p rewarder-testkit` failed: {status:?}",
            bin.display()
        );
        bin
    })
}

/// A `rewarder-testkit ledger-sim` child process.
struct Sim {
    child: Child,
    addr: SocketAddr,
    /// When the process was spawned (its `--down` window counts from about then).
    started: Instant,
    log: Arc<Mutex<Vec<String>>>,
}

impl Sim {
    /// Starts a simulator on a free loopback port with extra `args`.
    fn start(args: &[&str]) -> Sim {
        Sim::start_on("127.0.0.1:0", args)
    }

    /// Starts a simulator bound to `bind` (an address a killed one held, to restart it).
    fn start_on(bind: &str, args: &[&str]) -> Sim {
        let started = Instant::now();
        let mut child = Command::new(testkit_bin())
            .args(["ledger-sim", "--bind", bind])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ledger-sim");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let lines = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("ledger-sim listening on http://") {
                    let _ = tx.send(addr.parse::<SocketAddr>().expect("an address"));
                }
                lines.lock().unwrap().push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(addr) => Sim { child, addr, started, log },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ledger-sim did not start: {}", log.lock().unwrap().join("\n"));
            }
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `GET /v1/stats`.
    fn stats(&self) -> Value {
        let reply = support::raw(self.addr, &request_bytes("GET", "/v1/stats", &[], None));
        assert_eq!(reply.status, 200);
        reply.json()
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            self.kill();
        }
        if std::thread::panicking() {
            eprintln!("ledger-sim log:\n{}", self.log.lock().unwrap().join("\n"));
        }
    }
}

// ---- the workload -------------------------------------------------------------------------

/// An inputs document for `epoch` with `payees` actors (all paid) and `pool` to share.
fn inputs(epoch: &str, payees: usize, pool: u64) -> Vec<u8> {
    let actors: Vec<String> = (0..payees).map(|i| format!("\"acct:{epoch}-{i:05}\"")).collect();
    let events: Vec<String> = (0..payees).map(|i| format!("[{},{i},0,{}]", i + 1, 1 + i % 7)).collect();
    format!(
        r#"{{"schema":"rewarder.inputs.v1","epoch":"{epoch}","pool_minor":"{pool}","kinds":["k"],"actors":[{}],"events":[{}]}}"#,
        actors.join(","),
        events.join(",")
    )
    .into_bytes()
}

/// What a run committed to, for checking the ledger against it.
#[derive(Debug, Clone)]
struct RunFacts {
    epoch: String,
    run_id: String,
    payout_total_minor: String,
    payees: u64,
}

impl RunFacts {
    fn of(reply: &Reply) -> RunFacts {
        let m = &reply.json()["manifest"];
        RunFacts {
            epoch: m["epoch"].as_str().unwrap().to_owned(),
            run_id: m["run_id"].as_str().unwrap().to_owned(),
            payout_total_minor: m["payout_total_minor"].as_str().unwrap().to_owned(),
            payees: m["payees"].as_u64().unwrap(),
        }
    }
}

/// Stores the documents of an epoch on `addr` and returns the compute request body.
fn store(addr: SocketAddr, inputs: &[u8]) -> Vec<u8> {
    let put = |path: &str, body: &[u8]| {
        let reply = support::raw(addr, &request_bytes("PUT", path, &[JSON], Some(body)));
        assert!(reply.status == 200 || reply.status == 201, "{path}: {}", reply.status);
        reply.json()
    };
    let stored = put("/rewarder/inputs", inputs);
    let policy = put("/rewarder/policies", POLICY);
    json!({
        "inputs_cid": stored["inputs_cid"],
        "policy_id": policy["policy_id"],
        "policy_hash": policy["policy_hash"],
    })
    .to_string()
    .into_bytes()
}

/// `POST /rewarder/epochs/{epoch}/compute` (no allocation list), or the transport error.
fn try_compute(addr: SocketAddr, epoch: &str, body: &[u8]) -> std::io::Result<Reply> {
    let path = format!("/rewarder/epochs/{epoch}/compute?allocations=false");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(EXCHANGE_TIMEOUT))?;
    stream.write_all(&request_bytes("POST", &path, &[JSON], Some(body)))?;
    read_reply(&mut BufReader::new(stream))
}

/// Stores and computes an epoch.
fn compute(node: &Node, epoch: &str, inputs: &[u8]) -> Reply {
    let body = store(node.addr, inputs);
    try_compute(node.addr, epoch, &body).expect("a compute answer")
}

/// `ledger.status` of a result.
fn status_of(reply: &Reply) -> String {
    reply.json()["ledger"]["status"].as_str().unwrap_or("-").to_owned()
}

/// `GET /rewarder/epochs/{epoch}`'s ledger object.
fn progress(node: &Node, epoch: &str) -> Value {
    let reply = node.call("GET", &format!("/rewarder/epochs/{epoch}?allocations=false"), &[], None);
    reply.json()["ledger"].clone()
}

/// Polls until every epoch shows `emitted`, at most `timeout`; returns how long it took.
fn wait_emitted(node: &Node, epochs: &[String], timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if epochs.iter().all(|e| progress(node, e)["status"] == "emitted") {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "not all emitted after {timeout:?}: {:?}\nnode log:\n{}",
            epochs.iter().map(|e| (e.clone(), progress(node, e))).collect::<Vec<_>>(),
            node.log()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// The value of one sample of the node's `/metrics`.
fn metric(node: &Node, sample: &str) -> f64 {
    let text = String::from_utf8(node.call("GET", "/metrics", &[], None).body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in /metrics"))
}

/// Exactly once: the ledger holds, for each run, its epoch registered to that run with one
/// accepted intent per payee summing to the manifest's total, and no other key.
fn assert_exactly_once(stats: &Value, runs: &[RunFacts]) {
    let epochs = stats["epochs"].as_array().expect("epochs");
    for run in runs {
        let e = epochs
            .iter()
            .find(|e| e["tenant"] == "default" && e["epoch"] == run.epoch.as_str())
            .unwrap_or_else(|| panic!("epoch {} not at the ledger: {stats}", run.epoch));
        assert_eq!(e["run_id"], run.run_id.as_str(), "{}", run.epoch);
        assert_eq!(e["intents"], run.payees, "{}: intents held", run.epoch);
        assert_eq!(e["total_minor"], run.payout_total_minor.as_str(), "{}: ledger total", run.epoch);
    }
    let keys: u64 = runs.iter().map(|r| r.payees).sum();
    assert_eq!(stats["keys"], keys, "every key held once, none other");
    assert_eq!(stats["results"]["conflict"], 0);
}

/// Node environment for a ledger at `url`, plus `extra`.
fn ledger_env<'a>(url: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("LEDGER_URL", url)];
    env.extend_from_slice(extra);
    env
}

/// Removes a SIGKILLed node's amnesia directory (a TERM would have removed it).
fn remove_amnesia(node: &Node) {
    let _ = std::fs::remove_dir_all(node.amnesia_dir());
}

// ---- the tests ----------------------------------------------------------------------------

#[test]
fn jitter_on_every_call_all_runs_end_emitted_with_no_dups() {
    let sim = Sim::start(&["--latency-ms", "50..500", "--seed", "7"]);
    let url = sim.url();
    let env = ledger_env(
        &url,
        &[("LEDGER_BATCH_MAX", "50"), ("LEDGER_DEADLINE_MS", "2000"), ("LEDGER_P95_BUDGET_MS", "2000")],
    );
    let node = Node::start(&env);
    let started = Instant::now();
    let mut runs = Vec::new();
    for i in 0..6 {
        let epoch = format!("jitter-{i}");
        let reply = compute(&node, &epoch, &inputs(&epoch, 100, 1_000_000 + i));
        assert_eq!((reply.status, status_of(&reply)), (200, "emitted".to_owned()), "{epoch}");
        assert_eq!(reply.json()["ledger"]["accepted"], 100);
        runs.push(RunFacts::of(&reply));
    }
    let wall = started.elapsed();
    let stats = sim.stats();
    assert_exactly_once(&stats, &runs);
    let (accepted, dup) =
        (stats["results"]["accepted"].as_u64().unwrap(), stats["results"]["dup"].as_u64().unwrap());
    let ratio = dup as f64 / (accepted + dup) as f64;
    eprintln!(
        "CHAOS jitter 50..500 ms: runs=6 intents={} accepted={accepted} dup={dup} dup_ratio={:.3}% ledger_requests={} wall={:.2}s",
        accepted + dup,
        ratio * 100.0,
        stats["requests"],
        wall.as_secs_f64()
    );
    assert!(ratio <= 0.01, "dup ratio {ratio} in a steady run");
    assert_eq!(metric(&node, "ledger_degraded"), 0.0);
}

#[test]
fn ledger_down_for_5_s_mid_sequence_queues_then_drains_exactly_once() {
    let sim = Sim::start(&["--down", "3..8"]);
    let url = sim.url();
    let env = ledger_env(
        &url,
        &[("LEDGER_BATCH_MAX", "20"), ("LEDGER_DEADLINE_MS", "300"), ("LEDGER_WINDOW_S", "2")],
    );
    let node = Node::start(&env);
    let mut runs = Vec::new();
    let mut answers = Vec::new();
    let bodies: Vec<(String, Vec<u8>)> = (0..24)
        .map(|i| {
            let epoch = format!("outage-{i:02}");
            let body = store(node.addr, &inputs(&epoch, 40, 500_000 + i));
            (epoch, body)
        })
        .collect();
    for (epoch, body) in &bodies {
        // One run every 450 ms from about 0.5 s to 11 s after the simulator started.
        let due = sim.started + Duration::from_millis(500 + 450 * answers.len() as u64);
        thread::sleep(due.saturating_duration_since(Instant::now()));
        let at = sim.started.elapsed();
        let reply = try_compute(node.addr, epoch, body).unwrap();
        assert!(reply.status == 200 || reply.status == 202, "{epoch}: {}", reply.status);
        answers.push((at, reply.status, status_of(&reply)));
        runs.push(RunFacts::of(&reply));
    }
    let down = Duration::from_millis(3300)..Duration::from_millis(7700);
    for (at, status, ledger) in &answers {
        if *at < Duration::from_millis(2700) {
            assert_eq!((*status, ledger.as_str()), (200, "emitted"), "before the outage ({at:?})");
        }
        if down.contains(at) {
            assert_eq!((*status, ledger.as_str()), (202, "quarantined"), "during the outage ({at:?})");
        }
    }
    let epochs: Vec<String> = bodies.iter().map(|(e, _)| e.clone()).collect();
    let back_at = sim.started + Duration::from_secs(8);
    thread::sleep(back_at.saturating_duration_since(Instant::now()));
    wait_emitted(&node, &epochs, Duration::from_secs(30));
    let drained = back_at.elapsed();
    let stats = sim.stats();
    assert_exactly_once(&stats, &runs);
    let queued = answers.iter().filter(|(_, s, _)| *s == 202).count();
    eprintln!(
        "CHAOS ledger down 3..8 s: runs={} quarantined_runs={queued} drain_time_after_ledger_back={:.2}s \
         (LEDGER_WINDOW_S=2 of healthy probes first) accepted={} dup={}",
        runs.len(),
        drained.as_secs_f64(),
        stats["results"]["accepted"],
        stats["results"]["dup"]
    );
    assert!(queued >= 8, "{answers:?}");
    assert_eq!(metric(&node, "quarantine_queue_depth"), 0.0);
    assert_eq!(metric(&node, "ledger_degraded"), 0.0);
}

#[test]
fn ledger_killed_and_restarted_from_its_journal_mid_run_exactly_once() {
    let scratch = Scratch::new("journal");
    let journal = scratch.path().join("ledger.jsonl");
    let journal = journal.to_str().unwrap();
    let mut sim = Sim::start(&["--journal", journal, "--latency-ms", "10..30"]);
    let (url, bind) = (sim.url(), sim.addr.to_string());
    let env = ledger_env(
        &url,
        &[("LEDGER_BATCH_MAX", "50"), ("LEDGER_DEADLINE_MS", "500"), ("LEDGER_WINDOW_S", "2")],
    );
    let node = Node::start(&env);
    let big = inputs("journal-big", 1500, 9_000_000);
    let body = store(node.addr, &big);
    let addr = node.addr;
    let computing = thread::spawn(move || try_compute(addr, "journal-big", &body));
    thread::sleep(Duration::from_millis(300));
    let keys_before = sim.stats()["keys"].as_u64().unwrap();
    sim.kill();
    let killed_at = Instant::now();
    let reply = computing.join().unwrap().unwrap();
    assert!(reply.status == 202 || reply.status == 200, "{}", reply.status);
    let mut runs = vec![RunFacts::of(&reply)];
    // While the ledger is gone, more runs queue.
    for i in 0..3 {
        let epoch = format!("journal-{i}");
        let reply = compute(&node, &epoch, &inputs(&epoch, 30, 70_000 + i));
        assert_eq!((reply.status, status_of(&reply)), (202, "quarantined".to_owned()), "{epoch}");
        runs.push(RunFacts::of(&reply));
    }
    thread::sleep(Duration::from_secs(1).saturating_sub(killed_at.elapsed()));
    let sim = Sim::start_on(&bind, &["--journal", journal]);
    let back = Instant::now();
    let epochs: Vec<String> = runs.iter().map(|r| r.epoch.clone()).collect();
    wait_emitted(&node, &epochs, Duration::from_secs(30));
    let drained = back.elapsed();
    let stats = sim.stats();
    assert_exactly_once(&stats, &runs);
    eprintln!(
        "CHAOS ledger SIGKILLed mid-run (held {keys_before} of 1500 keys) and restarted from its journal: \
         drain_time_after_restart={:.2}s accepted_after_restart={} dup_after_restart={}",
        drained.as_secs_f64(),
        stats["results"]["accepted"],
        stats["results"]["dup"]
    );
    assert!(keys_before < 1500, "the kill was meant to land mid-run");
}

#[test]
fn micronode_killed_mid_emission_and_the_compute_resent_exactly_once() {
    let sim = Sim::start(&["--latency-ms", "40..80"]);
    let url = sim.url();
    let env = ledger_env(&url, &[("LEDGER_BATCH_MAX", "100"), ("LEDGER_P95_BUDGET_MS", "1000")]);
    let docs = inputs("killed", 3000, 30_000_000);
    let node = Node::start(&env);
    let body = store(node.addr, &docs);
    let addr = node.addr;
    let computing = thread::spawn(move || try_compute(addr, "killed", &body));
    thread::sleep(Duration::from_millis(600));
    node.signal("KILL");
    assert!(computing.join().unwrap().is_err(), "the compute dies with the node");
    remove_amnesia(&node);
    drop(node);
    thread::sleep(Duration::from_millis(200));
    let held = sim.stats()["keys"].as_u64().unwrap();
    assert!(held > 0 && held < 3000, "the kill was meant to land mid-emission: {held}");
    // A new process knows nothing (amnesia); the client re-sends its documents and compute.
    let node = Node::start(&env);
    let reply = compute(&node, "killed", &docs);
    assert_eq!((reply.status, status_of(&reply)), (200, "emitted".to_owned()));
    let (accepted, dup) = (
        reply.json()["ledger"]["accepted"].as_u64().unwrap(),
        reply.json()["ledger"]["dup"].as_u64().unwrap(),
    );
    assert_eq!(accepted + dup, 3000);
    assert!(dup >= held, "what was paid before the kill is dup now ({dup} < {held})");
    assert_exactly_once(&sim.stats(), &[RunFacts::of(&reply)]);
    eprintln!(
        "CHAOS micronode SIGKILLed mid-emission at {held}/3000 keys; recompute: accepted={accepted} dup={dup}"
    );
}

#[test]
fn a_replay_answers_the_record_and_a_recompute_with_other_inputs_is_409_with_no_intents() {
    let sim = Sim::start(&[]);
    let url = sim.url();
    let env = ledger_env(&url, &[]);
    let node = Node::start(&env);
    let first = compute(&node, "replay", &inputs("replay", 50, 100_000));
    assert_eq!((first.status, status_of(&first)), (200, "emitted".to_owned()));
    let run = RunFacts::of(&first);
    // A replay of the emitted run answers this node's record and sends nothing.
    let replay = compute(&node, "replay", &inputs("replay", 50, 100_000));
    assert_eq!(replay.status, 200);
    assert_eq!(
        replay.json()["ledger"],
        json!({"status": "emitted", "accepted": 50, "dup": 0, "pending": 0, "durable": false})
    );
    let before = sim.stats();
    assert_eq!(before["results"], json!({"accepted": 50, "dup": 0, "conflict": 0}));
    // Other inputs for the emitted epoch: this node's record refuses it without a call.
    let other = compute(&node, "replay", &inputs("replay", 50, 999_999));
    other.assert_error(409, "epoch_conflict");
    let after = sim.stats();
    assert_eq!(after["requests"], before["requests"], "no ledger call at all");
    // The epoch's result is still the emitted run.
    let shown = node.call("GET", "/rewarder/epochs/replay?allocations=false", &[], None);
    assert_eq!(shown.json()["manifest"]["run_id"], run.run_id.as_str());
    // A fresh node has no record: the ledger's 409 refuses it, before any intent.
    drop(node);
    let node = Node::start(&env);
    let other = compute(&node, "replay", &inputs("replay", 50, 999_999));
    other.assert_error(409, "epoch_conflict");
    let after = sim.stats();
    assert_eq!(after["requests"], before["requests"].as_u64().unwrap() + 1, "one registration, no intents");
    assert_eq!(after["results"], before["results"]);
    // A fresh node does not know the run was emitted: it sends it again, all dup.
    let replay = compute(&node, "replay", &inputs("replay", 50, 100_000));
    assert_eq!(
        replay.json()["ledger"],
        json!({"status": "emitted", "accepted": 0, "dup": 50, "pending": 0, "durable": false})
    );
    assert_exactly_once(&sim.stats(), &[run]);
}

#[test]
fn garbage_answers_are_errors_never_success() {
    for mode in ["non-json", "wrong-count"] {
        let scratch = Scratch::new("garbage");
        let journal = scratch.path().join("ledger.jsonl");
        let journal = journal.to_str().unwrap();
        let mut sim = Sim::start(&["--garbage", mode, "--journal", journal]);
        let (url, bind) = (sim.url(), sim.addr.to_string());
        let env = ledger_env(&url, &[("LEDGER_WINDOW_S", "2")]);
        let node = Node::start(&env);
        let reply = compute(&node, "garbage", &inputs("garbage", 20, 40_000));
        assert_eq!(reply.status, 202, "{mode}");
        assert_eq!(
            reply.json()["ledger"],
            json!({"status": "quarantined", "accepted": 0, "dup": 0, "pending": 20, "durable": false}),
            "{mode}"
        );
        assert_eq!(metric(&node, "ledger_intents_total{result=\"accepted\"}"), 0.0);
        assert_eq!(metric(&node, "ledger_intents_total{result=\"error\"}"), 20.0);
        assert!(metric(&node, "ledger_egress_errors_total") >= 3.0);
        assert_eq!(sim.stats()["keys"], 0, "{mode}: the simulator applied nothing");
        // The same ledger, sane again: the queued intents drain.
        sim.kill();
        let sim = Sim::start_on(&bind, &["--journal", journal]);
        let took = wait_emitted(&node, &["garbage".to_owned()], Duration::from_secs(20));
        assert_exactly_once(&sim.stats(), &[RunFacts::of(&reply)]);
        eprintln!(
            "CHAOS garbage {mode}: quarantined, never success; drained {:.2}s after the ledger recovered",
            took.as_secs_f64()
        );
    }
}

#[test]
fn a_slow_ledger_is_a_brownout_until_probes_are_fast_for_the_window() {
    let scratch = Scratch::new("brownout");
    let journal = scratch.path().join("ledger.jsonl");
    let journal = journal.to_str().unwrap();
    let mut sim = Sim::start(&["--latency-ms", "150..200", "--journal", journal]);
    let (url, bind) = (sim.url(), sim.addr.to_string());
    let env = ledger_env(
        &url,
        &[("LEDGER_BATCH_MAX", "10"), ("LEDGER_P95_BUDGET_MS", "100"), ("LEDGER_WINDOW_S", "2")],
    );
    let node = Node::start(&env);
    let mut runs = Vec::new();
    let mut statuses = Vec::new();
    for i in 0..3 {
        let epoch = format!("slow-{i}");
        let reply = compute(&node, &epoch, &inputs(&epoch, 20, 60_000 + i));
        statuses.push(reply.status);
        runs.push(RunFacts::of(&reply));
    }
    // Five slow requests are enough samples: from then on runs are only queued.
    assert_eq!(statuses[2], 202, "{statuses:?}");
    let ready = node.call("GET", "/readyz", &[], None);
    assert_eq!(ready.status, 200, "a brownout keeps the node ready");
    assert_eq!(ready.json()["ledger_degraded"], true);
    assert_eq!(ready.json()["details"], json!(["ledger_degraded"]));
    assert_eq!(metric(&node, "ledger_degraded"), 1.0);
    // Slow probes keep it there.
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(metric(&node, "ledger_degraded"), 1.0);
    sim.kill();
    let sim = Sim::start_on(&bind, &["--journal", journal]);
    let fast = Instant::now();
    let epochs: Vec<String> = runs.iter().map(|r| r.epoch.clone()).collect();
    wait_emitted(&node, &epochs, Duration::from_secs(20));
    let left = fast.elapsed();
    // The node leaves once the probes of a whole window (2 s) are within budget: the last slow
    // probe, at most one drain tick (250 ms) before the restart, must leave the window first.
    assert!(left >= Duration::from_millis(1700), "a whole window of fast probes first ({left:?})");
    assert_eq!(metric(&node, "ledger_degraded"), 0.0);
    assert_eq!(node.call("GET", "/readyz", &[], None).json()["details"], json!([]));
    assert_exactly_once(&sim.stats(), &runs);
    eprintln!(
        "CHAOS brownout (p95 > 100 ms): left and drained {:.2}s after the ledger was fast again",
        left.as_secs_f64()
    );
}

#[test]
fn the_ledger_client_speaks_https() {
    let scratch = Scratch::new("tls");
    let (cert, key) = (scratch.path().join("cert.pem"), scratch.path().join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed for the TLS test");
    assert!(made.success());
    // A micronode over TLS stands in for an HTTPS ledger: it answers /v1/health with 404,
    // which is only readable after a good handshake.
    let server =
        Node::start(&[("TLS_CERT_FILE", cert.to_str().unwrap()), ("TLS_KEY_FILE", key.to_str().unwrap())]);
    let url = format!("https://localhost:{}", server.addr.port());
    let trusted = HttpLedger::new(&url, Duration::from_secs(5), Some(&cert)).unwrap();
    let e = trusted.health().unwrap_err();
    assert_eq!(e.kind(), LedgerErrorKind::Rejected, "{e}");
    assert!(e.message().contains("404"), "{e}");
    let untrusted = HttpLedger::new(&url, Duration::from_secs(5), None).unwrap();
    assert_eq!(untrusted.health().unwrap_err().kind(), LedgerErrorKind::Connection);
}
