//! The macronode binary over real TCP: its profile and pool, admission control (the bounded
//! work queue, per-tenant clamps shared by the workers), hot reload from `HOT_KNOBS_FILE`,
//! graceful drain, and a local fleet — three nodes behind nginx with the ledger simulator —
//! that survives a node kill. Every node binds 127.0.0.1:0; every wait is bounded.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rewarder_testkit::{Scale, generate, ledger_sim};
use serde_json::Value;
use support::{
    JSON, KEY_HEX, Node, Reply, Scratch, bearer, call, metric, small_inputs, small_policy, try_call, upload,
};

// ---- profile and pool -----------------------------------------------------------------------

#[test]
fn version_and_healthcheck_speak_for_the_macronode() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(support::BIN);
        cmd.args(args).env_clear().stdin(Stdio::null());
        cmd.envs(env.iter().copied());
        cmd.output().expect("the binary runs")
    };
    let version = run(&["--version"], &[]);
    let line = String::from_utf8_lossy(&version.stdout).trim_end().to_owned();
    assert_eq!(line, format!("rewarder-macronode {}", rewarder_micronode::build::VERSION_LINE));
    let help = String::from_utf8_lossy(&run(&["serve", "--help"], &[]).stdout).into_owned();
    for knob in rewarder_micronode::knobs::KNOBS {
        assert!(help.contains(&format!("\n  {}  [default: ", knob.env)), "{} missing:\n{help}", knob.env);
    }

    let node = Node::start(&[]);
    let bind = node.addr.to_string();
    let ok = run(&["healthcheck", "--timeout-ms", "5000"], &[("BIND_ADDR", &bind)]);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    let version = node.call("GET", "/version", &[], None).json();
    assert_eq!(version["build"]["target"], rewarder_micronode::build::TARGET);
    drop(node);
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let down = run(&["healthcheck", "--timeout-ms", "1000"], &[("BIND_ADDR", &closed)]);
    assert_eq!(down.status.code(), Some(1), "{}", String::from_utf8_lossy(&down.stderr));
}

#[test]
fn it_answers_as_a_macronode_and_writes_no_directory() {
    let node = Node::start(&[("CONCURRENCY_COMPUTE_WORKERS", "3")]);
    let version = node.call("GET", "/version", &[], None).json();
    assert_eq!(version["profile"], "macronode");
    let ready = node.call("GET", "/readyz", &[], None);
    assert_eq!((ready.status, ready.json()["profile"].as_str()), (200, Some("macronode")));
    node.wait_for_log("workers=3 ", Duration::from_secs(5));

    let body = upload(node.addr, &[], &small_inputs("e1", 5, 1), &small_policy("p1"), true);
    let reply = node.call("POST", "/rewarder/epochs/e1/compute", &[JSON], Some(&body));
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json()["ledger"]["status"], "dry_run");
    assert_eq!(node.metric("amnesia_spill_total"), 0.0, "memory is the store, not a spill");
    assert!(node.home.entries().is_empty(), "nothing written to TMPDIR/HOME/cwd: {:?}", node.home.entries());
    let prefix = format!("rewarder-{}-", node.pid());
    let shm = std::fs::read_dir("/dev/shm").map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default();
    assert!(
        !shm.iter().any(|e| e.file_name().to_string_lossy().starts_with(&prefix)),
        "no amnesia directory"
    );
    // Its pool of three serves from the one public listener: no private port behind it.
    assert_eq!(rewarder_testkit::node::listening_sockets(node.pid()), vec![node.addr]);
}

#[test]
fn the_default_pool_leaves_a_core_free() {
    let cores = rewarder_macronode::available_cores();
    let node = Node::start(&[]);
    node.wait_for_log("node ready", Duration::from_secs(5));
    let expected = cores.saturating_sub(1).max(1);
    assert!(node.log().contains(&format!("workers={expected} ")), "{cores} cores:\n{}", node.log());
    let pq = Node::start(&[("REQUIRE_PQ_ON", "true")]);
    pq.wait_for_log("node ready", Duration::from_secs(5));
    let expected = cores.saturating_sub(2).max(1);
    assert!(pq.log().contains(&format!("workers={expected} ")), "{cores} cores, PQ:\n{}", pq.log());
}

#[test]
fn bad_knobs_are_refused_at_start_with_exit_2() {
    let scratch = Scratch::new("bad");
    let bad_file = scratch.path().join("hot.env");
    std::fs::write(&bad_file, "WORK_QUEUE_MAX=0\n").unwrap();
    let bad_file = bad_file.to_str().unwrap();
    for (var, value, named) in [
        ("CONCURRENCY_COMPUTE_WORKERS", "0", "CONCURRENCY_COMPUTE_WORKERS"),
        ("WORK_QUEUE_MAX", "none", "WORK_QUEUE_MAX"),
        ("HOT_KNOBS_FILE", "/nonexistent/hot.env", "HOT_KNOBS_FILE"),
        ("HOT_KNOBS_FILE", bad_file, "WORK_QUEUE_MAX"),
    ] {
        let Err((status, log)) = Node::try_start(&[(var, value)]) else {
            panic!("{var}={value} started");
        };
        assert_eq!(status.and_then(|s| s.code()), Some(2), "{var}={value}: {log}");
        assert!(log.contains(named), "{var}={value}: {log}");
    }
}

// ---- admission control ----------------------------------------------------------------------

