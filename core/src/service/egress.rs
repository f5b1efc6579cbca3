//! Ledger egress (API.md §4): what happens to a stored, non-dry run — registration, intents
//! in batches, retries with exponential backoff and jitter, the quarantine queue and its
//! drain, and brownout (quarantine-only) mode.
//!
//! The rule above all: **a payout is never emitted twice and never lost.**
//!
//! - *Never twice* is the ledger's idempotency key: `intent_key(tenant, epoch, actor)` names
//!   what is paid, so a re-sent intent (a retry, the drain, a replayed compute, a compute
//!   re-sent after a restart) is answered `dup`; a second run of the same epoch is stopped
//!   before any intent by the run registration (`409` → `epoch_conflict`) and by this node's
//!   record of which run claimed the epoch.
//! - *Never lost*: an intent leaves the core's hands only when the ledger answered it
//!   `accepted` or `dup`. A failed batch is re-sent whole (it may or may not have been applied;
//!   the keys make that safe); when retries run out, the rest of the run goes to the quarantine
//!   queue, for which room was reserved before the first intent left, and the background drain
//!   re-sends it with the same keys. With a durable store (`durable`), the run is on the
//!   host's volume before its first request, and a restarted node takes its queue back.
//! - *Settled means settled*: a compute of a run this node saw emitted answers its record and
//!   sends nothing, whatever the ledger's state.
//!
//! The operator's quarantine-only switch (`LEDGER_QUARANTINE_ONLY`, a hot knob) holds every
//! intent like a brownout does, but sends nothing at all, health probes included.
//!
//! A `conflict` answer (same key, other payload — impossible after a successful registration
//! unless the ledger or the keys are broken) is never retried: it is counted under
//! `ledger_intents_total{result="conflict"}` and `reward_invariant_fail_total`, the rest of
//! the run is still sent (every key names one payee of the epoch, so nothing can be paid
//! twice), and the compute answers `500 invariant_violation`.
//!
//! The core decides what is sent and when; the host's [`Ledger`] does one HTTP attempt per
//! call within `LEDGER_DEADLINE_MS`, and its [`Pacer`] sleeps between retries. Retries and
//! backoff live here, so they are tested with a fake ledger and a fake clock.
//!
//! **Pins.** From the moment room is reserved for a run's intents until the ledger has answered
//! the last of them (or the run lost its epoch), the run is pinned in the runs store: a
//! neighbour's flood of runs can never evict it, so `GET /rewarder/epochs/{epoch}` and its
//! proofs answer for it while it waits. The queue holds its own `Arc` of the same run, so the
//! progress the drain records is what the store answers. Each queue entry holds one pin (taken
//! when `Quarantine::push` answers new, dropped when the entry leaves: emitted, or lost at
//! registration), and a compute in egress holds one for its duration (`RunPin`). The store
//! is locked only after the queue's lock is released.
//!
//! **Brownout.** Every ledger request's latency is kept for `LEDGER_WINDOW_S`. When the p95
//! of those latencies exceeds `LEDGER_P95_BUDGET_MS` (once at least
//! [`EgressConfig::samples_min`] were seen), or `failures_to_degrade` requests in a row fail,
//! the node goes quarantine-only: computes answer `202` and queue their runs without sending,
//! `ledger_degraded` is 1 and `/readyz` says `ledger_degraded`. The drain then only probes
//! `GET /v1/health`, once per call; the node leaves the mode when the probes of a whole window
//! have all answered and their p95 is within budget.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::time::Duration;

use super::durable::StoreError;
use super::durable::{self, Cursor, QueueStore};
use super::lru::Lru;
use super::quarantine::{self, Quarantine, QueuedRun};
use super::store::StoredRun;
use super::{IntentResult, Rejection, Service, lock};
use crate::commit;
use crate::error::{Code, Error};
use crate::result::{LedgerReport, LedgerStatus};

use super::ledger::{
    Intent, IntentOutcome, Ledger, LedgerError, Pacer, Registration, RunRegistration, Verdict,
};

/// Latency samples kept at most for brownout detection (older ones are dropped first).
pub const SAMPLES_MAX: usize = 4096;
/// Epochs whose claiming run this node remembers (least recently used forgotten first; a
/// forgotten claim is still enforced by the ledger's own `409`).
pub const CLAIMS_MAX: usize = 65_536;
/// Runs remembered as having lost their epoch to another run.
pub const LOST_RUNS_MAX: usize = 4096;

/// The egress knobs (API.md §5 `LEDGER_*`, plus the queue bound and backoff shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressConfig {
    /// `LEDGER_MAX_RETRIES`: retries after a failed attempt (so `+ 1` attempts in all).
    pub max_retries: u32,
    /// `LEDGER_BATCH_MAX`: intents per request.
    pub batch_max: usize,
    /// `LEDGER_P95_BUDGET_MS`: brownout threshold.
    pub p95_budget: Duration,
    /// `LEDGER_WINDOW_S`: brownout window.
    pub window: Duration,
    /// `LEDGER_QUARANTINE_MAX`: intents the quarantine queue holds before new non-dry runs
    /// are refused `503 overloaded`.
    pub quarantine_max: usize,
    /// First backoff delay; doubled at each retry.
    pub backoff_base: Duration,
    /// Longest backoff delay.
    pub backoff_max: Duration,
    /// Ledger requests failing in a row that put the node in brownout.
    pub failures_to_degrade: u32,
    /// Latency samples needed in the window before their p95 may put the node in brownout.
    pub samples_min: usize,
}

impl Default for EgressConfig {
    /// The API.md §5 defaults.
    fn default() -> Self {
        EgressConfig::new(2, 1000, Duration::from_millis(100), Duration::from_secs(600))
    }
}

impl EgressConfig {
    /// The knobs of API.md §5, with the other fields at their defaults: a queue of
    /// 100 000 intents, backoff from 50 ms up to 2 s, brownout after one whole failed retry
    /// sequence (`max_retries + 1` failures in a row) or a p95 over at least 5 samples.
    pub fn new(max_retries: u32, batch_max: usize, p95_budget: Duration, window: Duration) -> Self {
        EgressConfig {
            max_retries,
            batch_max: batch_max.max(1),
            p95_budget,
            window,
            quarantine_max: 100_000,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            failures_to_degrade: max_retries.saturating_add(1),
            samples_min: 5,
        }
    }

    /// The pause before retry number `retry` (0-based): `min(max, base · 2^retry)`, of which
    /// the upper half is jittered ("equal jitter": never less than half, never more than all).
    pub fn backoff(&self, retry: u32, random: u64) -> Duration {
        let full = self.backoff_base.saturating_mul(1u32 << retry.min(20)).min(self.backoff_max);
        let full_ns = u64::try_from(full.as_nanos()).unwrap_or(u64::MAX);
        let half = full_ns / 2;
        Duration::from_nanos(half + random % (full_ns - half + 1))
    }
}

/// What one call of [`Service::drain_quarantine`] did, for the host's logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Whether the ledger was probed (`GET /v1/health`, brownout only).
    pub probed: bool,
    /// Whether the node is in brownout after the call.
    pub degraded: bool,
    /// Runs registered with the ledger.
    pub registered: u64,
    /// Intents answered `accepted`.
    pub accepted: u64,
    /// Intents answered `dup`.
    pub dup: u64,
    /// Intents answered `conflict` (invariant failures).
    pub conflicts: u64,
    /// Runs whose last intent was answered (now `emitted`).
    pub emitted_runs: u64,
    /// Runs dropped because another run holds their epoch (`409` at registration).
    pub lost_runs: u64,
    /// Intents still queued after the call.
    pub queue_depth: u64,
    /// Runs still queued after the call.
    pub queued_runs: u64,
    /// The ledger error that ended the call early, if any.
    pub error: Option<String>,
}

impl DrainReport {
    /// Whether the call sent anything the ledger answered.
    pub fn progressed(&self) -> bool {
        self.registered + self.accepted + self.dup + self.conflicts + self.lost_runs > 0
    }
}

/// Brownout detection: latencies of the last window and consecutive failures.
#[derive(Debug)]
pub(crate) struct Brownout {
    /// `(when, latency)` of ledger requests, oldest first.
    samples: VecDeque<(Duration, Duration)>,
    /// Requests failed in a row (out of brownout).
    failures: u32,
    degraded: bool,
    /// In brownout: when the current run of answered probes began (`None` until one answers).
    clean_since: Option<Duration>,
}

impl Brownout {
    fn new() -> Self {
        Brownout { samples: VecDeque::new(), failures: 0, degraded: false, clean_since: None }
    }

    fn push(&mut self, config: &EgressConfig, now: Duration, latency: Duration) {
        if self.samples.len() == SAMPLES_MAX {
            self.samples.pop_front();
        }
        self.samples.push_back((now, latency));
        while self.samples.front().is_some_and(|(at, _)| now.saturating_sub(*at) > config.window) {
            self.samples.pop_front();
        }
    }

