//! A simulated ledger: the *ledger* side of the egress protocol of API.md §4, as a test peer
//! for the rewarder's egress client (`rewarder-testkit ledger-sim`, or [`start`] in-process).
//!
//! **What it is.** An HTTP/1.1 server that registers runs (`PUT /v1/runs/{tenant}/{epoch}`),
//! takes payout intents (`POST /v1/intents`) with the idempotency rules of the protocol
//! (`accepted` / `dup` / `conflict`, CALCULUS.md §4 keys), answers health probes
//! (`GET /v1/health`), and shows what it holds (`GET /v1/stats`), with injectable faults —
//! latency, 5xx answers, lost acknowledgements, a down window, garbage answers — and an
//! optional fsync'd journal so that a restart keeps exactly what was acknowledged.
//!
//! **What it is not.** A ledger: no balances, accounts, authentication, TLS, multi-process
//! safety or persistence guarantees beyond its journal; no transfer ever happens. It trusts
//! its loopback clients, keeps everything in memory, and is meant to run for one test.
//!
//! # Rules beyond the brief of API.md §4
//!
//! Being a peer that must catch a drifting client, it is strict:
//! - bodies must have exactly the documented fields in their documented forms, and every
//!   `idempotency_key` must be the key of its `(tenant, epoch, actor)` (else `400`);
//! - a run registration with the `run_id` holding the epoch but another manifest digest,
//!   total or payee count is refused (`409 run_mismatch`), not treated as the same run;
//! - intents must belong to the run (and manifest digest) that holds their epoch: a request
//!   with an intent of an unregistered epoch (`run_not_registered`) or of another run
//!   (`epoch_conflict`) is refused whole with `409`, nothing applied. `conflict` results
//!   therefore mean "the same key with another amount" from the registered run itself.
//!
//! # Fault injection (per call, not `GET /v1/stats`)
//!
//! In this order: a call inside the `--down` window gets its connection closed without any
//! response (the client sees a connection error, as with a dead ledger behind a proxy; the
//! port stays open so that `/v1/stats` keeps answering); otherwise the call waits a latency
//! drawn uniformly from `--latency-ms`, then fails with `503 unavailable` with probability
//! `--fail-rate` (before applying anything), then is handled. A state-changing call that
//! applied is answered `503` with probability `--lost-ack-rate` (applied and journaled, the
//! acknowledgement lost: a retry must see `200`/`dup`). With `--garbage`, a valid
//! `POST /v1/intents` is answered `200` with an unusable body and *not* applied. The draws
//! come from a [`SplitMix64`] seeded by `--seed`: the same sequence of calls meets the same
//! faults.
//!
//! # Stats
//!
//! `GET /v1/stats` answers
//! `{"results":{"accepted":n,"dup":n,"conflict":n},"requests":n,"calls":{"runs":n,"intents":n,"health":n},"epochs":[…],"keys":n}`
//! where `results` counts the verdicts this process gave (applied requests only), `requests`
//! counts every call this process received except `GET /v1/stats` (faulted ones included),
//! `calls` splits them by route (`PUT /v1/runs/…`, `POST /v1/intents`, `GET /v1/health`: a
//! test tells a node's health probes from its payouts), and
//! `epochs` (sorted by tenant then epoch) and `keys` are the ledger state, which a journal
//! carries across restarts. Each epoch is
//! `{"tenant","epoch","run_id","manifest_digest","payout_total_minor","payees","total_minor","intents"}`
//! with `total_minor` the decimal sum of the accepted amounts and `intents` their count.

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use rewarder_gen::rng::SplitMix64;

pub mod http;
pub mod journal;
pub mod state;
pub mod wire;

use http::{Control, Reply, Request};
use journal::{Journal, Record, Replay};
use state::{Ledger, Refusal, Registration};

/// How `POST /v1/intents` answers under `--garbage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Garbage {
    /// `200` with `Content-Type: application/json` and a body that is not JSON.
    NonJson,
    /// `200` with well-formed results, one fewer than the intents sent (one for an empty batch).
    WrongCount,
}