/// An L-scale epoch stored on `node` with `policies` distinct policies: one compute body per
/// policy, each a distinct run (hundreds of milliseconds of work each in a debug build).
fn l_scale_runs(node: &Node, epoch: &str, policies: usize) -> Vec<Vec<u8>> {
    let (inputs, policy) = generate(Scale::L, epoch, 1);
    let base: Value = serde_json::from_slice(&policy).unwrap();
    (0..policies)
        .map(|i| {
            let mut doc = base.clone();
            doc["policy_id"] = format!("busy-{i}").into();
            upload(node.addr, &[], &inputs, doc.to_string().as_bytes(), true)
        })
        .collect()
}

#[test]
fn a_full_work_queue_is_refused_at_once_with_503_while_probes_still_answer() {
    let node = Node::start(&[("CONCURRENCY_COMPUTE_WORKERS", "1"), ("WORK_QUEUE_MAX", "1")]);
    assert_eq!(node.metric("work_queue_max"), 1.0);
    const BURST: usize = 5;
    let bodies = l_scale_runs(&node, "busy", BURST + 1);
    let path = "/rewarder/epochs/busy/compute?allocations=false";
    let addr = node.addr;
    let timed = |body: &[u8]| {
        let t0 = Instant::now();
        let reply = call(addr, "POST", path, &[JSON], Some(body));
        (reply, t0.elapsed())
    };
    let start = Barrier::new(BURST + 1);
    let mut deepest = 0.0_f64;
    let (first, burst): ((Reply, Duration), Vec<(Reply, Duration)>) = thread::scope(|s| {
        // One compute occupies the only worker...
        let first = s.spawn(|| timed(&bodies[0]));
        let deadline = Instant::now() + Duration::from_secs(10);
        while node.metric("inflight") < 1.0 {
            assert!(Instant::now() < deadline && !first.is_finished(), "the first compute never ran");
            thread::sleep(Duration::from_millis(1));
        }
        // ...then a burst: one request fits the queue, the others are refused.
        let burst: Vec<_> = bodies[1..]
            .iter()
            .map(|body| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    timed(body)
                })
            })
            .collect();
        start.wait();
        // Meanwhile the gate answers probes at once.
        while burst.iter().any(|c| !c.is_finished()) && Instant::now() < deadline {
            let t0 = Instant::now();
            let metrics = node.call("GET", "/metrics", &[], None);
            assert!(t0.elapsed() < Duration::from_secs(2), "a probe waited behind the queue");
            deepest = deepest.max(metric(&metrics, "queue_depth"));
            thread::sleep(Duration::from_millis(2));
        }
        (first.join().unwrap(), burst.into_iter().map(|c| c.join().unwrap()).collect())
    });
    assert_eq!(first.0.status, 200, "{}", String::from_utf8_lossy(&first.0.body));
    let ok: Vec<_> = burst.iter().filter(|(r, _)| r.status == 200).collect();
    let shed: Vec<_> = burst.iter().filter(|(r, _)| r.status == 503).collect();
    assert_eq!(ok.len() + shed.len(), BURST, "only 200 or 503: {burst:?}");
    assert!(!ok.is_empty() && shed.len() >= BURST - 2, "one queue slot while the worker is busy: {burst:?}");
    for (reply, _) in &shed {
        assert_eq!(reply.code(), "overloaded");
        assert_eq!(reply.json()["error"]["details"]["reason"], "queue_full");
        assert_eq!(reply.header("Retry-After"), Some("1"));
        assert!(reply.header("X-Corr-ID").is_some());
    }
    let slowest_shed = shed.iter().map(|(_, t)| *t).max().unwrap();
    let fastest_ok = ok.iter().map(|(_, t)| *t).min().unwrap();
    assert!(
        slowest_shed < fastest_ok,
        "refusals do not wait for a worker: {slowest_shed:?} vs {fastest_ok:?}"
    );
    assert_eq!(deepest, 1.0, "queue_depth showed the waiting request, never more than the bound");
    assert_eq!(node.metric("rejected_total{reason=\"queue_full\"}"), shed.len() as f64);
    assert_eq!(node.metric("queue_depth"), 0.0);
    assert_eq!(node.metric("inflight"), 0.0);
}

#[test]
fn a_tenant_over_its_rate_gets_429_while_another_tenant_passes() {
    let auth = format!("k1:{KEY_HEX}");
    let node = Node::start(&[
        ("AUTH_KEYS", auth.as_str()),
        ("TENANT_RPS_MAX", "2"),
        ("CONCURRENCY_COMPUTE_WORKERS", "4"),
    ]);
    let a = bearer("tenant-a", "compute read");
    let b = bearer("tenant-b", "compute read");
    // Ten requests of tenant-a at once, spread over four workers: one bucket for the node.
    let statuses: Vec<Reply> = thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                s.spawn(|| node.call("GET", "/rewarder/epochs/none", &[("Authorization", a.as_str())], None))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let limited: Vec<_> = statuses.iter().filter(|r| r.status == 429).collect();
    let passed = statuses.iter().filter(|r| r.status == 404).count();
    assert_eq!(passed + limited.len(), 10);
    assert!(
        (2..=3).contains(&passed),
        "a burst of 2 (plus at most one refill) passes, not 2 per worker: {passed}"
    );
    for reply in &limited {
        assert_eq!(reply.code(), "rate_limited");
        assert!(reply.header("Retry-After").is_some_and(|s| s.parse::<u32>().is_ok_and(|s| s >= 1)));
    }
    let other = node.call("GET", "/rewarder/epochs/none", &[("Authorization", b.as_str())], None);
    assert_eq!((other.status, other.code().as_str()), (404, "unknown_epoch"), "tenant-b is not clamped");
    assert_eq!(node.metric("rejected_total{reason=\"rate_limited\"}"), limited.len() as f64);
}

