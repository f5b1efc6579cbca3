//! The fakes egress is tested against: a ledger with scripted faults, a pacer that advances a
//! fake clock, a durable queue in memory, and a node built from them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::super::*;
use crate::inputs::Limits;
use crate::service::durable::DurableRun;
use crate::service::ledger::LedgerErrorKind;
use crate::service::{Artifacts, Clock, Config, HotKnobs, Kept, Profile, Reload, Request, Response};
use crate::sign::SigningKeys;

pub(crate) const MS: Duration = Duration::from_millis(1);

#[derive(Default)]
pub(crate) struct FakeClock {
    pub(crate) nanos: AtomicU64,
}

impl FakeClock {
    pub(crate) fn advance(&self, d: Duration) {
        self.nanos.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
    fn unix_seconds(&self) -> u64 {
        1_800_000_000
    }
}

pub(crate) struct Host;
impl Artifacts for Host {
    fn keep(&self, _: &str, _: &[u8]) -> Kept {
        Kept::Held
    }
}

/// A reload source that refuses.
pub(crate) struct Refuses;
impl Reload for Refuses {
    fn hot_knobs(&self) -> Result<HotKnobs, String> {
        Err("fixed".into())
    }
}

/// The hot knobs a reload finds: an operator's file, set by the test.
pub(crate) struct Knobs(pub(crate) Mutex<HotKnobs>);
impl Reload for Knobs {
    fn hot_knobs(&self) -> Result<HotKnobs, String> {
        Ok(*self.0.lock().unwrap())
    }
}

/// A durable queue in memory: rows survive a "restart" (a new service on the same store).
#[derive(Default)]
pub(crate) struct MemStore {
    pub(crate) rows: Mutex<Vec<DurableRun>>,
    /// Ledger requests made before each insert (durable before the first one).
    pub(crate) ledger_calls_at_insert: Mutex<Vec<usize>>,
    pub(crate) ledger: Mutex<Option<Arc<FakeLedger>>>,
    pub(crate) refuse: std::sync::atomic::AtomicBool,
}

impl MemStore {
    pub(crate) fn rows(&self) -> Vec<DurableRun> {
        self.rows.lock().unwrap().clone()
    }
}

impl QueueStore for MemStore {
    fn load(&self) -> Result<Vec<DurableRun>, StoreError> {
        Ok(self.rows())
    }
    fn insert(&self, run: &DurableRun) -> Result<(), StoreError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(StoreError("disk full".into()));
        }
        if let Some(l) = &*self.ledger.lock().unwrap() {
            let s = l.state();
            self.ledger_calls_at_insert.lock().unwrap().push(s.registrations as usize + s.batches.len());
        }
        let mut rows = self.rows.lock().unwrap();
        if !rows.iter().any(|r| r.run_id == run.run_id) {
            rows.push(run.clone());
        }
        Ok(())
    }
    fn advance(&self, run_id: &str, cursor: Cursor) -> Result<(), StoreError> {
        for r in self.rows.lock().unwrap().iter_mut().filter(|r| r.run_id == run_id) {
            r.cursor = cursor;
        }
        Ok(())
    }
    fn remove(&self, run_id: &str) -> Result<(), StoreError> {
        self.rows.lock().unwrap().retain(|r| r.run_id != run_id);
        Ok(())
    }
}

/// Sleeps by advancing the fake clock; "random" is a fixed number.
pub(crate) struct FakePacer {
    pub(crate) clock: Arc<FakeClock>,
    pub(crate) pauses: Mutex<Vec<Duration>>,
}

impl Pacer for FakePacer {
    fn pause(&self, d: Duration) {
        self.clock.advance(d);
        self.pauses.lock().unwrap().push(d);
    }
    fn random_u64(&self) -> u64 {
        7_000_000 // 7 ms of jitter at most
    }
}

/// What the next ledger calls do instead of answering normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Fail(LedgerErrorKind),
    /// Applies the intents, then loses the answer (a timeout after the ledger acted).
    ApplyThenTimeout,
    /// Answers one result too few.
    WrongCount,
    /// Answers the results in reverse order.
    OutOfOrder,
}

#[derive(Default)]
pub(crate) struct LedgerState {
    pub(crate) runs: HashMap<(String, String), String>,
    pub(crate) keys: HashMap<String, String>,
    pub(crate) accepted: u64,
    pub(crate) dup: u64,
    pub(crate) conflict: u64,
    pub(crate) registrations: u32,
    pub(crate) batches: Vec<usize>,
    pub(crate) probes: u32,
    /// What the next calls do, one entry per call (`None`: answer normally).
    pub(crate) script: VecDeque<Option<Fault>>,
    /// A fault every intents answer has.
    pub(crate) garbage: Option<Fault>,
    pub(crate) down: bool,
    pub(crate) latency: Duration,
    pub(crate) probe_latency: Duration,
}

/// The ledger of API.md §4 in memory: registration per tenant+epoch, intents per key.
pub(crate) struct FakeLedger {
    pub(crate) clock: Arc<FakeClock>,
    pub(crate) state: Mutex<LedgerState>,
}