    /// The p95 (nearest rank) of the samples kept.
    fn p95(&self) -> Option<Duration> {
        let mut l: Vec<Duration> = self.samples.iter().map(|(_, l)| *l).collect();
        if l.is_empty() {
            return None;
        }
        l.sort_unstable();
        let rank = (l.len() * 95).div_ceil(100).max(1);
        Some(l[rank - 1])
    }

    /// Records a request made outside brownout; `Some(true)` when it puts the node in brownout.
    fn record(&mut self, config: &EgressConfig, now: Duration, latency: Duration, ok: bool) -> Option<bool> {
        if self.degraded {
            return None;
        }
        self.push(config, now, latency);
        self.failures = if ok { 0 } else { self.failures.saturating_add(1) };
        let slow = self.samples.len() >= config.samples_min.max(1)
            && self.p95().is_some_and(|p| p > config.p95_budget);
        if slow || self.failures >= config.failures_to_degrade.max(1) {
            self.degraded = true;
            self.samples.clear();
            self.failures = 0;
            self.clean_since = None;
            return Some(true);
        }
        None
    }

    /// Records a health probe made in brownout; `Some(false)` when the node leaves brownout:
    /// probes have answered for a whole window with their p95 within budget.
    fn probe(&mut self, config: &EgressConfig, now: Duration, latency: Duration, ok: bool) -> Option<bool> {
        if !self.degraded {
            return None;
        }
        if !ok {
            self.samples.clear();
            self.clean_since = None;
            return None;
        }
        self.push(config, now, latency);
        let since = *self.clean_since.get_or_insert(now);
        let whole_window = now.saturating_sub(since) >= config.window;
        if whole_window && self.p95().is_some_and(|p| p <= config.p95_budget) {
            self.degraded = false;
            self.failures = 0;
            return Some(false);
        }
        None
    }
}

/// The ledger side of a service: the host's ledger and pacer, the queue, brownout state and
/// the record of which run claimed which epoch.
pub(crate) struct Egress {
    ledger: Arc<dyn Ledger>,
    pacer: Arc<dyn Pacer>,
    config: EgressConfig,
    brownout: Mutex<Brownout>,
    queue: Mutex<Quarantine>,
    /// `tenant \0 epoch` → the run id that claimed the epoch on this node.
    claims: Mutex<Lru<String, String>>,
    /// Run ids another run beat to their epoch (their results answer `409`).
    lost: Mutex<Lru<String, ()>>,
    /// Held by the one drain running at a time.
    drain: Mutex<()>,
    /// Where the queue is kept durably (`STATE_PATH`); `None` = in memory only.
    store: Option<Arc<dyn QueueStore>>,
}

impl Egress {
    fn degraded(&self) -> bool {
        lock(&self.brownout).degraded
    }

    /// Records that the ledger answered a kept run up to `progress` (of `total` intents):
    /// moves its cursor, or deletes it once every intent is answered. A failure is the host's
    /// to log and harmless here: a lagging row only makes the drain re-send what the ledger
    /// answers `dup` (module docs of `durable`).
    fn keep_progress(&self, run_id: &str, total: usize, progress: LedgerReport) {
        let Some(store) = &self.store else { return };
        let _ = if progress.status == LedgerStatus::Emitted {
            store.remove(run_id)
        } else {
            let next = (total as u64).saturating_sub(progress.pending);
            store.advance(run_id, Cursor { next, accepted: progress.accepted, dup: progress.dup })
        };
    }

    /// Deletes a kept run (its epoch belongs to another run); failures as above.
    fn forget(&self, run_id: &str) {
        if let Some(store) = &self.store {
            let _ = store.remove(run_id);
        }
    }
}

fn claim_key(tenant: &str, epoch: &str) -> String {
    let mut key = String::with_capacity(tenant.len() + 1 + epoch.len());
    key.push_str(tenant);
    key.push('\0');
    key.push_str(epoch);
    key
}

/// Forgets that `run_id` claimed the epoch of `key`, unless another run holds the claim now.
fn release_claim(egress: &Egress, key: &str, run_id: &str) {
    let mut claims = lock(&egress.claims);
    if claims.get(key).is_some_and(|h| h == run_id) {
        claims.remove(key);
    }
}

/// Room held in the queue for a run in egress, given back when dropped.
struct Reservation<'a> {
    queue: &'a Mutex<Quarantine>,
    n: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        lock(self.queue).release(self.n);
    }
}

/// A pin on a run in the runs store for as long as a compute holds it in egress.
struct RunPin<'a> {
    service: &'a Service,
    run: &'a StoredRun,
}

impl Drop for RunPin<'_> {
    fn drop(&mut self) {
        lock(&self.service.runs).unpin(self.run);
    }
}

/// The registration body of a run.
fn registration(stored: &StoredRun) -> RunRegistration {
    let m = stored.run.manifest();
    RunRegistration {
        run_id: m.run_id.clone(),
        manifest_digest: stored.run.manifest_digest(),
        payout_total_minor: m.payout_total_minor.clone(),
        payees: m.payees,
    }
}

/// The intents of payees `from..to` of a run, in payee order.
fn intents(stored: &StoredRun, from: usize, to: usize) -> Vec<Intent> {
    let run = &stored.run;
    let m = run.manifest();
    let digest = run.manifest_digest();
    let payees = &run.outcome().payees;
    let (from, to) = (from.min(payees.len()), to.min(payees.len()));
    payees[from..to]
        .iter()
        .map(|p| {
            let actor = run.inputs().actor(p.actor as usize);
            Intent {
                idempotency_key: commit::intent_key(&m.tenant, &m.epoch, actor),
                tenant: m.tenant.clone(),
                epoch: m.epoch.clone(),
                actor: actor.to_owned(),
                amount_minor: p.amount.to_string(),
                run_id: m.run_id.clone(),
                manifest_digest: digest.clone(),
            }
        })
        .collect()
}

/// Verdict counts of one answered batch.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    accepted: u64,
    dup: u64,
    conflicts: u64,
}

impl Tally {
    fn of(outcomes: &[IntentOutcome]) -> Tally {
        let mut t = Tally::default();
        for o in outcomes {
            match o.verdict {
                Verdict::Accepted => t.accepted += 1,
                Verdict::Dup => t.dup += 1,
                Verdict::Conflict => t.conflicts += 1,
            }
        }
        t
    }
}

impl Service {
    /// Attaches a ledger: non-dry computes are then emitted through it (API.md §4), and the
    /// host must call [`Service::drain_quarantine`] periodically from one background thread.
    /// Without a ledger every run behaves as a dry run (a compute-only node).
    pub fn with_ledger(
        mut self,
        ledger: Arc<dyn Ledger>,
        pacer: Arc<dyn Pacer>,
        config: EgressConfig,
    ) -> Self {
        self.egress = Some(Egress {
            ledger,
            pacer,
            config,
            brownout: Mutex::new(Brownout::new()),
            queue: Mutex::new(Quarantine::new(config.quarantine_max)),
            claims: Mutex::new(Lru::new(CLAIMS_MAX, usize::MAX)),
            lost: Mutex::new(Lru::new(LOST_RUNS_MAX, usize::MAX)),
            drain: Mutex::new(()),
            store: None,
        });
        self
    }

    /// Keeps the quarantine queue durably in `store` (API.md §4.1), and first takes back every
    /// run the store holds — queued by an earlier process of this node — with its cursor: the
    /// drain registers each again and sends what it still owes, with the same keys, and
    /// `GET /rewarder/epochs/{epoch}` answers its progress meanwhile. Call it after
    /// [`Service::with_ledger`]; `Err` when there is no ledger, the store cannot be read, or a
    /// record is damaged (a host stops rather than drop a promise silently).
    pub fn with_queue_store(mut self, store: Arc<dyn QueueStore>) -> Result<Service, StoreError> {
        let rows = store.load()?;
        let Some(egress) = self.egress.as_mut() else {
            return Err(StoreError("a durable queue needs a ledger (LEDGER_URL)".to_owned()));
        };
        for row in rows {
            let stored =
                durable::decode(&row.record).map_err(|e| StoreError(format!("run {}: {e}", row.run_id)))?;
            let m = stored.run.manifest();
            if m.run_id != row.run_id {
                return Err(StoreError(format!("run {}: the record holds run {}", row.run_id, m.run_id)));
            }
            let next = usize::try_from(row.cursor.next).unwrap_or(usize::MAX);
            // Registered again before anything is sent: the registration may be what the
            // ledger lost, and registering the same run twice is answered 200.
            let entry = QueuedRun {
                run: Arc::clone(&stored),
                registered: false,
                next: next.min(quarantine::payees(&stored)),
                accepted: row.cursor.accepted,
                dup: row.cursor.dup,
            };
            let (report, new) = egress.queue.get_mut().unwrap_or_else(PoisonError::into_inner).push(entry);
            stored.set_ledger(report);
            let key = claim_key(&m.tenant, &m.epoch);
            egress.claims.get_mut().unwrap_or_else(PoisonError::into_inner).insert(key, m.run_id.clone(), 1);
            let runs = self.runs.get_mut().unwrap_or_else(PoisonError::into_inner);
            if new {
                // The queue's pin, as for a run queued while serving (see `quarantine`).
                runs.pin(&stored);
            } else {
                runs.insert(stored);
            }
        }
        let depth = egress.queue.get_mut().unwrap_or_else(PoisonError::into_inner).depth();
        self.metrics.set_quarantine_queue_depth(depth as u64);
        egress.store = Some(store);
        Ok(self)
    }