// ---- hot reload -----------------------------------------------------------------------------

#[test]
fn sighup_and_the_reload_endpoint_apply_the_hot_knobs_file_and_keep_the_old_knobs_on_a_bad_one() {
    let scratch = Scratch::new("reload");
    let file = scratch.path().join("hot.env");
    std::fs::write(&file, "# hot knobs\nWORK_QUEUE_MAX=50\n").unwrap();
    let auth = format!("k1:{KEY_HEX}");
    let node = Node::start(&[("AUTH_KEYS", auth.as_str()), ("HOT_KNOBS_FILE", file.to_str().unwrap())]);
    assert_eq!(node.metric("work_queue_max"), 50.0, "the file applies at start");
    let tenant = bearer("tenant-c", "read");
    // One admin tenant per call: TENANT_RPS_MAX=1 applies to them too.
    let admin = |n: u32| bearer(&format!("ops-{n}"), "admin");
    let get =
        || node.call("GET", "/rewarder/epochs/none", &[("Authorization", tenant.as_str())], None).status;

    // SIGHUP: a new rate and queue bound, without a restart.
    std::fs::write(&file, "TENANT_RPS_MAX=1\nWORK_QUEUE_MAX=7\n").unwrap();
    node.signal("HUP");
    node.wait_for_log("hot knobs reloaded", Duration::from_secs(5));
    assert_eq!(node.metric("work_queue_max"), 7.0);
    assert_eq!((get(), get()), (404, 429), "TENANT_RPS_MAX=1 in force");

    // A bad value: refused by the endpoint and by SIGHUP, the old knobs kept.
    std::fs::write(&file, "TENANT_RPS_MAX=0\nWORK_QUEUE_MAX=9\n").unwrap();
    let refused = node.call("POST", "/rewarder/admin/reload", &[("Authorization", admin(1).as_str())], None);
    assert_eq!((refused.status, refused.code().as_str()), (400, "bad_request"));
    assert!(refused.json()["error"]["message"].as_str().unwrap().contains("TENANT_RPS_MAX"));
    assert_eq!(refused.json()["error"]["details"]["kept"]["tenant_rps_max"], 1);
    assert_eq!(refused.json()["error"]["details"]["kept"]["work_queue_max"], 7);
    node.signal("HUP");
    node.wait_for_log("reload refused", Duration::from_secs(5));
    assert_eq!(node.metric("work_queue_max"), 7.0, "nothing of a refused file applies");

    // The endpoint applies a good file; knobs it does not set take their environment values.
    std::fs::write(&file, "WORK_QUEUE_MAX=9\n").unwrap();
    let applied = node.call("POST", "/rewarder/admin/reload", &[("Authorization", admin(2).as_str())], None);
    assert_eq!(applied.status, 200, "{}", String::from_utf8_lossy(&applied.body));
    assert_eq!(
        applied.json(),
        serde_json::json!({
            "tenant_rps_max": 100, "max_inflight": 512, "work_queue_max": 9, "ledger_quarantine_only": false,
        })
    );
    assert_eq!(node.metric("work_queue_max"), 9.0);
    let reader = bearer("tenant-d", "read");
    let no_admin = node.call("POST", "/rewarder/admin/reload", &[("Authorization", reader.as_str())], None);
    assert_eq!(no_admin.status, 403, "reload needs the admin scope");
}

// ---- graceful drain -------------------------------------------------------------------------