impl FakeLedger {
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        self.state.lock().unwrap()
    }

    /// Latency, outage and the script common to every call (a fault that alters an
    /// intents answer is a plain answer to other calls).
    pub(crate) fn enter(&self, probe: bool, intents: bool) -> Result<Option<Fault>, LedgerError> {
        let mut s = self.state();
        self.clock.advance(if probe { s.probe_latency } else { s.latency });
        if s.down {
            return Err(LedgerError::new(LedgerErrorKind::Connection, "down"));
        }
        match s.script.pop_front().flatten() {
            Some(Fault::Fail(kind)) => Err(LedgerError::new(kind, "scripted")),
            Some(other) if intents => Ok(Some(other)),
            _ => Ok(if intents { s.garbage } else { None }),
        }
    }

    pub(crate) fn apply(&self, intents: &[Intent]) -> Vec<IntentOutcome> {
        let mut s = self.state();
        s.batches.push(intents.len());
        intents
            .iter()
            .map(|i| {
                let payload = format!("{}|{}|{}|{}", i.actor, i.amount_minor, i.run_id, i.manifest_digest);
                let verdict = match s.keys.get(&i.idempotency_key) {
                    None => {
                        s.keys.insert(i.idempotency_key.clone(), payload);
                        s.accepted += 1;
                        Verdict::Accepted
                    }
                    Some(p) if *p == payload => {
                        s.dup += 1;
                        Verdict::Dup
                    }
                    Some(_) => {
                        s.conflict += 1;
                        Verdict::Conflict
                    }
                };
                IntentOutcome { idempotency_key: i.idempotency_key.clone(), verdict }
            })
            .collect()
    }
}

impl Ledger for FakeLedger {
    fn register_run(
        &self,
        tenant: &str,
        epoch: &str,
        run: &RunRegistration,
    ) -> Result<Registration, LedgerError> {
        self.enter(false, false)?;
        let mut s = self.state();
        s.registrations += 1;
        let key = (tenant.to_owned(), epoch.to_owned());
        Ok(match s.runs.get(&key) {
            None => {
                s.runs.insert(key, run.run_id.clone());
                Registration::Created
            }
            Some(id) if *id == run.run_id => Registration::Same,
            Some(_) => Registration::Conflict,
        })
    }

    fn send_intents(&self, intents: &[Intent]) -> Result<Vec<IntentOutcome>, LedgerError> {
        let fault = self.enter(false, true)?;
        let mut outcomes = self.apply(intents);
        match fault {
            Some(Fault::ApplyThenTimeout) => {
                return Err(LedgerError::new(LedgerErrorKind::Timeout, "answer lost"));
            }
            Some(Fault::WrongCount) => {
                outcomes.pop();
            }
            Some(Fault::OutOfOrder) => outcomes.reverse(),
            _ => {}
        }
        Ok(outcomes)
    }

    fn health(&self) -> Result<(), LedgerError> {
        self.state().probes += 1;
        self.enter(true, false).map(drop)
    }
}

pub(crate) struct Node {
    pub(crate) service: Service,
    pub(crate) clock: Arc<FakeClock>,
    pub(crate) ledger: Arc<FakeLedger>,
    pub(crate) pacer: Arc<FakePacer>,
    pub(crate) knobs: Arc<Knobs>,
    pub(crate) egress: EgressConfig,
    pub(crate) store: Option<Arc<MemStore>>,
}

/// Egress as the tests drive it: 2 retries, batches of 2, a 100 ms budget over a 2 s window,
/// room for 100,000 intents.
pub(crate) fn config() -> EgressConfig {
    EgressConfig::new(2, 2, Duration::from_millis(100), Duration::from_secs(2), 100_000)
}

pub(crate) fn service_config(runs_max: usize) -> Config {
    Config {
        profile: Profile::Micronode,
        auth_keys: None,
        limits: Limits::UNBOUNDED,
        req_body_max_bytes: 1 << 20,
        inputs_max_bytes: 1 << 20,
        runs_max,
        runs_max_bytes: usize::MAX,
        documents_max_bytes: 1 << 24,
        tenant_store_max_bytes: None,
        tenant_runs_max: None,
        keys: SigningKeys::from_seeds(&[3; 32], None),
        hot: HotKnobs { tenant_rps_max: 1_000_000, ..HotKnobs::default() },
        features: Vec::new(),
    }
}

pub(crate) fn node(egress: EgressConfig) -> Node {
    node_with(egress, 64)
}

/// A node keeping at most `runs_max` runs.
pub(crate) fn node_with(egress: EgressConfig, runs_max: usize) -> Node {
    let clock = Arc::new(FakeClock::default());
    clock.advance(Duration::from_secs(100));
    let ledger = Arc::new(FakeLedger { clock: Arc::clone(&clock), state: Mutex::default() });
    let pacer = Arc::new(FakePacer { clock: Arc::clone(&clock), pauses: Mutex::default() });
    let config = service_config(runs_max);
    let knobs = Arc::new(Knobs(Mutex::new(config.hot)));
    let service = Service::new(config, clock.clone(), Arc::new(Host), knobs.clone()).with_ledger(
        ledger.clone(),
        pacer.clone(),
        egress,
    );
    Node { service, clock, ledger, pacer, knobs, egress, store: None }
}