    /// Whether the quarantine queue is kept durably (`ledger.durable` of every non-dry answer).
    pub fn durable(&self) -> bool {
        self.egress.as_ref().is_some_and(|e| e.store.is_some())
    }

    /// Runs waiting in the quarantine queue (0 without a ledger).
    pub fn quarantined_runs(&self) -> u64 {
        self.egress.as_ref().map_or(0, |e| lock(&e.queue).len() as u64)
    }

    /// Whether a ledger is attached.
    pub fn has_ledger(&self) -> bool {
        self.egress.is_some()
    }

    /// Intents waiting in the quarantine queue (0 without a ledger).
    pub fn quarantine_depth(&self) -> u64 {
        self.egress.as_ref().map_or(0, |e| lock(&e.queue).depth() as u64)
    }

    /// The ledger step of a compute, after the run is stored (API.md §4). Returns the report
    /// to answer with (`Quarantined` makes it `202`), or `409 epoch_conflict`,
    /// `503 overloaded` (queue full) or `500 invariant_violation` (a `conflict` result).
    pub(crate) fn settle(&self, stored: &Arc<StoredRun>, dry_run: bool) -> Result<LedgerReport, Error> {
        let Some(egress) = &self.egress else {
            stored.set_ledger(LedgerReport::DRY_RUN);
            return Ok(LedgerReport::DRY_RUN);
        };
        if dry_run {
            // Nothing registered, nothing sent; the run's recorded progress stays as it was.
            return Ok(LedgerReport::DRY_RUN);
        }
        let m = stored.run.manifest();
        // A run waiting in the queue belongs to the drain: answer its progress.
        if let Some(report) = self.queued_report(egress, &m.run_id) {
            stored.set_ledger(report);
            return Ok(report);
        }
        // A run this node saw emitted is settled: its record answers, and nothing is sent (in
        // brownout too), since every key of it is already held by the ledger.
        let recorded = stored.ledger();
        if recorded.status == LedgerStatus::Emitted {
            return Ok(recorded);
        }
        let key = claim_key(&m.tenant, &m.epoch);
        let holder = lock(&egress.claims).get(&key).cloned();
        if let Some(holder) = holder.filter(|h| *h != m.run_id) {
            return Err(self.epoch_conflict(stored, Some(holder)));
        }
        let n = quarantine::payees(stored);
        if !lock(&egress.queue).reserve(n) {
            self.metrics.reject(Rejection::QuarantineFull);
            return Err(Error::new(Code::Overloaded, "the ledger quarantine queue is full")
                .with_detail("retry_after", 1));
        }
        let reservation = Reservation { queue: &egress.queue, n };
        let _egress = phase_span!("egress", payees = n, degraded = egress.degraded()).entered();
        lock(&self.runs).pin(stored);
        let _pin = RunPin { service: self, run: stored };
        lock(&egress.claims).insert(key.clone(), m.run_id.clone(), 1);
        // Durable acceptance: the registration and every intent are on the volume before the
        // first ledger request, so before any answer (a 202 above all) and before a crash
        // could lose them mid-run.
        if let Some(store) = &egress.store
            && let Err(e) = store.insert(&durable::durable_run(stored, Cursor::default()))
        {
            release_claim(egress, &key, &m.run_id);
            return Err(Error::new(Code::NotReady, format!("the durable queue refused the run: {e}"))
                .with_detail("retry_after", 1));
        }
        let mut entry =
            QueuedRun { run: Arc::clone(stored), registered: false, next: 0, accepted: 0, dup: 0 };
        if self.holding(egress) {
            return Ok(self.quarantine(egress, reservation, entry));
        }

        let body = registration(stored);
        let registered = phase_span!("ledger_register")
            .in_scope(|| self.attempts(egress, || egress.ledger.register_run(&m.tenant, &m.epoch, &body)));
        match registered {
            Ok(Registration::Created | Registration::Same) => entry.registered = true,
            Ok(Registration::Conflict) => {
                release_claim(egress, &key, &m.run_id);
                egress.forget(&m.run_id);
                return Err(self.epoch_conflict(stored, None));
            }
            Err(_) => return Ok(self.quarantine(egress, reservation, entry)),
        }

        let mut conflicts = 0;
        while entry.next < n {
            if self.holding(egress) {
                return Ok(self.quarantine(egress, reservation, entry));
            }
            let to = n.min(entry.next + egress.config.batch_max);
            let batch = intents(stored, entry.next, to);
            let span =
                phase_span!("egress_batch", first = entry.next, intents = batch.len(), answered = false);
            let answered = span.in_scope(|| {
                self.attempts(egress, || {
                    let outcomes = egress.ledger.send_intents(&batch)?;
                    super::ledger::check_outcomes(&batch, &outcomes)?;
                    Ok(outcomes)
                })
            });
            span.record("answered", answered.is_ok());
            match answered {
                Ok(outcomes) => {
                    let t = self.count(&outcomes);
                    entry.accepted += t.accepted;
                    entry.dup += t.dup;
                    conflicts += t.conflicts;
                    entry.next = to;
                    egress.keep_progress(&m.run_id, n, entry.report());
                }
                Err(e) => {
                    self.metrics.ledger_intents(IntentResult::Error, batch.len() as u64);
                    // A refusal of intents (the ledger lost or moved the registration, or
                    // refuses the request): register again before re-sending.
                    entry.registered &= e.retryable();
                    return Ok(self.quarantine(egress, reservation, entry));
                }
            }
        }
        drop(reservation);
        let report = LedgerReport {
            status: LedgerStatus::Emitted,
            accepted: entry.accepted,
            dup: entry.dup,
            pending: 0,
        };
        if n == 0 {
            // No batch moved the cursor: the registration alone settled the run.
            egress.keep_progress(&m.run_id, n, report);
        }
        stored.set_ledger(report);
        if conflicts > 0 {
            return Err(self.ledger_conflicts(conflicts));
        }
        Ok(report)
    }