#[test]
fn sigterm_lets_the_compute_in_flight_finish_then_exits_0() {
    let mut node = Node::start(&[("CONCURRENCY_COMPUTE_WORKERS", "1")]);
    let body = l_scale_runs(&node, "drain", 1).remove(0);
    let addr = node.addr;
    let compute =
        thread::spawn(move || call(addr, "POST", "/rewarder/epochs/drain/compute", &[JSON], Some(&body)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.metric("inflight") < 1.0 {
        assert!(Instant::now() < deadline && !compute.is_finished(), "the compute never showed in flight");
        thread::sleep(Duration::from_millis(2));
    }
    node.signal("TERM");
    let reply = compute.join().unwrap();
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert!(reply.json()["allocations"].as_array().is_some_and(|a| a.len() > 40_000), "the full answer");
    let status = node.wait(Duration::from_secs(30)).expect("exits after draining");
    assert_eq!(status.code(), Some(0), "{}", node.log());
    assert!(node.log().contains("stopping: finishing requests in flight"));
    assert!(TcpStream::connect(addr).is_err(), "the port is closed");
}

// ---- durable acceptance (STATE_PATH) -----------------------------------------------------------

/// A ledger address where nothing listens yet: the ledger is down until [`ledger_on`].
fn dead_ledger() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// The ledger simulator brought up at `addr` (the ledger comes back).
fn ledger_on(addr: SocketAddr) -> ledger_sim::LedgerSim {
    ledger_sim::start(ledger_sim::Config { bind: addr, ..ledger_sim::Config::default() }).expect("ledger-sim")
}

/// Knobs of a node whose ledger is at `ledger`: small batches, fast brownout exit.
fn ledger_knobs(ledger: &str) -> Vec<(&str, &str)> {
    vec![
        ("LEDGER_URL", ledger),
        ("LEDGER_BATCH_MAX", "10"),
        ("LEDGER_DEADLINE_MS", "300"),
        ("LEDGER_WINDOW_S", "1"),
        ("TENANT_RPS_MAX", "1000000"),
    ]
}

/// `(status, ledger)` of `GET /rewarder/epochs/{epoch}`.
fn progress(node: &Node, epoch: &str) -> (u16, Value) {
    let reply = node.call("GET", &format!("/rewarder/epochs/{epoch}?allocations=false"), &[], None);
    let ledger = if reply.status == 200 { reply.json()["ledger"].clone() } else { Value::Null };
    (reply.status, ledger)
}

/// Uploads and computes (not dry) one small epoch on `node`; returns the answer.
fn compute_epoch(node: &Node, epoch: &str, actors: usize) -> Reply {
    let body =
        upload(node.addr, &[], &small_inputs(epoch, actors, actors as u64), &small_policy("durable"), false);
    node.call("POST", &format!("/rewarder/epochs/{epoch}/compute?allocations=false"), &[JSON], Some(&body))
}

/// Polls until `epoch` shows `emitted`, checking on the way that GET always answered the run's
/// progress (never a 404) and that `pending` never grew.
fn wait_emitted(node: &Node, epoch: &str, payees: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut pending = payees;
    loop {
        let (status, ledger) = progress(node, epoch);
        assert_eq!(status, 200, "{epoch}: GET shows the run throughout:\n{}", node.log());
        let now = ledger["pending"].as_u64().unwrap();
        assert!(now <= pending, "{epoch}: pending grew {pending} -> {now}");
        pending = now;
        if ledger["status"] == "emitted" {
            assert_eq!(ledger["accepted"].as_u64().unwrap() + ledger["dup"].as_u64().unwrap(), payees);
            return;
        }
        assert!(Instant::now() < deadline, "{epoch} not emitted: {ledger}\n{}", node.log());
        thread::sleep(Duration::from_millis(50));
    }
}

/// Computes `epochs` runs while the ledger is down (each answered 202), SIGKILLs the node,
/// restarts it on the same environment and brings the ledger back. Returns the restarted
/// node, the ledger and each epoch with its payee count.
fn answered_202_then_killed(
    env: &[(&str, &str)],
    ledger: SocketAddr,
) -> (Node, ledger_sim::LedgerSim, Vec<(String, u64)>) {
    let mut node = Node::start(env);
    let mut runs = Vec::new();
    for i in 0..4 {
        let epoch = format!("promise-{i}");
        let reply = compute_epoch(&node, &epoch, 20 + 7 * i);
        assert_eq!(reply.status, 202, "{epoch}: {}", String::from_utf8_lossy(&reply.body));
        let (json, durable) = (reply.json(), env.iter().any(|(k, _)| *k == "STATE_PATH"));
        assert_eq!(json["ledger"]["durable"], durable, "{epoch}");
        let payees = json["manifest"]["payees"].as_u64().unwrap();
        assert_eq!(
            (json["ledger"]["status"].as_str(), json["ledger"]["pending"].as_u64()),
            (Some("quarantined"), Some(payees))
        );
        assert_eq!(progress(&node, &epoch).1["pending"], payees);
        runs.push((epoch, payees));
    }
    node.kill();
    let node = Node::start(env);
    let sim = ledger_on(ledger);
    (node, sim, runs)
}

#[test]
fn a_202_survives_a_sigkill_and_every_intent_is_accepted_once_without_a_recompute() {
    let scratch = Scratch::new("state");
    let state = scratch.path().join("queue.db");
    let ledger = dead_ledger();
    let url = format!("http://{ledger}");
    let mut env = ledger_knobs(&url);
    env.push(("STATE_PATH", state.to_str().unwrap()));
    let (node, sim, runs) = answered_202_then_killed(&env, ledger);
    node.wait_for_log("durable queue: runs taken back", Duration::from_secs(5));
    let started = Instant::now();
    for (epoch, payees) in &runs {
        wait_emitted(&node, epoch, *payees, Duration::from_secs(30));
    }
    eprintln!("DURABLE: {} runs drained {:?} after the ledger came back", runs.len(), started.elapsed());
    let stats = sim.stats();
    let total: u64 = runs.iter().map(|(_, p)| p).sum();
    for (epoch, payees) in &runs {
        let e = stats["epochs"].as_array().unwrap().iter().find(|e| e["epoch"] == epoch.as_str()).unwrap();
        assert_eq!(e["intents"], *payees, "{epoch}: every payee once");
        assert_eq!(e["total_minor"], e["payout_total_minor"], "{epoch}");
    }
    assert_eq!(stats["keys"], total);
    assert_eq!(
        stats["results"],
        serde_json::json!({"accepted": total, "dup": 0, "conflict": 0}),
        "exactly once"
    );
    assert_eq!(node.metric("quarantine_queue_depth"), 0.0);
    // Settled runs leave the file: a third start has nothing to take back.
    drop(node);
    let node = Node::start(&env);
    node.wait_for_log("runs=0 intents=0", Duration::from_secs(5));
    sim.shutdown();
}

#[test]
fn without_state_path_a_202_dies_with_the_node_until_a_recompute() {
    let ledger = dead_ledger();
    let url = format!("http://{ledger}");
    let env = ledger_knobs(&url);
    let (node, sim, runs) = answered_202_then_killed(&env, ledger);
    thread::sleep(Duration::from_secs(2));
    for (epoch, _) in &runs {
        assert_eq!(progress(&node, epoch).0, 404, "{epoch}: the promise died with the process");
    }
    assert_eq!(sim.stats()["keys"], 0, "nothing resends the intents");
    // Only a client recomputing the epoch settles it.
    let (epoch, payees) = &runs[0];
    let reply = compute_epoch(&node, epoch, 20);
    assert_eq!((reply.status, &reply.json()["ledger"]["status"]), (200, &Value::from("emitted")));
    assert_eq!(sim.stats()["keys"], *payees);
    sim.shutdown();
}

#[test]
fn a_crash_inside_the_send_loop_loses_and_doubles_nothing() {
    if cfg!(not(debug_assertions)) {
        eprintln!("SKIPPED: the kill point exists in debug builds only");
        return;
    }
    let sim = ledger_on(SocketAddr::from(([127, 0, 0, 1], 0)));
    let scratch = Scratch::new("crash");
    let state = scratch.path().join("queue.db");
    let url = sim.url();
    let mut env = ledger_knobs(&url);
    env.push(("STATE_PATH", state.to_str().unwrap()));
    // The ledger answers batch 3; the process dies before its cursor is kept.
    let mut killed_env = env.clone();
    killed_env.push(("REWARDER_TEST_KILL_AT_CURSOR", "3"));
    let mut node = Node::start(&killed_env);
    let body = upload(node.addr, &[], &small_inputs("crash", 60, 3), &small_policy("durable"), false);
    let answer = try_call(node.addr, "POST", "/rewarder/epochs/crash/compute", &[JSON], Some(&body));
    assert!(answer.is_err(), "the node died inside the send loop: {answer:?}");
    let status = node.wait(Duration::from_secs(10)).expect("the node aborted");
    assert!(status.code().is_none(), "killed by a signal: {status:?}");
    assert!(node.log().contains("aborting at cursor move 3"), "{}", node.log());
    let held = sim.stats()["keys"].as_u64().unwrap();
    assert_eq!(held, 30, "three batches of 10 reached the ledger");
    // A restart, no client involved: the drain resends from the kept cursor (batch 3).
    let node = Node::start(&env);
    let (status, ledger) = progress(&node, "crash");
    assert_eq!(status, 200, "the run is known from its record");
    let payees = ledger["accepted"].as_u64().unwrap() + ledger["pending"].as_u64().unwrap();
    assert_eq!(ledger["accepted"], 20, "the cursor of batch 2: {ledger}");
    wait_emitted(&node, "crash", payees, Duration::from_secs(30));
    let stats = sim.stats();
    assert_eq!(stats["keys"], payees, "no intent lost");
    assert_eq!(stats["results"]["accepted"], payees, "none accepted twice");
    assert_eq!(stats["results"]["dup"], 10, "only the batch whose cursor was not kept came again");
    sim.shutdown();
}

#[test]
fn a_newer_foreign_or_garbage_state_file_is_refused_with_exit_2_and_left_as_it_is() {
    let scratch = Scratch::new("refused");
    let newer = scratch.path().join("newer.db");
    let db = rusqlite::Connection::open(&newer).unwrap();
    let app = rewarder_macronode::state::APPLICATION_ID;
    db.execute_batch(&format!("PRAGMA application_id={app}; PRAGMA user_version=99; CREATE TABLE runs (x);"))
        .unwrap();
    drop(db);
    let foreign = scratch.path().join("foreign.db");
    rusqlite::Connection::open(&foreign).unwrap().execute_batch("CREATE TABLE accounts (id);").unwrap();
    let garbage = scratch.path().join("garbage.db");
    let noise: Vec<u8> = (0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&garbage, &noise).unwrap();
    for (path, says) in [
        (&newer, "written by a newer svc-rewarder (schema 99; this build reads up to 1)"),
        (&foreign, "a SQLite database of another program"),
        (&garbage, "not a readable queue file"),
    ] {
        let before = std::fs::read(path).unwrap();
        let env = [("LEDGER_URL", "http://127.0.0.1:9"), ("STATE_PATH", path.to_str().unwrap())];
        let Err((status, log)) = Node::try_start(&env) else { panic!("{} was accepted", path.display()) };
        assert_eq!(status.and_then(|s| s.code()), Some(2), "{log}");
        assert!(log.contains(says) && log.contains("refusing to start rather than reset it"), "{log}");
        assert_eq!(std::fs::read(path).unwrap(), before, "{} untouched", path.display());
    }
    let Err((status, log)) = Node::try_start(&[("STATE_PATH", newer.to_str().unwrap())]) else {
        panic!("STATE_PATH without a ledger started");
    };
    assert_eq!(status.and_then(|s| s.code()), Some(2));
    assert!(log.contains("STATE_PATH") && log.contains("LEDGER_URL"), "{log}");
}

#[test]
fn a_replay_of_an_emitted_run_in_brownout_is_200_and_reaches_no_ledger() {
    let sim = ledger_sim::start(ledger_sim::Config {
        latency_ms: Some((150, 160)),
        ..ledger_sim::Config::default()
    })
    .expect("ledger-sim");
    let url = sim.url();
    let mut env = ledger_knobs(&url);
    env.extend([("LEDGER_P95_BUDGET_MS", "100"), ("LEDGER_WINDOW_S", "600"), ("LEDGER_DEADLINE_MS", "2000")]);
    let node = Node::start(&env);
    let body = upload(node.addr, &[], &small_inputs("settled", 15, 1), &small_policy("durable"), false);
    let path = "/rewarder/epochs/settled/compute?allocations=false";
    let first = node.call("POST", path, &[JSON], Some(&body));
    assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.body));
    assert_eq!(node.metric("ledger_degraded"), 0.0, "three slow requests are too few for a p95");
    // Another run's slow requests make the samples a p95 needs: brownout.
    let other = compute_epoch(&node, "other", 30);
    assert!(matches!(other.status, 200 | 202), "{}", String::from_utf8_lossy(&other.body));
    assert_eq!(node.metric("ledger_degraded"), 1.0, "in brownout");
    let before = sim.stats()["calls"].clone();
    let queued = node.metric("quarantine_queue_depth");
    let replay = node.call("POST", path, &[JSON], Some(&body));
    assert_eq!(replay.status, 200, "{}", String::from_utf8_lossy(&replay.body));
    assert_eq!(replay.json()["ledger"], first.json()["ledger"], "the record answers");
    let after = sim.stats()["calls"].clone();
    assert_eq!(
        (&after["runs"], &after["intents"]),
        (&before["runs"], &before["intents"]),
        "no request of the replay"
    );
    assert_eq!(node.metric("quarantine_queue_depth"), queued, "nothing queued again");
    sim.shutdown();
}