/// A node keeping its queue in a fresh [`MemStore`].
pub(crate) fn durable_node(egress: EgressConfig) -> Node {
    let mut n = node(egress);
    let store = Arc::new(MemStore::default());
    *store.ledger.lock().unwrap() = Some(n.ledger.clone());
    n.service = n.service.with_queue_store(store.clone()).unwrap();
    n.store = Some(store);
    n
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) json: Value,
}

impl Node {
    /// The same node after a crash: a new service (nothing in memory) on the same store,
    /// ledger and clock.
    pub(crate) fn restart(&self) -> Node {
        let store = self.store.clone().expect("a durable node");
        let config = service_config(64);
        let knobs = Arc::new(Knobs(Mutex::new(config.hot)));
        let service = Service::new(config, self.clock.clone(), Arc::new(Host), knobs.clone())
            .with_ledger(self.ledger.clone(), self.pacer.clone(), self.egress)
            .with_queue_store(store.clone())
            .unwrap();
        Node {
            service,
            clock: self.clock.clone(),
            ledger: self.ledger.clone(),
            pacer: self.pacer.clone(),
            knobs,
            egress: self.egress,
            store: Some(store),
        }
    }

    /// Sets the quarantine-only switch and reloads, as an operator would.
    pub(crate) fn quarantine_only(&self, on: bool) {
        self.knobs.0.lock().unwrap().ledger_quarantine_only = on;
        assert!(self.service.reload_now().unwrap().ledger_quarantine_only == on);
    }

    pub(crate) fn call(&self, method: &str, url: &str, body: &[u8]) -> Answer {
        let r: Response =
            self.service.handle(&Request { method, url, authorization: None, body, corr_id: "test" });
        let json = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        Answer { status: r.status, json }
    }

    /// Like [`Node::compute`] on a node whose policy has another id (another run of the
    /// same epoch, computed elsewhere: no local record of the first).
    pub(crate) fn compute_as(&self, epoch: &str, pool: u64, actors: usize, policy_id: &str) -> Answer {
        lock(&self.service.egress.as_ref().unwrap().claims).remove(&claim_key("default", epoch));
        self.compute_with(epoch, pool, actors, false, policy_id)
    }

    /// Stores the documents of an epoch with `actors` payees and computes it.
    pub(crate) fn compute(&self, epoch: &str, pool: u64, actors: usize, dry_run: bool) -> Answer {
        self.compute_with(epoch, pool, actors, dry_run, "p1")
    }

    pub(crate) fn compute_with(
        &self,
        epoch: &str,
        pool: u64,
        actors: usize,
        dry_run: bool,
        policy_id: &str,
    ) -> Answer {
        let names: Vec<String> = (0..actors).map(|i| format!("\"acct:a{i:03}\"")).collect();
        let events: Vec<String> = (0..actors).map(|i| format!("[{},{i},0,{}]", i + 1, i + 1)).collect();
        let inputs = format!(
            r#"{{"schema":"rewarder.inputs.v1","epoch":"{epoch}","pool_minor":"{pool}","kinds":["k"],"actors":[{}],"events":[{}]}}"#,
            names.join(","),
            events.join(",")
        );
        let policy =
            format!(r#"{{"schema":"rewarder.policy.v1","policy_id":"{policy_id}","weights":{{"k":1}}}}"#);
        let cid = self.call("PUT", "/rewarder/inputs", inputs.as_bytes()).json["inputs_cid"].clone();
        let hash = self.call("PUT", "/rewarder/policies", policy.as_bytes()).json["policy_hash"].clone();
        let body = serde_json::json!({
            "inputs_cid": cid, "policy_id": policy_id, "policy_hash": hash, "dry_run": dry_run,
        });
        self.call("POST", &format!("/rewarder/epochs/{epoch}/compute"), body.to_string().as_bytes())
    }

    pub(crate) fn metric(&self, name: &str) -> u64 {
        let text = self.service.metrics_text();
        let line = text.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '));
        line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or_else(|| panic!("{name}"))
    }

    /// Drains until the queue is empty, advancing the clock between calls like a host
    /// tick; returns the number of calls.
    pub(crate) fn drain_all(&self, tick: Duration) -> usize {
        for calls in 1..=200 {
            let report = self.service.drain_quarantine(100);
            if report.queued_runs == 0 && !report.degraded {
                return calls;
            }
            self.clock.advance(tick);
        }
        panic!("the queue did not drain");
    }
}

pub(crate) fn ledger_of(a: &Answer) -> (&str, u64, u64, u64) {
    let l = &a.json["ledger"];
    (
        l["status"].as_str().unwrap(),
        l["accepted"].as_u64().unwrap(),
        l["dup"].as_u64().unwrap(),
        l["pending"].as_u64().unwrap(),
    )
}