/// The simulator's settings (see the module docs for their effect).
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    pub bind: SocketAddr,
    /// Per-call latency range in milliseconds, inclusive; `None` for none.
    pub latency_ms: Option<(u64, u64)>,
    /// Probability of answering `503` without applying.
    pub fail_rate: f64,
    /// Probability of answering `503` after applying a state change.
    pub lost_ack_rate: f64,
    /// Window after start, `[from, to)`, during which calls are dropped unanswered.
    pub down: Option<(Duration, Duration)>,
    /// Journal file; `None` keeps state in memory only.
    pub journal: Option<PathBuf>,
    /// Garbage answers to `POST /v1/intents`.
    pub garbage: Option<Garbage>,
    /// Seed of the fault draws.
    pub seed: u64,
}

impl Default for Config {
    /// Loopback, a free port, no faults, no journal, seed 1.
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            latency_ms: None,
            fail_rate: 0.0,
            lost_ack_rate: 0.0,
            down: None,
            journal: None,
            garbage: None,
            seed: 1,
        }
    }
}

/// A failure to start the simulator.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError(pub String);

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// The largest `--latency-ms` accepted (ten minutes).
pub const MAX_LATENCY_MS: u64 = 600_000;

/// Parses `MIN..MAX` (or a single `N`) milliseconds, `MIN <= MAX <= MAX_LATENCY_MS`.
pub fn parse_latency(s: &str) -> Result<(u64, u64), String> {
    let (lo, hi) = s.split_once("..").unwrap_or((s, s));
    let parse =
        |v: &str| v.trim().parse::<u64>().map_err(|_| format!("expected MIN..MAX milliseconds, got {s:?}"));
    let (lo, hi) = (parse(lo)?, parse(hi)?);
    if lo > hi {
        return Err(format!("empty latency range {s:?}: MIN must not exceed MAX"));
    }
    if hi > MAX_LATENCY_MS {
        return Err(format!("latency above {MAX_LATENCY_MS} ms in {s:?}"));
    }
    Ok((lo, hi))
}

/// Parses a probability in `[0, 1]`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("expected a probability between 0 and 1, got {s:?}")),
    }
}

/// Parses `FROM..TO` seconds after start (fractions allowed), `FROM < TO`.
pub fn parse_down(s: &str) -> Result<(Duration, Duration), String> {
    let err = || format!("expected FROM..TO seconds after start with FROM < TO, got {s:?}");
    let (from, to) = s.split_once("..").ok_or_else(err)?;
    let secs = |v: &str| {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0 && *x < 1e9)
            .map(Duration::from_secs_f64)
    };
    match (secs(from), secs(to)) {
        (Some(from), Some(to)) if from < to => Ok((from, to)),
        _ => Err(err()),
    }
}

/// A running simulator. Dropping it stops it (as [`LedgerSim::shutdown`]).
#[derive(Debug)]
pub struct LedgerSim {
    sim: Arc<Sim>,
    control: Arc<Control>,
    addr: SocketAddr,
    replay: Replay,
    acceptor: Option<JoinHandle<()>>,
}

/// Binds, replays the journal if any, and starts serving on background threads.
///
/// # Errors
/// On an invalid setting, a bind failure, or an unreadable or damaged journal.
pub fn start(config: Config) -> Result<LedgerSim, StartError> {
    let rate_ok = |p: f64| (0.0..=1.0).contains(&p);
    if !rate_ok(config.fail_rate) || !rate_ok(config.lost_ack_rate) {
        return Err(StartError("fail and lost-ack rates must be between 0 and 1".into()));
    }
    if config.latency_ms.is_some_and(|(lo, hi)| lo > hi) || config.down.is_some_and(|(a, b)| a >= b) {
        return Err(StartError("empty latency range or down window".into()));
    }
    let mut ledger = Ledger::default();
    let (journal, replay) = match &config.journal {
        Some(path) => {
            let (j, r) = Journal::open(path, &mut ledger).map_err(StartError)?;
            (Some(j), r)
        }
        None => (None, Replay::default()),
    };
    let listener = TcpListener::bind(config.bind)
        .map_err(|e| StartError(format!("cannot bind {}: {e}", config.bind)))?;
    let addr =
        listener.local_addr().map_err(|e| StartError(format!("cannot read the bound address: {e}")))?;
    let sim = Arc::new(Sim {
        rng: Mutex::new(SplitMix64::new(config.seed)),
        config,
        started: Instant::now(),
        requests: AtomicU64::new(0),
        calls: Default::default(),
        core: Mutex::new(Core { ledger, journal, accepted: 0, dup: 0, conflict: 0 }),
    });
    let control = Arc::new(Control::default());
    let acceptor = std::thread::Builder::new()
        .name("ledger-sim-accept".into())
        .spawn({
            let (sim, control) = (Arc::clone(&sim), Arc::clone(&control));
            move || http::serve(listener, control, sim)
        })
        .map_err(|e| StartError(format!("cannot start the accept thread: {e}")))?;
    Ok(LedgerSim { sim, control, addr, replay, acceptor: Some(acceptor) })
}