#[test]
fn sigusr1_and_the_reload_endpoint_turn_the_quarantine_only_switch() {
    let sim = ledger_on(SocketAddr::from(([127, 0, 0, 1], 0)));
    let scratch = Scratch::new("switch");
    let file = scratch.path().join("hot.env");
    std::fs::write(&file, "LEDGER_QUARANTINE_ONLY=true\n").unwrap();
    let url = sim.url();
    let mut env = ledger_knobs(&url);
    env.push(("HOT_KNOBS_FILE", file.to_str().unwrap()));
    let node = Node::start(&env);
    assert_eq!(node.metric("ledger_quarantine_only"), 1.0, "the file applies at start");
    let ready = node.call("GET", "/readyz", &[], None).json();
    assert_eq!(
        (&ready["ledger_quarantine_only"], &ready["details"]),
        (&Value::Bool(true), &serde_json::json!(["ledger_quarantine_only"]))
    );
    let held = compute_epoch(&node, "drill", 12);
    assert_eq!((held.status, &held.json()["ledger"]["status"]), (202, &Value::from("quarantined")));
    thread::sleep(Duration::from_millis(600));
    assert_eq!(sim.stats()["requests"], 0, "the switch sends nothing, health probes included");
    // SIGUSR1 re-reads the file like SIGHUP: the switch goes off and the queue drains.
    std::fs::write(&file, "LEDGER_QUARANTINE_ONLY=false\n").unwrap();
    node.signal("USR1");
    node.wait_for_log("hot knobs reloaded", Duration::from_secs(5));
    let payees = held.json()["manifest"]["payees"].as_u64().unwrap();
    wait_emitted(&node, "drill", payees, Duration::from_secs(10));
    assert_eq!(node.metric("ledger_quarantine_only"), 0.0);
    // The admin reload turns it on again.
    std::fs::write(&file, "LEDGER_QUARANTINE_ONLY=on\n").unwrap();
    let on = node.call("POST", "/rewarder/admin/reload", &[], None);
    assert_eq!((on.status, &on.json()["ledger_quarantine_only"]), (200, &Value::Bool(true)));
    assert_eq!(compute_epoch(&node, "drill-2", 12).status, 202);
    assert_eq!(node.call("GET", "/readyz", &[], None).json()["ledger_quarantine_only"], true);
    sim.shutdown();
}