    /// Re-sends queued intents (same keys), at most `budget` of them, oldest run first; in
    /// brownout it only probes the ledger's health. The host calls it periodically from one
    /// background thread (a second concurrent call returns at once). Each ledger request is
    /// one attempt: the host's next call is the retry, so a stop never waits on a backoff.
    pub fn drain_quarantine(&self, budget: usize) -> DrainReport {
        let mut report = DrainReport::default();
        let Some(egress) = &self.egress else { return report };
        let _one_drain = match egress.drain.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return report,
        };
        if egress.degraded() && !self.hot().ledger_quarantine_only {
            report.probed = true;
            let started = self.clock.monotonic();
            let healthy = egress.ledger.health();
            let now = self.clock.monotonic();
            let latency = now.saturating_sub(started);
            self.metrics.observe_ledger_egress(latency);
            if let Err(e) = &healthy {
                self.metrics.ledger_egress_error();
                report.error = Some(e.to_string());
            }
            let changed = lock(&egress.brownout).probe(&egress.config, now, latency, healthy.is_ok());
            if let Some(degraded) = changed {
                self.metrics.set_ledger_degraded(degraded);
            }
        }
        let mut budget = budget;
        while budget > 0 && !self.holding(egress) {
            let Some(entry) = lock(&egress.queue).front() else { break };
            if !self.drain_one(egress, &entry, &mut budget, &mut report) {
                break;
            }
        }
        let queue = lock(&egress.queue);
        report.queue_depth = queue.depth() as u64;
        report.queued_runs = queue.len() as u64;
        drop(queue);
        self.metrics.set_quarantine_queue_depth(report.queue_depth);
        report.degraded = egress.degraded();
        report
    }

    /// One step of the drain on the oldest queued run: register it, or send its next batch.
    /// `false` when the ledger failed (the call ends; the next one retries).
    fn drain_one(
        &self,
        egress: &Egress,
        entry: &QueuedRun,
        budget: &mut usize,
        report: &mut DrainReport,
    ) -> bool {
        let stored = &entry.run;
        let m = stored.run.manifest();
        if !entry.registered {
            // A registration is a request too: it takes one unit of the budget, so a queue
            // of many runs costs a bounded number of requests per call.
            *budget = budget.saturating_sub(1);
            let body = registration(stored);
            match self.timed(egress, || egress.ledger.register_run(&m.tenant, &m.epoch, &body)) {
                Ok(Registration::Created | Registration::Same) => {
                    report.registered += 1;
                    let mut queue = lock(&egress.queue);
                    queue.mark_registered(&m.run_id, true);
                    if let Some(progress) = queue.advance(&m.run_id, entry.next, entry.next, 0, 0) {
                        drop(queue);
                        if progress.status == LedgerStatus::Emitted {
                            egress.keep_progress(&m.run_id, entry.total(), progress);
                        }
                        self.record_progress(stored, progress, report);
                    }
                    return true;
                }
                Ok(Registration::Conflict) => {
                    let removed = lock(&egress.queue).remove(&m.run_id);
                    if removed.is_some() {
                        lock(&self.runs).unpin(stored);
                    }
                    egress.forget(&m.run_id);
                    release_claim(egress, &claim_key(&m.tenant, &m.epoch), &m.run_id);
                    lock(&egress.lost).insert(m.run_id.clone(), (), 1);
                    report.lost_runs += 1;
                    return true;
                }
                Err(e) => {
                    report.error = Some(e.to_string());
                    return false;
                }
            }
        }
        if entry.pending() == 0 {
            // Registered with nothing left (cannot stay queued, but never send an empty batch).
            let progress = lock(&egress.queue).advance(&m.run_id, entry.next, entry.next, 0, 0);
            if let Some(progress) = progress {
                egress.keep_progress(&m.run_id, entry.total(), progress);
                self.record_progress(stored, progress, report);
            }
            return true;
        }
        let to = entry.total().min(entry.next + egress.config.batch_max.min(*budget));
        let batch = intents(stored, entry.next, to);
        let answered = self.timed(egress, || {
            let outcomes = egress.ledger.send_intents(&batch)?;
            super::ledger::check_outcomes(&batch, &outcomes)?;
            Ok(outcomes)
        });
        match answered {
            Ok(outcomes) => {
                let t = self.count(&outcomes);
                *budget = budget.saturating_sub(batch.len().max(1));
                report.accepted += t.accepted;
                report.dup += t.dup;
                report.conflicts += t.conflicts;
                if t.conflicts > 0 {
                    self.metrics.ledger_conflict();
                }
                let progress = lock(&egress.queue).advance(&m.run_id, entry.next, to, t.accepted, t.dup);
                if let Some(progress) = progress {
                    egress.keep_progress(&m.run_id, entry.total(), progress);
                    self.record_progress(stored, progress, report);
                }
                true
            }
            Err(e) => {
                self.metrics.ledger_intents(IntentResult::Error, batch.len() as u64);
                if !e.retryable() {
                    // Refused (e.g. `409`: the ledger no longer holds the registration):
                    // register again first; a conflict there drops the run.
                    lock(&egress.queue).mark_registered(&m.run_id, false);
                }
                report.error = Some(e.to_string());
                false
            }
        }
    }

    /// Records a queued run's progress after `Quarantine::advance` (called without the
    /// queue's lock): an emitted run has left the queue, so its pin goes.
    fn record_progress(&self, stored: &StoredRun, progress: LedgerReport, report: &mut DrainReport) {
        stored.set_ledger(progress);
        if progress.status == LedgerStatus::Emitted {
            report.emitted_runs += 1;
            lock(&self.runs).unpin(stored);
        }
    }

    /// The queued run with that id, for its tenant: a run taken back from the durable queue at
    /// start answers from there while it drains.
    pub(crate) fn queued_run(&self, tenant: &str, run_id: &str) -> Option<Arc<StoredRun>> {
        let egress = self.egress.as_ref()?;
        let run = lock(&egress.queue).get(run_id)?;
        (run.run.manifest().tenant == tenant).then_some(run)
    }

    /// Whether another run beat this one to its epoch at the ledger (its result is `409`).
    pub(crate) fn lost_epoch(&self, run_id: &str) -> bool {
        self.egress.as_ref().is_some_and(|e| lock(&e.lost).get(run_id).is_some())
    }

    fn queued_report(&self, egress: &Egress, run_id: &str) -> Option<LedgerReport> {
        lock(&egress.queue).report(run_id)
    }

    /// Whether intents are held back: brownout, or the operator's quarantine-only switch
    /// (`LEDGER_QUARANTINE_ONLY`, for drills and incidents).
    fn holding(&self, egress: &Egress) -> bool {
        egress.degraded() || self.hot().ledger_quarantine_only
    }

    /// The queued run of the tenant's epoch, if the claim of that epoch names one: a run whose
    /// result the runs store evicted, or one taken back from the durable queue at start, still
    /// answers `GET /rewarder/epochs/{epoch}` while it drains.
    pub(crate) fn queued_latest(&self, tenant: &str, epoch: &str) -> Option<Arc<StoredRun>> {
        let egress = self.egress.as_ref()?;
        let run_id = lock(&egress.claims).get(&claim_key(tenant, epoch)).cloned()?;
        self.queued_run(tenant, &run_id)
    }

    /// Queues the rest of a run, turning its reservation into queued intents.
    fn quarantine(&self, egress: &Egress, reservation: Reservation<'_>, entry: QueuedRun) -> LedgerReport {
        let pending = entry.pending() as u64;
        let stored = Arc::clone(&entry.run);
        let mut reservation = reservation;
        let (report, new, depth) = {
            let mut queue = lock(&egress.queue);
            let (report, new) = queue.push(entry);
            queue.release(std::mem::take(&mut reservation.n));
            (report, new, queue.depth() as u64)
        };
        drop(reservation);
        if new {
            // The queue's pin, dropped when the run leaves it.
            lock(&self.runs).pin(&stored);
        }
        self.metrics.ledger_intents(IntentResult::Quarantined, pending);
        self.metrics.set_quarantine_queue_depth(depth);
        stored.set_ledger(report);
        report
    }

    /// `409 epoch_conflict`: another run holds the run's epoch. When that run is known here,
    /// it becomes the epoch's latest again (what `GET /rewarder/epochs/{epoch}` shows);
    /// otherwise this run is remembered as lost, so its result answers `409` too.
    fn epoch_conflict(&self, stored: &StoredRun, holder: Option<String>) -> Error {
        let m = stored.run.manifest();
        let mut error = Error::new(
            Code::EpochConflict,
            format!("epoch {} is already settled by another run of this tenant", m.epoch),
        )
        .with_detail("epoch", m.epoch.as_str());
        let holder_run = holder.as_ref().and_then(|h| lock(&self.runs).get(&m.tenant, h));
        match holder_run {
            Some(run) => lock(&self.runs).mark_latest(&run),
            None => {
                if let Some(e) = &self.egress {
                    lock(&e.lost).insert(m.run_id.clone(), (), 1);
                }
            }
        }
        if let Some(holder) = holder {
            error = error.with_detail("run_id", holder);
        }
        error
    }

    /// `500 invariant_violation` after `conflict` answers (counted as invariant failures).
    fn ledger_conflicts(&self, conflicts: u64) -> Error {
        self.metrics.ledger_conflict();
        Error::new(
            Code::InvariantViolation,
            format!("the ledger answered conflict for {conflicts} intents of a registered run"),
        )
        .with_detail("invariant", "ledger_conflict")
        .with_detail("conflicts", conflicts)
    }

    /// Counts a batch's verdicts under `ledger_intents_total`.
    fn count(&self, outcomes: &[IntentOutcome]) -> Tally {
        let t = Tally::of(outcomes);
        self.metrics.ledger_intents(IntentResult::Accepted, t.accepted);
        self.metrics.ledger_intents(IntentResult::Dup, t.dup);
        self.metrics.ledger_intents(IntentResult::Conflict, t.conflicts);
        t
    }

    /// One ledger request, timed on the host's clock: latency histogram, error counter and
    /// brownout detection.
    fn timed<T>(
        &self,
        egress: &Egress,
        call: impl FnOnce() -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let started = self.clock.monotonic();
        let result = call();
        let now = self.clock.monotonic();
        let latency = now.saturating_sub(started);
        self.metrics.observe_ledger_egress(latency);
        if result.is_err() {
            self.metrics.ledger_egress_error();
        }
        let changed = lock(&egress.brownout).record(&egress.config, now, latency, result.is_ok());
        if let Some(degraded) = changed {
            self.metrics.set_ledger_degraded(degraded);
        }
        result
    }

    /// A request with `LEDGER_MAX_RETRIES` retries on retryable errors, pausing with
    /// exponential backoff and jitter between attempts; stops early when the node enters
    /// brownout (the rest is queued, not hammered).
    fn attempts<T>(
        &self,
        egress: &Egress,
        mut call: impl FnMut() -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let mut retry = 0;
        loop {
            match self.timed(egress, &mut call) {
                Err(e) if e.retryable() && retry < egress.config.max_retries && !egress.degraded() => {
                    egress.pacer.pause(egress.config.backoff(retry, egress.pacer.random_u64()));
                    retry += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};
    use std::sync::atomic::{AtomicU64, Ordering};

    use serde_json::Value;

    use super::*;
    use crate::inputs::Limits;
    use crate::service::durable::DurableRun;
    use crate::service::ledger::LedgerErrorKind;
    use crate::service::{Artifacts, Clock, Config, HotKnobs, Profile, Reload, Request, Response};
    use crate::sign::SigningKeys;

    const MS: Duration = Duration::from_millis(1);

    #[derive(Default)]
    struct FakeClock {
        nanos: AtomicU64,
    }

    impl FakeClock {
        fn advance(&self, d: Duration) {
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

    struct Host;
    impl Artifacts for Host {
        fn keep(&self, _: &str, _: &[u8]) -> bool {
            true
        }
    }

    /// A reload source that refuses.
    struct Refuses;
    impl Reload for Refuses {
        fn hot_knobs(&self) -> Result<HotKnobs, String> {
            Err("fixed".into())
        }
    }

    /// The hot knobs a reload finds: an operator's file, set by the test.
    struct Knobs(Mutex<HotKnobs>);
    impl Reload for Knobs {
        fn hot_knobs(&self) -> Result<HotKnobs, String> {
            Ok(*self.0.lock().unwrap())
        }
    }

    /// A durable queue in memory: rows survive a "restart" (a new service on the same store).
    #[derive(Default)]
    struct MemStore {
        rows: Mutex<Vec<DurableRun>>,
        /// Ledger requests made before each insert (durable before the first one).
        ledger_calls_at_insert: Mutex<Vec<usize>>,
        ledger: Mutex<Option<Arc<FakeLedger>>>,
        refuse: std::sync::atomic::AtomicBool,
    }

    impl MemStore {
        fn rows(&self) -> Vec<DurableRun> {
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
    struct FakePacer {
        clock: Arc<FakeClock>,
        pauses: Mutex<Vec<Duration>>,
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
    enum Fault {
        Fail(LedgerErrorKind),
        /// Applies the intents, then loses the answer (a timeout after the ledger acted).
        ApplyThenTimeout,
        /// Answers one result too few.
        WrongCount,
        /// Answers the results in reverse order.
        OutOfOrder,
    }

    #[derive(Default)]
    struct LedgerState {
        runs: HashMap<(String, String), String>,
        keys: HashMap<String, String>,
        accepted: u64,
        dup: u64,
        conflict: u64,
        registrations: u32,
        batches: Vec<usize>,
        probes: u32,
        /// What the next calls do, one entry per call (`None`: answer normally).
        script: VecDeque<Option<Fault>>,
        /// A fault every intents answer has.
        garbage: Option<Fault>,
        down: bool,
        latency: Duration,
        probe_latency: Duration,
    }

    /// The ledger of API.md §4 in memory: registration per tenant+epoch, intents per key.
    struct FakeLedger {
        clock: Arc<FakeClock>,
        state: Mutex<LedgerState>,
    }

    impl FakeLedger {
        fn state(&self) -> std::sync::MutexGuard<'_, LedgerState> {
            self.state.lock().unwrap()
        }

        /// Latency, outage and the script common to every call (a fault that alters an
        /// intents answer is a plain answer to other calls).
        fn enter(&self, probe: bool, intents: bool) -> Result<Option<Fault>, LedgerError> {
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

        fn apply(&self, intents: &[Intent]) -> Vec<IntentOutcome> {
            let mut s = self.state();
            s.batches.push(intents.len());
            intents
                .iter()
                .map(|i| {
                    let payload =
                        format!("{}|{}|{}|{}", i.actor, i.amount_minor, i.run_id, i.manifest_digest);
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

    struct Node {
        service: Service,
        clock: Arc<FakeClock>,
        ledger: Arc<FakeLedger>,
        pacer: Arc<FakePacer>,
        knobs: Arc<Knobs>,
        egress: EgressConfig,
        store: Option<Arc<MemStore>>,
    }

    fn config() -> EgressConfig {
        EgressConfig { batch_max: 2, window: Duration::from_secs(2), ..EgressConfig::default() }
    }

    fn service_config(runs_max: usize) -> Config {
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

    fn node(egress: EgressConfig) -> Node {
        node_with(egress, 64)
    }

    /// A node keeping at most `runs_max` runs.
    fn node_with(egress: EgressConfig, runs_max: usize) -> Node {
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
    fn durable_node(egress: EgressConfig) -> Node {
        let mut n = node(egress);
        let store = Arc::new(MemStore::default());
        *store.ledger.lock().unwrap() = Some(n.ledger.clone());
        n.service = n.service.with_queue_store(store.clone()).unwrap();
        n.store = Some(store);
        n
    }

    struct Answer {
        status: u16,
        json: Value,
    }

    impl Node {
        /// The same node after a crash: a new service (nothing in memory) on the same store,
        /// ledger and clock.
        fn restart(&self) -> Node {
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
        fn quarantine_only(&self, on: bool) {
            self.knobs.0.lock().unwrap().ledger_quarantine_only = on;
            assert!(self.service.reload_now().unwrap().ledger_quarantine_only == on);
        }

        fn call(&self, method: &str, url: &str, body: &[u8]) -> Answer {
            let r: Response =
                self.service.handle(&Request { method, url, authorization: None, body, corr_id: "test" });
            let json = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            Answer { status: r.status, json }
        }

        /// Like [`Node::compute`] on a node whose policy has another id (another run of the
        /// same epoch, computed elsewhere: no local record of the first).
        fn compute_as(&self, epoch: &str, pool: u64, actors: usize, policy_id: &str) -> Answer {
            lock(&self.service.egress.as_ref().unwrap().claims).remove(&claim_key("default", epoch));
            self.compute_with(epoch, pool, actors, false, policy_id)
        }

        /// Stores the documents of an epoch with `actors` payees and computes it.
        fn compute(&self, epoch: &str, pool: u64, actors: usize, dry_run: bool) -> Answer {
            self.compute_with(epoch, pool, actors, dry_run, "p1")
        }

        fn compute_with(
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

        fn metric(&self, name: &str) -> u64 {
            let text = self.service.metrics_text();
            let line = text.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '));
            line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or_else(|| panic!("{name}"))
        }

        /// Drains until the queue is empty, advancing the clock between calls like a host
        /// tick; returns the number of calls.
        fn drain_all(&self, tick: Duration) -> usize {
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

    fn ledger_of(a: &Answer) -> (&str, u64, u64, u64) {
        let l = &a.json["ledger"];
        (
            l["status"].as_str().unwrap(),
            l["accepted"].as_u64().unwrap(),
            l["dup"].as_u64().unwrap(),
            l["pending"].as_u64().unwrap(),
        )
    }

    #[test]
    fn registers_first_then_sends_intents_in_batches() {
        let n = node(config());
        let a = n.compute("e1", 1_000_000, 5, false);
        assert_eq!(a.status, 200, "{}", a.json);
        assert_eq!(ledger_of(&a), ("emitted", 5, 0, 0));
        let s = n.ledger.state();
        assert_eq!(s.registrations, 1);
        assert_eq!(s.batches, vec![2, 2, 1]);
        assert_eq!(s.accepted, 5);
        let total: u64 = a.json["manifest"]["payout_total_minor"].as_str().unwrap().parse().unwrap();
        drop(s);
        assert!(total > 0);
        assert_eq!(n.metric("ledger_intents_total{result=\"accepted\"}"), 5);
        assert_eq!(n.metric("ledger_egress_latency_seconds_count"), 4);
        assert_eq!(ledger_of(&n.call("GET", "/rewarder/epochs/e1", b"")), ("emitted", 5, 0, 0));
    }

    #[test]
    fn dry_runs_and_compute_only_nodes_send_nothing() {
        let n = node(config());
        let a = n.compute("e1", 1_000_000, 3, true);
        assert_eq!((a.status, ledger_of(&a)), (200, ("dry_run", 0, 0, 0)));
        let s = n.ledger.state();
        assert_eq!((s.registrations, s.batches.len()), (0, 0));
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter() {
        let n = node(config());
        n.ledger.state().script.extend([
            Some(Fault::Fail(LedgerErrorKind::Timeout)),
            Some(Fault::Fail(LedgerErrorKind::Server)),
        ]);
        let a = n.compute("e1", 1_000_000, 2, false);
        assert_eq!((a.status, ledger_of(&a)), (200, ("emitted", 2, 0, 0)));
        // 50 ms then 100 ms, each half fixed and half jittered (7 ms of "random" here).
        assert_eq!(*n.pacer.pauses.lock().unwrap(), vec![32 * MS, 57 * MS]);
        assert_eq!(n.metric("ledger_egress_errors_total"), 2);
        assert_eq!(n.ledger.state().registrations, 1);
        let c = EgressConfig::default();
        for retry in 0..30 {
            for random in [0, 1, u64::MAX / 3, u64::MAX] {
                let d = c.backoff(retry, random);
                let full = c.backoff_base.saturating_mul(1 << retry.min(20)).min(c.backoff_max);
                assert!(d >= full / 2 && d <= full, "{retry} {random} {d:?}");
            }
        }
    }

    #[test]
    fn a_lost_answer_is_resent_and_the_ledger_answers_dup() {
        let n = node(config());
        n.ledger.state().script.extend([None, Some(Fault::ApplyThenTimeout), Some(Fault::ApplyThenTimeout)]);
        let a = n.compute("e1", 1_000_000, 4, false);
        assert_eq!(a.status, 200);
        let (status, accepted, dup, _) = ledger_of(&a);
        assert_eq!((status, accepted + dup), ("emitted", 4));
        let s = n.ledger.state();
        assert_eq!((s.accepted, s.conflict), (4, 0), "every key accepted exactly once");
        assert!(s.dup >= 1);
    }

    #[test]
    fn garbage_answers_are_errors_never_success() {
        for fault in [Fault::WrongCount, Fault::OutOfOrder] {
            let n = node(config());
            n.ledger.state().garbage = Some(fault);
            let a = n.compute("e1", 1_000_000, 2, false);
            assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 0, 0, 2)), "{fault:?}");
            assert_eq!(n.metric("ledger_intents_total{result=\"accepted\"}"), 0);
            assert_eq!(n.metric("ledger_intents_total{result=\"error\"}"), 2);
            assert_eq!(n.metric("ledger_intents_total{result=\"quarantined\"}"), 2);
            assert_eq!(n.ledger.state().batches.len(), 3, "tried 1 + LEDGER_MAX_RETRIES times");
            // The ledger did apply them behind its garbage: the drain's re-send is all dup.
            n.ledger.state().garbage = None;
            n.drain_all(500 * MS);
            let g = n.call("GET", "/rewarder/epochs/e1", b"");
            assert_eq!(ledger_of(&g), ("emitted", 0, 2, 0), "{fault:?}");
            assert_eq!(n.ledger.state().accepted, 2);
        }
    }

    #[test]
    fn an_outage_quarantines_then_the_drain_emits_once_the_ledger_is_back() {
        let n = node(config());
        n.ledger.state().down = true;
        let a = n.compute("e1", 1_000_000, 5, false);
        assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 0, 0, 5)));
        // One whole failed retry sequence: brownout, quarantine-only.
        assert_eq!(n.metric("ledger_degraded"), 1);
        assert_eq!(n.metric("quarantine_queue_depth"), 5);
        let ready = n.call("GET", "/readyz", b"");
        assert_eq!(ready.status, 200);
        assert_eq!(ready.json["ledger_degraded"], true);
        assert_eq!(ready.json["details"], serde_json::json!(["ledger_degraded"]));
        // A second run during the brownout is queued without a single ledger call.
        let calls = n.metric("ledger_egress_latency_seconds_count");
        let b = n.compute("e2", 1_000_000, 3, false);
        assert_eq!((b.status, ledger_of(&b)), (202, ("quarantined", 0, 0, 3)));
        assert_eq!(n.metric("ledger_egress_latency_seconds_count"), calls);
        // A re-sent compute of a queued run answers its progress; it sends nothing either.
        let again = n.compute("e2", 1_000_000, 3, false);
        assert_eq!((again.status, ledger_of(&again)), (202, ("quarantined", 0, 0, 3)));
        assert_eq!(n.service.quarantine_depth(), 8);
        // Probes while down keep the node in brownout.
        for _ in 0..5 {
            let r = n.service.drain_quarantine(100);
            assert!(r.probed && r.degraded && !r.progressed() && r.error.is_some());
            n.clock.advance(500 * MS);
        }
        n.ledger.state().down = false;
        let started = n.clock.monotonic();
        let calls = n.drain_all(250 * MS);
        // Probes must answer for a whole window (2 s) before anything is sent.
        assert!(n.clock.monotonic() - started >= Duration::from_secs(2));
        assert!(calls >= 9, "{calls}");
        assert_eq!(n.metric("ledger_degraded"), 0);
        assert_eq!(n.metric("quarantine_queue_depth"), 0);
        for (epoch, payees) in [("e1", 5), ("e2", 3)] {
            let g = n.call("GET", &format!("/rewarder/epochs/{epoch}"), b"");
            assert_eq!(ledger_of(&g), ("emitted", payees, 0, 0), "{epoch}");
        }
        let s = n.ledger.state();
        assert_eq!((s.accepted, s.dup, s.conflict, s.registrations), (8, 0, 0, 2));
        drop(s);
        let ready = n.call("GET", "/readyz", b"");
        assert_eq!(ready.json["details"], serde_json::json!([]));
    }

    #[test]
    fn a_run_is_queued_from_the_batch_that_failed() {
        let n = node(EgressConfig { failures_to_degrade: 100, ..config() });
        // Registration and batch 1 answer; batch 2 fails on all three attempts.
        let fail = Some(Fault::Fail(LedgerErrorKind::Server));
        n.ledger.state().script.extend([None, None, fail, fail, fail]);
        let a = n.compute("e1", 1_000_000, 5, false);
        assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 2, 0, 3)));
        assert_eq!(n.metric("ledger_intents_total{result=\"error\"}"), 2);
        assert_eq!(n.metric("ledger_intents_total{result=\"quarantined\"}"), 3);
        assert_eq!(n.metric("ledger_degraded"), 0, "failures_to_degrade is high here");
        // Not in brownout: the drain sends at once, from the failed batch on.
        let r = n.service.drain_quarantine(100);
        assert!(!r.probed);
        assert_eq!((r.accepted, r.dup, r.emitted_runs, r.queue_depth), (3, 0, 1, 0), "{r:?}");
        assert_eq!(ledger_of(&n.call("GET", "/rewarder/epochs/e1", b"")), ("emitted", 5, 0, 0));
        // Failed attempts never reached the ledger; the drain re-sent from the failed batch.
        assert_eq!(n.ledger.state().batches, vec![2, 2, 1]);
        assert_eq!(n.ledger.state().accepted, 5);
    }

    #[test]
    fn the_drain_keeps_to_its_budget_and_get_shows_progress() {
        let n = node(EgressConfig { failures_to_degrade: 100, ..config() });
        n.ledger.state().garbage = Some(Fault::WrongCount);
        let a = n.compute("e1", 1_000_000, 5, false);
        assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 0, 0, 5)));
        n.ledger.state().garbage = None;
        let r = n.service.drain_quarantine(3);
        // Batch 1 was applied behind the garbage: re-sent, it is dup.
        assert_eq!((r.accepted, r.dup, r.queue_depth, r.emitted_runs), (1, 2, 2, 0), "{r:?}");
        assert_eq!(ledger_of(&n.call("GET", "/rewarder/epochs/e1", b"")), ("quarantined", 1, 2, 2));
        let r = n.service.drain_quarantine(100);
        assert_eq!((r.accepted, r.queue_depth, r.queued_runs, r.emitted_runs), (2, 0, 0, 1), "{r:?}");
        assert_eq!(ledger_of(&n.call("GET", "/rewarder/epochs/e1", b"")), ("emitted", 3, 2, 0));
        assert_eq!(n.ledger.state().accepted, 5);
        assert!(!n.service.drain_quarantine(100).progressed());
    }

    #[test]
    fn a_slow_ledger_puts_the_node_in_brownout_until_probes_are_fast_for_a_window() {
        let n = node(EgressConfig { batch_max: 1, ..config() });
        n.ledger.state().latency = 150 * MS; // over the 100 ms budget
        // Five requests (registration + 4 intents) are the samples a p95 needs.
        let a = n.compute("e1", 1_000_000, 6, false);
        assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 4, 0, 2)));
        assert_eq!(n.metric("ledger_degraded"), 1);
        assert_eq!(n.call("GET", "/readyz", b"").status, 200);
        // Slow probes: still degraded, however long.
        n.ledger.state().probe_latency = 150 * MS;
        for _ in 0..12 {
            assert!(n.service.drain_quarantine(100).degraded);
            n.clock.advance(250 * MS);
        }
        // Fast probes for a whole window: it leaves, and drains.
        n.ledger.state().probe_latency = 10 * MS;
        n.ledger.state().latency = 10 * MS;
        let probes = n.ledger.state().probes;
        n.drain_all(250 * MS);
        assert!(n.ledger.state().probes - probes >= 8);
        assert_eq!(n.metric("ledger_degraded"), 0);
        assert_eq!(ledger_of(&n.call("GET", "/rewarder/epochs/e1", b"")), ("emitted", 6, 0, 0));
    }

    #[test]
    fn brownout_needs_enough_samples_and_a_failed_probe_restarts_the_window() {
        let c = EgressConfig { window: Duration::from_secs(10), ..EgressConfig::default() };
        let mut b = Brownout::new();
        let t = |s: u64| Duration::from_secs(s);
        for i in 0..4 {
            assert_eq!(b.record(&c, t(i), 500 * MS, true), None, "fewer than samples_min");
        }
        // Old samples leave the window: 4 slow ones long ago do not count with fast ones now.
        for i in 0..19 {
            assert_eq!(b.record(&c, t(100) + i * 10 * MS, MS, true), None);
        }
        // One slow request in 20 is the 5 % a p95 forgives (nearest rank: the 19th of 20).
        assert_eq!(b.record(&c, t(101), 500 * MS, true), None);
        assert_eq!(b.p95(), Some(MS));
        // A second one is not.
        assert_eq!(b.record(&c, t(102), 500 * MS, true), Some(true));
        assert!(b.degraded && b.samples.is_empty());
        let mut b = Brownout::new();
        assert_eq!(b.record(&c, t(0), MS, false), None);
        assert_eq!(b.record(&c, t(1), MS, false), None);
        assert_eq!(b.record(&c, t(2), MS, false), Some(true), "max_retries + 1 failures in a row");
        assert_eq!(b.record(&c, t(3), MS, true), None, "in brownout only probes count");
        assert_eq!(b.probe(&c, t(4), MS, true), None);
        assert_eq!(b.probe(&c, t(13), MS, false), None, "a failed probe restarts the window");
        assert_eq!(b.probe(&c, t(14), MS, true), None);
        assert_eq!(b.probe(&c, t(23), MS, true), None);
        assert_eq!(b.probe(&c, t(24), MS, true), Some(false));
        assert_eq!(b.probe(&c, t(25), MS, true), None, "out of brownout probes are ignored");
    }

    #[test]
    fn a_conflict_answer_is_an_invariant_failure_and_never_retried() {
        let n = node(config());
        let first = n.compute("e1", 1_000_000, 3, false);
        assert_eq!(first.status, 200);
        // The ledger forgets the registration (a ledger defect): the next run of the epoch
        // registers and its intents collide with the first run's keys.
        n.ledger.state().runs.clear();
        let batches = n.ledger.state().batches.len();
        let other = n.compute_as("e1", 2_000_000, 3, "other-node");
        assert_eq!(other.status, 500, "{}", other.json);
        assert_eq!(other.json["error"]["code"], "invariant_violation");
        assert_eq!(other.json["error"]["details"]["conflicts"], 3);
        assert_eq!(n.metric("reward_invariant_fail_total"), 1);
        assert_eq!(n.metric("ledger_intents_total{result=\"conflict\"}"), 3);
        let s = n.ledger.state();
        assert_eq!(s.batches.len() - batches, 2, "one request per batch, none retried");
        assert_eq!((s.accepted, s.conflict), (3, 3));
        assert!(n.pacer.pauses.lock().unwrap().is_empty());
    }

    #[test]
    fn a_second_run_of_an_epoch_is_refused_409_and_emits_nothing() {
        let n = node(config());
        let first = n.compute("e1", 1_000_000, 3, false);
        assert_eq!(first.status, 200);
        let digest = first.json["manifest_digest"].clone();
        // This node remembers the claim: 409 without asking the ledger.
        let calls = n.metric("ledger_egress_latency_seconds_count");
        let second = n.compute("e1", 2_000_000, 3, false);
        assert_eq!(second.status, 409, "{}", second.json);
        assert_eq!(second.json["error"]["code"], "epoch_conflict");
        assert_eq!(second.json["error"]["details"]["run_id"], first.json["manifest"]["run_id"]);
        assert_eq!(n.metric("ledger_egress_latency_seconds_count"), calls);
        // The epoch's result is still the run that holds it.
        assert_eq!(n.call("GET", "/rewarder/epochs/e1", b"").json["manifest_digest"], digest);
        // A dry run of the other inputs is still fine: it registers nothing.
        assert_eq!(n.compute("e1", 2_000_000, 3, true).status, 200);
        // Another node (no local record) hears 409 from the ledger.
        let other = node(config());
        other.ledger.state().runs.insert(("default".into(), "e1".into()), "b3:someone-else".into());
        let refused = other.compute("e1", 1_000_000, 3, false);
        assert_eq!(refused.status, 409);
        let s = other.ledger.state();
        assert_eq!((s.registrations, s.batches.len(), s.accepted), (1, 0, 0));
        drop(s);
        assert_eq!(other.call("GET", "/rewarder/epochs/e1", b"").status, 409);
        let s = n.ledger.state();
        assert_eq!((s.accepted, s.dup, s.conflict), (3, 0, 0));
    }

    #[test]
    fn a_replay_of_an_emitted_run_answers_its_record_and_sends_nothing_even_in_brownout() {
        let n = node(config());
        assert_eq!(ledger_of(&n.compute("e1", 1_000_000, 3, false)), ("emitted", 3, 0, 0));
        let replay = n.compute("e1", 1_000_000, 3, false);
        assert_eq!((replay.status, ledger_of(&replay)), (200, ("emitted", 3, 0, 0)));
        assert_eq!(n.metric("reward_runs_total{status=\"cached\"}"), 1);
        // A brownout (another run met a dead ledger), then the replay again: still 200.
        n.ledger.state().down = true;
        assert_eq!(n.compute("e2", 1_000_000, 3, false).status, 202);
        assert_eq!(n.metric("ledger_degraded"), 1);
        n.ledger.state().down = false;
        let calls = n.metric("ledger_egress_latency_seconds_count");
        let replay = n.compute("e1", 1_000_000, 3, false);
        assert_eq!((replay.status, ledger_of(&replay)), (200, ("emitted", 3, 0, 0)));
        assert_eq!(n.metric("ledger_egress_latency_seconds_count"), calls, "not one ledger request");
        assert_eq!(n.service.quarantine_depth(), 3, "nothing queued again");
        let s = n.ledger.state();
        assert_eq!((s.accepted, s.dup, s.registrations), (3, 0, 1));
    }

    #[test]
    fn durable_acceptance_keeps_the_run_before_any_request_and_deletes_it_once_emitted() {
        let n = durable_node(EgressConfig { failures_to_degrade: 100, ..config() });
        let store = n.store.clone().unwrap();
        // Registration and batch 1 answer; batch 2 fails on all three attempts.
        let fail = Some(Fault::Fail(LedgerErrorKind::Server));
        n.ledger.state().script.extend([None, None, fail, fail, fail]);
        let a = n.compute("e1", 1_000_000, 5, false);
        assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 2, 0, 3)));
        assert_eq!(a.json["ledger"]["durable"], true);
        assert_eq!(*store.ledger_calls_at_insert.lock().unwrap(), vec![0], "kept before the first request");
        let rows = store.rows();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].tenant.as_str(), rows[0].epoch.as_str(), rows[0].payees), ("default", "e1", 5));
        assert_eq!(rows[0].cursor, Cursor { next: 2, accepted: 2, dup: 0 }, "the cursor follows batch 1");
        n.drain_all(250 * MS);
        assert!(store.rows().is_empty(), "deleted once every intent is answered");
        // A healthy run is kept, then deleted within the same compute.
        let b = n.compute("e2", 1_000_000, 3, false);
        assert_eq!(
            (b.status, ledger_of(&b), &b.json["ledger"]["durable"]),
            (200, ("emitted", 3, 0, 0), &Value::Bool(true))
        );
        assert_eq!(store.ledger_calls_at_insert.lock().unwrap().len(), 2);
        assert!(store.rows().is_empty());
        // A dry run carries no `durable`; a node without a store says false.
        assert!(n.compute("e3", 1_000_000, 3, true).json["ledger"].get("durable").is_none());
        assert_eq!(node(config()).compute("e1", 1_000_000, 3, false).json["ledger"]["durable"], false);
    }

    #[test]
    fn a_restarted_node_drains_what_its_store_kept_from_the_cursor_and_answers_its_progress() {
        let n = durable_node(EgressConfig { failures_to_degrade: 100, ..config() });
        let fail = Some(Fault::Fail(LedgerErrorKind::Server));
        n.ledger.state().script.extend([None, None, fail, fail, fail]);
        let a = n.compute("e1", 1_000_000, 5, false);
        assert_eq!(a.status, 202);
        n.ledger.state().down = true;
        assert_eq!(n.compute("e2", 1_000_000, 3, false).status, 202);
        // The process dies; a new one knows only its store. No client computes anything.
        let m = n.restart();
        drop(n);
        assert_eq!(m.service.quarantine_depth(), 6);
        let g = m.call("GET", "/rewarder/epochs/e1", b"");
        assert_eq!((g.status, ledger_of(&g)), (200, ("quarantined", 2, 0, 3)), "progress from the record");
        assert_eq!(g.json["manifest_digest"], a.json["manifest_digest"]);
        assert_eq!(g.json["allocations"], a.json["allocations"], "the payees survive, not only the counts");
        assert_eq!(m.call("GET", "/rewarder/epochs/e1/proof/acct:a004", b"").status, 200);
        assert_eq!(ledger_of(&m.call("GET", "/rewarder/epochs/e2", b"")), ("quarantined", 0, 0, 3));
        m.ledger.state().down = false;
        m.drain_all(250 * MS);
        for (epoch, accepted) in [("e1", 5), ("e2", 3)] {
            let g = m.call("GET", &format!("/rewarder/epochs/{epoch}"), b"");
            assert_eq!(ledger_of(&g), ("emitted", accepted, 0, 0), "{epoch}");
        }
        let s = m.ledger.state();
        assert_eq!((s.accepted, s.dup, s.conflict), (8, 0, 0), "exactly once, sent from the cursor");
        drop(s);
        assert!(m.store.as_ref().unwrap().rows().is_empty());
        // The recovered claim still refuses another run of the epoch.
        assert_eq!(m.compute("e1", 2_000_000, 5, false).status, 409);
    }

    #[test]
    fn a_store_that_refuses_the_run_answers_503_and_sends_nothing() {
        let n = durable_node(config());
        n.store.as_ref().unwrap().refuse.store(true, Ordering::SeqCst);
        let a = n.compute("e1", 1_000_000, 3, false);
        assert_eq!((a.status, a.json["error"]["code"].as_str()), (503, Some("not_ready")));
        assert_eq!(n.ledger.state().registrations, 0);
        assert_eq!(n.service.quarantine_depth(), 0);
        n.store.as_ref().unwrap().refuse.store(false, Ordering::SeqCst);
        assert_eq!(n.compute("e1", 1_000_000, 3, false).status, 200, "the claim was given back");
    }

    #[test]
    fn a_damaged_record_stops_the_start_and_a_store_needs_a_ledger() {
        let store = Arc::new(MemStore::default());
        let row = DurableRun {
            run_id: "b3:x".into(),
            tenant: "default".into(),
            epoch: "e1".into(),
            payees: 1,
            cursor: Cursor::default(),
            record: b"RWQ1garbage".to_vec(),
        };
        store.rows.lock().unwrap().push(row);
        let n = node(config());
        let e = n.service.with_queue_store(store.clone()).err().expect("refused");
        assert!(e.0.contains("damaged"), "{e}");
        let bare = Service::new(
            service_config(64),
            Arc::new(FakeClock::default()),
            Arc::new(Host),
            Arc::new(Refuses),
        );
        assert!(bare.with_queue_store(Arc::new(MemStore::default())).is_err());
    }

    #[test]
    fn the_quarantine_only_switch_holds_every_intent_until_it_is_turned_off() {
        let n = node(config());
        n.quarantine_only(true);
        assert_eq!(n.metric("ledger_quarantine_only"), 1);
        let ready = n.call("GET", "/readyz", b"");
        assert_eq!((ready.status, &ready.json["ledger_quarantine_only"]), (200, &Value::Bool(true)));
        assert_eq!(ready.json["details"], serde_json::json!(["ledger_quarantine_only"]));
        let a = n.compute("e1", 1_000_000, 3, false);
        assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 0, 0, 3)));
        for _ in 0..3 {
            let r = n.service.drain_quarantine(100);
            assert!(!r.probed && !r.progressed() && r.queue_depth == 3, "{r:?}");
            n.clock.advance(250 * MS);
        }
        let s = n.ledger.state();
        assert_eq!((s.registrations, s.batches.len(), s.probes), (0, 0, 0), "no ledger traffic at all");
        drop(s);
        assert_eq!(n.metric("ledger_degraded"), 0, "a switch, not a brownout");
        n.quarantine_only(false);
        n.drain_all(250 * MS);
        assert_eq!(ledger_of(&n.call("GET", "/rewarder/epochs/e1", b"")), ("emitted", 3, 0, 0));
        assert_eq!(n.metric("ledger_quarantine_only"), 0);
        assert_eq!(n.call("GET", "/readyz", b"").json["details"], serde_json::json!([]));
    }

    #[test]
    fn a_full_quarantine_queue_refuses_new_runs_with_503() {
        let n = node(EgressConfig { quarantine_max: 5, ..config() });
        n.ledger.state().down = true;
        assert_eq!(n.compute("e1", 1_000_000, 3, false).status, 202);
        assert_eq!(n.compute("e2", 1_000_000, 3, false).status, 202, "4 < 5: admitted, may overshoot");
        let full = n.compute("e3", 1_000_000, 1, false);
        assert_eq!(full.status, 503);
        assert_eq!(full.json["error"]["code"], "overloaded");
        assert_eq!(n.metric("rejected_total{reason=\"quarantine_full\"}"), 1);
        assert_eq!(n.compute("e3", 1_000_000, 1, true).status, 200, "dry runs still compute");
        // A queued run re-sent is answered, not refused.
        assert_eq!(n.compute("e1", 1_000_000, 3, false).status, 202);
        n.ledger.state().down = false;
        n.drain_all(250 * MS);
        assert_eq!(n.compute("e3", 1_000_000, 1, false).status, 200);
        assert_eq!(n.ledger.state().accepted, 7);
    }

    #[test]
    fn a_refusal_is_queued_at_once_and_a_registration_conflict_in_the_drain_drops_the_run() {
        let n = node(config());
        n.ledger.state().script.push_back(Some(Fault::Fail(LedgerErrorKind::Rejected)));
        let a = n.compute("e1", 1_000_000, 2, false);
        assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 0, 0, 2)));
        assert!(n.pacer.pauses.lock().unwrap().is_empty(), "a refusal is not retried");
        // Meanwhile another node's run took the epoch at the ledger.
        n.ledger.state().runs.insert(("default".into(), "e1".into()), "b3:someone-else".into());
        let r = n.service.drain_quarantine(100);
        assert_eq!((r.lost_runs, r.queue_depth, r.accepted), (1, 0, 0), "{r:?}");
        assert_eq!(n.call("GET", "/rewarder/epochs/e1", b"").status, 409);
        assert_eq!(n.compute("e1", 1_000_000, 2, false).status, 409);
        assert_eq!(n.ledger.state().accepted, 0);
    }

    #[test]
    fn a_run_with_no_payees_is_registered_and_emitted() {
        let n = node(config());
        let a = n.compute("e1", 0, 2, false);
        assert_eq!((a.status, ledger_of(&a)), (200, ("emitted", 0, 0, 0)), "{}", a.json);
        assert_eq!(n.ledger.state().registrations, 1);
        n.ledger.state().down = true;
        let b = n.compute("e2", 0, 2, false);
        assert_eq!((b.status, ledger_of(&b)), (202, ("quarantined", 0, 0, 0)));
        n.ledger.state().down = false;
        n.drain_all(250 * MS);
        assert_eq!(ledger_of(&n.call("GET", "/rewarder/epochs/e2", b"")), ("emitted", 0, 0, 0));
    }

    #[test]
    fn a_quarantined_run_is_pinned_in_the_store_until_the_ledger_answered_it() {
        // RUNS_MAX = 2: every later run would evict an unpinned one.
        let n = node_with(config(), 2);
        n.ledger.state().down = true;
        let a = n.compute("e1", 1_000_000, 3, false);
        assert_eq!((a.status, ledger_of(&a)), (202, ("quarantined", 0, 0, 3)));
        let digest = a.json["manifest_digest"].clone();
        for i in 0..5 {
            assert_eq!(n.compute(&format!("d{i}"), 1_000_000, 2, true).status, 200);
        }
        // Still answerable, proofs included, and a re-sent compute is the queue's own run.
        let g = n.call("GET", "/rewarder/epochs/e1", b"");
        assert_eq!((g.status, ledger_of(&g)), (200, ("quarantined", 0, 0, 3)));
        assert_eq!(g.json["manifest_digest"], digest);
        assert_eq!(n.call("GET", "/rewarder/epochs/e1/proof/acct:a000", b"").status, 200);
        let again = n.compute("e1", 1_000_000, 3, false);
        assert_eq!((again.status, again.json["manifest_digest"].clone()), (202, digest.clone()));
        assert_eq!(n.metric("reward_runs_total{status=\"cached\"}"), 1);
        // Drained, the run is emitted and its pins are gone: later runs may evict it.
        n.ledger.state().down = false;
        n.drain_all(250 * MS);
        assert_eq!(ledger_of(&n.call("GET", "/rewarder/epochs/e1", b"")), ("emitted", 3, 0, 0));
        for i in 5..7 {
            assert_eq!(n.compute(&format!("d{i}"), 1_000_000, 2, true).status, 200);
        }
        assert_eq!(n.call("GET", "/rewarder/epochs/e1", b"").status, 404);
        assert_eq!(lock(&n.service.runs).len(), 2);
    }

    #[test]
    fn a_run_lost_at_registration_in_the_drain_is_unpinned() {
        let n = node_with(config(), 1);
        n.ledger.state().script.push_back(Some(Fault::Fail(LedgerErrorKind::Rejected)));
        assert_eq!(n.compute("e1", 1_000_000, 2, false).status, 202);
        n.ledger.state().runs.insert(("default".into(), "e1".into()), "b3:someone-else".into());
        assert_eq!(n.service.drain_quarantine(100).lost_runs, 1);
        assert_eq!(n.compute("e2", 1_000_000, 2, true).status, 200);
        assert_eq!(lock(&n.service.runs).len(), 1, "e1 was evicted once unpinned");
        assert_eq!(n.call("GET", "/rewarder/epochs/e1", b"").status, 404);
    }
}