impl LedgerSim {
    /// The bound address (with the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the base URL to give a client as `LEDGER_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the journal replay found at start.
    pub fn replay(&self) -> Replay {
        self.replay
    }

    /// The body of `GET /v1/stats`.
    pub fn stats(&self) -> Value {
        self.sim.stats()
    }

    /// Stops accepting, lets in-flight requests finish (bounded wait), and returns.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.control.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        let max_latency = self.sim.config.latency_ms.map_or(0, |(_, hi)| hi);
        let deadline = Instant::now() + Duration::from_secs(5) + Duration::from_millis(max_latency);
        while self.control.live.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for LedgerSim {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Ledger state, journal and verdict counters, under one lock.
#[derive(Debug)]
struct Core {
    ledger: Ledger,
    journal: Option<Journal>,
    accepted: u64,
    dup: u64,
    conflict: u64,
}

impl Core {
    /// Journals `record` (when journaling) before the caller applies it.
    fn journal(&mut self, record: &Record) -> Result<(), Reply> {
        let Some(j) = self.journal.as_mut() else { return Ok(()) };
        j.append(record).map_err(|e| {
            eprintln!("ledger-sim: journal {}: write failed, request not applied: {e}", j.path().display());
            error(500, "journal_error", &format!("journal write failed: {e}"), json!({}))
        })
    }
}

/// The shared simulator: configuration, fault draws, state.
#[derive(Debug)]
struct Sim {
    config: Config,
    started: Instant,
    rng: Mutex<SplitMix64>,
    requests: AtomicU64,
    /// Calls by route, in [`ROUTES`] order.
    calls: [AtomicU64; 3],
    core: Mutex<Core>,
}

/// The routes `calls` counts (first path segment after `/v1/`).
const ROUTES: [&str; 3] = ["runs", "intents", "health"];

/// The faults drawn for one call.
struct Draw {
    latency: Duration,
    fail: bool,
    lose_ack: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the state half-applied (commits are
    // infallible after their checks), so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn error(status: u16, code: &str, message: &str, details: Value) -> Reply {
    Reply::json(status, &json!({"error": {"code": code, "message": message, "details": details}}))
}

/// A uniform draw in `[0, 1)` from the top 53 bits.
fn unit(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

impl Sim {
    fn stats(&self) -> Value {
        let core = lock(&self.core);
        json!({
            "results": {"accepted": core.accepted, "dup": core.dup, "conflict": core.conflict},
            "requests": self.requests.load(Ordering::SeqCst),
            "calls": ROUTES.iter().zip(&self.calls).map(|(r, c)| (r.to_string(), json!(c.load(Ordering::SeqCst)))).collect::<serde_json::Map<_, _>>(),
            "epochs": core.ledger.epochs_json(),
            "keys": core.ledger.key_count(),
        })
    }

    fn draw(&self) -> Draw {
        let mut rng = lock(&self.rng);
        // Always three draws per call, so that the stream does not depend on the flags.
        let latency = rng.next_u64();
        let (fail, lose_ack) = (unit(&mut rng), unit(&mut rng));
        let latency = self
            .config
            .latency_ms
            .map_or(0, |(lo, hi)| (hi - lo).checked_add(1).map_or(latency, |n| lo + latency % n));
        Draw {
            latency: Duration::from_millis(latency),
            fail: fail < self.config.fail_rate,
            lose_ack: lose_ack < self.config.lost_ack_rate,
        }
    }

    fn is_down(&self) -> bool {
        self.config.down.is_some_and(|(from, to)| (from..to).contains(&self.started.elapsed()))
    }

    fn register(&self, tenant: &str, epoch: &str, body: &[u8], lose_ack: bool) -> Reply {
        let run = match wire::parse_run(body) {
            Ok(r) => r,
            Err(e) => return error(400, e.code, &e.message, e.details),
        };
        let ok = |status, what| {
            Reply::json(
                status,
                &json!({"status": what, "tenant": tenant, "epoch": epoch, "run_id": run.run_id}),
            )
        };
        let mut core = lock(&self.core);
        match core.ledger.check_run(tenant, epoch, &run) {
            Registration::Same => ok(200, "already_registered"),
            Registration::HeldBy(held_by) => error(
                409,
                "epoch_conflict",
                &format!("epoch {tenant}/{epoch} is held by run {held_by}"),
                json!({"run_id": held_by}),
            ),
            Registration::Mismatch(held) => error(
                409,
                "run_mismatch",
                &format!(
                    "run {} holds epoch {tenant}/{epoch} with another manifest, total or payee count",
                    held.run_id
                ),
                json!({
                    "run_id": held.run_id,
                    "manifest_digest": held.manifest_digest,
                    "payout_total_minor": held.payout_total_minor,
                    "payees": held.payees,
                }),
            ),
            Registration::New => {
                let record =
                    Record::Run { tenant: tenant.to_owned(), epoch: epoch.to_owned(), run: run.clone() };
                if let Err(reply) = core.journal(&record) {
                    return reply;
                }
                core.ledger.insert_run(tenant, epoch, run.clone());
                drop(core);
                if lose_ack { lost_ack() } else { ok(201, "registered") }
            }
        }
    }

    fn intents(&self, body: &[u8], lose_ack: bool) -> Reply {
        let intents = match wire::parse_intents(body) {
            Ok(i) => i,
            Err(e) => return error(400, e.code, &e.message, e.details),
        };
        if let Some(mode) = self.config.garbage {
            return garbage(mode, &intents);
        }
        let mut core = lock(&self.core);
        let plan = match core.ledger.plan(&intents) {
            Ok(p) => p,
            Err(Refusal::NotRegistered { index }) => {
                let i = &intents[index];
                return error(
                    409,
                    "run_not_registered",
                    &format!("intents[{index}]: no run is registered for epoch {}/{}", i.tenant, i.epoch),
                    json!({"index": index}),
                );
            }
            Err(Refusal::WrongRun { index, held_by }) => {
                let i = &intents[index];
                return error(
                    409,
                    "epoch_conflict",
                    &format!(
                        "intents[{index}]: epoch {}/{} is held by run {held_by} (or another manifest digest)",
                        i.tenant, i.epoch
                    ),
                    json!({"index": index, "run_id": held_by}),
                );
            }
        };
        let accepted: Vec<wire::Intent> = plan.accepted(&intents).cloned().collect();
        if !accepted.is_empty() {
            let record = Record::Intents(accepted);
            if let Err(reply) = core.journal(&record) {
                return reply;
            }
            let Record::Intents(accepted) = record else { unreachable!() };
            core.ledger.insert_intents(&accepted).expect("a successful plan applies");
        }
        for v in &plan.verdicts {
            *match v {
                state::Verdict::Accepted => &mut core.accepted,
                state::Verdict::Dup => &mut core.dup,
                state::Verdict::Conflict => &mut core.conflict,
            } += 1;
        }
        drop(core);
        if lose_ack {
            return lost_ack();
        }
        let results: Vec<Value> = intents
            .iter()
            .zip(&plan.verdicts)
            .map(|(i, v)| json!({"idempotency_key": i.idempotency_key, "result": v.as_str()}))
            .collect();
        Reply::json(200, &json!({ "results": results }))
    }
}

fn lost_ack() -> Reply {
    error(503, "unavailable", "injected failure after applying (--lost-ack-rate)", json!({}))
}

fn garbage(mode: Garbage, intents: &[wire::Intent]) -> Reply {
    match mode {
        Garbage::NonJson => Reply::Send {
            status: 200,
            content_type: "application/json",
            body: b"<html><body>502 Bad Gateway (injected garbage)</body></html>".to_vec(),
        },
        Garbage::WrongCount => {
            let n = intents.len();
            let results: Vec<Value> = if n == 0 {
                vec![json!({"idempotency_key": format!("b3:{}", "0".repeat(64)), "result": "accepted"})]
            } else {
                intents[..n - 1]
                    .iter()
                    .map(|i| json!({"idempotency_key": i.idempotency_key, "result": "accepted"}))
                    .collect()
            };
            Reply::json(200, &json!({ "results": results }))
        }
    }
}

/// Decodes `%XX` escapes of one path segment.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl http::Handler for Sim {
    fn handle(&self, req: &Request) -> Reply {
        let path = req.path();
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        if segments == ["v1", "stats"] {
            return if req.method == "GET" {
                Reply::json(200, &self.stats())
            } else {
                error(405, "method_not_allowed", "GET only", json!({}))
            };
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        if let ["v1", route, ..] = segments.as_slice()
            && let Some(i) = ROUTES.iter().position(|r| r == route)
        {
            self.calls[i].fetch_add(1, Ordering::SeqCst);
        }
        if self.is_down() {
            return Reply::Drop;
        }
        let draw = self.draw();
        if !draw.latency.is_zero() {
            std::thread::sleep(draw.latency);
        }
        if draw.fail {
            return error(503, "unavailable", "injected failure (--fail-rate)", json!({}));
        }
        let method = req.method.as_str();
        match segments.as_slice() {
            ["v1", "health"] => match method {
                "GET" => Reply::json(200, &json!({"ok": true})),
                _ => error(405, "method_not_allowed", "GET only", json!({})),
            },
            ["v1", "intents"] => match method {
                "POST" => self.intents(&req.body, draw.lose_ack),
                _ => error(405, "method_not_allowed", "POST only", json!({})),
            },
            ["v1", "runs", tenant, epoch] => {
                if method != "PUT" {
                    return error(405, "method_not_allowed", "PUT only", json!({}));
                }
                match (percent_decode(tenant), percent_decode(epoch)) {
                    (Some(t), Some(e)) if wire::is_valid_tenant(&t) && crate::is_valid_epoch(&e) => {
                        self.register(&t, &e, &req.body, draw.lose_ack)
                    }
                    _ => error(
                        400,
                        "bad_request",
                        "tenant must be 1-64 chars of [A-Za-z0-9._-] and epoch 1-128 chars of [A-Za-z0-9._:-]",
                        json!({"field": "path"}),
                    ),
                }
            }
            _ => error(404, "not_found", &format!("no route {method} {path}"), json!({})),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_parsers() {
        assert_eq!(parse_latency("50..500"), Ok((50, 500)));
        assert_eq!(parse_latency("7"), Ok((7, 7)));
        assert!(
            parse_latency("5..1").is_err()
                && parse_latency("a..b").is_err()
                && parse_latency("-1..2").is_err()
        );
        assert_eq!(parse_rate("0.1"), Ok(0.1));
        assert_eq!(parse_rate("1"), Ok(1.0));
        for bad in ["1.5", "-0.1", "NaN", "x"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_down("5..10"), Ok((Duration::from_secs(5), Duration::from_secs(10))));
        assert_eq!(parse_down("0..0.5"), Ok((Duration::ZERO, Duration::from_millis(500))));
        for bad in ["5", "10..5", "3..3", "-1..2", "inf..inf", "a..2"] {
            assert!(parse_down(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("2026%3A11"), Some("2026:11".into()));
        assert_eq!(percent_decode("plain"), Some("plain".into()));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
    }

    #[test]
    fn draws_are_deterministic_per_seed() {
        let config = Config { fail_rate: 0.5, latency_ms: Some((10, 20)), ..Config::default() };
        let sim = |seed| Sim {
            config: Config { seed, ..config.clone() },
            started: Instant::now(),
            rng: Mutex::new(SplitMix64::new(seed)),
            requests: AtomicU64::new(0),
            calls: Default::default(),
            core: Mutex::new(Core {
                ledger: Ledger::default(),
                journal: None,
                accepted: 0,
                dup: 0,
                conflict: 0,
            }),
        };
        let seq = |s: &Sim| (0..64).map(|_| s.draw()).map(|d| (d.latency, d.fail)).collect::<Vec<_>>();
        let (a, b, c) = (sim(1), sim(1), sim(2));
        let (sa, sb, sc) = (seq(&a), seq(&b), seq(&c));
        assert_eq!(sa, sb);
        assert_ne!(sa, sc);
        assert!(sa.iter().all(|(l, _)| (10..=20).contains(&(l.as_millis() as u64))));
        let fails = sa.iter().filter(|(_, f)| *f).count();
        assert!((10..=54).contains(&fails), "{fails}");
    }
}