#[test]
fn sigterm_drains_the_queue_before_exiting_and_says_what_is_left() {
    let ledger = dead_ledger();
    let url = format!("http://{ledger}");
    let scratch = Scratch::new("stop");
    let state = scratch.path().join("queue.db");
    let mut env = ledger_knobs(&url);
    env.extend([("STATE_PATH", state.to_str().unwrap()), ("LEDGER_STOP_DRAIN_S", "1")]);
    // The ledger stays down: the stop waits its second, then leaves the queue on the volume.
    let mut node = Node::start(&env);
    let payees = compute_epoch(&node, "left", 15).json()["manifest"]["payees"].as_u64().unwrap();
    let asked = Instant::now();
    node.signal("TERM");
    assert_eq!(node.wait(Duration::from_secs(20)).and_then(|s| s.code()), Some(0), "{}", node.log());
    assert!(asked.elapsed() >= Duration::from_secs(1), "it kept draining for LEDGER_STOP_DRAIN_S");
    assert!(node.log().contains(&format!("runs=1 intents={payees}")), "{}", node.log());
    assert!(node.log().contains("queue left in STATE_PATH at exit"), "{}", node.log());
    // The next stop drains the queue before it exits, once the ledger is back meanwhile.
    env.retain(|(k, _)| *k != "LEDGER_STOP_DRAIN_S");
    env.push(("LEDGER_STOP_DRAIN_S", "30"));
    let mut node = Node::start(&env);
    node.signal("TERM");
    node.wait_for_log("stopping: draining the queue", Duration::from_secs(5));
    let sim = ledger_on(ledger);
    assert_eq!(node.wait(Duration::from_secs(30)).and_then(|s| s.code()), Some(0), "{}", node.log());
    assert!(node.log().contains("queue empty at exit"), "{}", node.log());
    assert_eq!(sim.stats()["keys"], payees, "delivered before the process went");
    sim.shutdown();
}

// ---- the fleet ------------------------------------------------------------------------------

/// Epochs the fleet settles.
const FLEET_EPOCHS: usize = 300;
/// Concurrent clients of the balancer.
const FLEET_CLIENTS: usize = 8;
/// The whole fleet test's budget.
const FLEET_BUDGET: Duration = Duration::from_secs(90);
/// Longest one client keeps trying one epoch.
const EPOCH_BUDGET: Duration = Duration::from_secs(40);

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// nginx in front of `upstreams`, as a foreground child (`master_process off`) writing only
/// inside `dir`.
///
/// - Passive health checks: a node that fails once (connection error, timeout, or a `503`) is
///   skipped for `fail_timeout`, then tried again.
/// - `hash $http_x_affinity consistent`: a client sends its epoch as `X-Affinity`, so the
///   inputs, the policy and the compute of one epoch reach the same node (nodes share
///   nothing); when that node is out, the ring's next node takes its epochs, where a compute
///   finds no documents (`404 unknown_inputs`) and the client uploads them again.
/// - `proxy_next_upstream error timeout http_503 non_idempotent`: a request that failed on one
///   node is retried on the next, POST included. nginx never retries a POST by default, but a
///   compute is idempotent by design: the same documents give the same run id on every node,
///   the ledger answers `200` to the registration of the same run, and every intent carries
///   its idempotency key, so a compute re-run on another node emits nothing twice.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: Scratch,
}

impl Nginx {
    fn start(binary: &Path, upstreams: &[SocketAddr]) -> Nginx {
        let dir = Scratch::new("nginx");
        let port = free_port();
        let d = dir.path().display();
        let servers: String =
            upstreams.iter().map(|a| format!("    server {a} max_fails=1 fail_timeout=3s;\n")).collect();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               upstream rewarder {{\n    hash $http_x_affinity consistent;\n{servers}    keepalive 16;\n  }}\n\
               server {{\n    listen 127.0.0.1:{port};\n    client_max_body_size 64m;\n\
                 location / {{\n      proxy_pass http://rewarder;\n      proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\";\n      proxy_connect_timeout 1s;\n      proxy_read_timeout 20s;\n\
                   proxy_next_upstream error timeout http_503 non_idempotent;\n      proxy_next_upstream_tries 3;\n\
                   proxy_next_upstream_timeout 10s;\n    }}\n  }}\n}}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut nginx = Nginx { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited with {status}: {}", nginx.error_log());
            }
            assert!(Instant::now() < deadline, "nginx did not listen: {}", nginx.error_log());
            thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the clients saw.
#[derive(Debug, Default)]
struct Seen {
    /// Responses by status.
    statuses: std::collections::BTreeMap<u16, usize>,
    /// 5xx answers other than `503 overloaded`/`not_ready`: (status, code or body start).
    bad_5xx: Vec<(u16, String)>,
    /// Transport failures talking to the balancer.
    transport_errors: usize,
    /// Whole upload + compute sequences started again.
    restarts: usize,
}

/// One exchange with the balancer, recorded; `None` = retry (transport error or 5xx).
fn exchange(
    lb: SocketAddr,
    method: &str,
    path: &str,
    epoch: &str,
    body: &[u8],
    seen: &Mutex<Seen>,
) -> Option<Reply> {
    let reply = try_call(lb, method, path, &[JSON, ("X-Affinity", epoch)], Some(body));
    let mut seen = seen.lock().unwrap();
    let Ok(reply) = reply else {
        seen.transport_errors += 1;
        return None;
    };
    *seen.statuses.entry(reply.status).or_default() += 1;
    if reply.status >= 500 {
        let code = reply.code();
        if !(reply.status == 503 && matches!(code.as_str(), "overloaded" | "not_ready")) {
            let what = if code.is_empty() {
                String::from_utf8_lossy(&reply.body).chars().take(80).collect()
            } else {
                code
            };
            seen.bad_5xx.push((reply.status, what));
        }
        return None;
    }
    Some(reply)
}

/// Uploads an epoch's documents and computes it (not a dry run) through the balancer until
/// the ledger step reports every intent emitted.
fn settle(lb: SocketAddr, i: usize, seen: &Mutex<Seen>) -> Result<(), String> {
    let epoch = format!("fleet-{i:04}");
    let inputs = small_inputs(&epoch, 4 + i % 7, i as u64);
    let policy = small_policy("fleet-v1");
    let deadline = Instant::now() + EPOCH_BUDGET;
    let backoff = || thread::sleep(Duration::from_millis(50));
    let mut attempts = 0;
    while Instant::now() < deadline {
        attempts += 1;
        if attempts > 1 {
            seen.lock().unwrap().restarts += 1;
            backoff();
        }
        let Some(put_inputs) = exchange(lb, "PUT", "/rewarder/inputs", &epoch, &inputs, seen) else {
            continue;
        };
        let Some(put_policy) = exchange(lb, "PUT", "/rewarder/policies", &epoch, &policy, seen) else {
            continue;
        };
        if [put_inputs.status, put_policy.status].contains(&429) {
            continue;
        }
        if !matches!(put_inputs.status, 200 | 201) || !matches!(put_policy.status, 200 | 201) {
            return Err(format!("{epoch}: uploads answered {} / {}", put_inputs.status, put_policy.status));
        }
        let (stored_inputs, stored_policy) = (put_inputs.json(), put_policy.json());
        let body = serde_json::json!({
            "inputs_cid": stored_inputs["inputs_cid"],
            "policy_id": stored_policy["policy_id"],
            "policy_hash": stored_policy["policy_hash"],
            "dry_run": false,
        })
        .to_string();
        let path = format!("/rewarder/epochs/{epoch}/compute?allocations=false");
        let Some(reply) = exchange(lb, "POST", &path, &epoch, body.as_bytes(), seen) else { continue };
        match (reply.status, reply.code().as_str()) {
            (200, _) => {
                let ledger = &reply.json()["ledger"];
                if ledger["status"] == "emitted" && ledger["pending"] == 0 {
                    return Ok(());
                }
                return Err(format!("{epoch}: 200 with ledger {ledger}"));
            }
            // Quarantined on a node that may yet die: compute again until emitted.
            (202, _) => {}
            // The epoch moved to a node without its documents: upload them there.
            (404, "unknown_inputs" | "unknown_policy") => {}
            // Clamped: back off (above) and try again.
            (429, _) => {}
            (status, code) => return Err(format!("{epoch}: compute answered {status} {code}")),
        }
    }
    Err(format!("{epoch}: not settled within {EPOCH_BUDGET:?} ({attempts} attempts)"))
}

#[test]
fn a_fleet_of_three_behind_nginx_settles_every_epoch_exactly_once_through_a_node_kill() {
    let Some(nginx_bin) = nginx_binary() else {
        assert!(
            std::env::var_os("FLEET_REQUIRE_NGINX").is_none(),
            "nginx is required (apt-get install nginx-light)"
        );
        eprintln!("SKIPPED: no nginx binary (scripts/fleet-test.sh installs nginx-light)");
        return;
    };
    let started = Instant::now();
    // A ledger with some latency keeps computes in flight (registered, intents on the way)
    // when the node dies, so the kill interrupts emissions, not only idle connections.
    let sim =
        ledger_sim::start(ledger_sim::Config { latency_ms: Some((2, 15)), ..ledger_sim::Config::default() })
            .expect("start the ledger simulator");
    let ledger_url = sim.url();
    // One tenant drives the whole load: lift its clamp, which is not what this test is about.
    let env = [("LEDGER_URL", ledger_url.as_str()), ("TENANT_RPS_MAX", "1000000")];
    let mut nodes: Vec<Node> = (0..3).map(|_| Node::start(&env)).collect();
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let nginx = Nginx::start(&nginx_bin, &addrs);
    let lb = nginx.addr;

    let seen = Mutex::new(Seen::default());
    let next = AtomicUsize::new(0);
    let settled = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let (victim, survivors) = nodes.split_at_mut(1);
    let victim = &mut victim[0];
    let killed_after = thread::scope(|s| {
        for _ in 0..FLEET_CLIENTS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::AcqRel);
                    if i >= FLEET_EPOCHS {
                        break;
                    }
                    match settle(lb, i, &seen) {
                        Ok(()) => {
                            settled.fetch_add(1, Ordering::AcqRel);
                        }
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                }
            });
        }
        // In the middle of the load, with requests in flight: SIGKILL, no drain.
        let deadline = Instant::now() + FLEET_BUDGET;
        while settled.load(Ordering::Acquire) < FLEET_EPOCHS / 3 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        let served = victim.metric("reward_runs_total{status=\"ok\"}");
        victim.kill();
        (settled.load(Ordering::Acquire), served)
    });
    let (killed_after, victim_runs) = killed_after;
    let elapsed = started.elapsed();
    let seen = seen.into_inner().unwrap();
    let failures = failures.into_inner().unwrap();
    let stats = sim.stats();
    eprintln!(
        "fleet: {FLEET_EPOCHS} epochs, {FLEET_CLIENTS} clients, node killed after {killed_after} settled \
         ({victim_runs} runs computed there), {elapsed:?}; client saw {:?}, sequence restarts {}, \
         transport errors {}; ledger results {}",
        seen.statuses, seen.restarts, seen.transport_errors, stats["results"]
    );
    assert!(victim_runs > 0.0, "the killed node had taken its share of the load");
    assert!(
        failures.is_empty(),
        "{} epochs failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(seen.bad_5xx.is_empty(), "5xx other than 503 overloaded/not_ready: {:?}", seen.bad_5xx);
    assert!(killed_after < FLEET_EPOCHS, "the node was killed before the load ended");
    assert!(elapsed < FLEET_BUDGET, "the fleet test took {elapsed:?}");

    let epochs = stats["epochs"].as_array().expect("epochs");
    assert_eq!(epochs.len(), FLEET_EPOCHS, "every epoch registered once");
    let mut payees_total = 0;
    for e in epochs {
        assert_eq!(e["tenant"], "default");
        assert_eq!(e["intents"], e["payees"], "every payee paid exactly once: {e}");
        assert_eq!(e["total_minor"], e["payout_total_minor"], "the whole payout, no more: {e}");
        payees_total += e["payees"].as_u64().unwrap();
    }
    assert_eq!(stats["keys"].as_u64(), Some(payees_total), "no intent beyond the payees");
    assert_eq!(stats["results"]["conflict"], 0, "no key ever carried two payloads");
    assert_eq!(
        stats["results"]["accepted"].as_u64(),
        Some(payees_total),
        "each intent accepted exactly once"
    );
    for node in survivors.iter() {
        assert_eq!(node.metric("reward_invariant_fail_total"), 0.0);
        assert_eq!(node.metric("quarantine_queue_depth"), 0.0);
    }
    drop(nginx);
    drop(nodes);
    sim.shutdown();
}
