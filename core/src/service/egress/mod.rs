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

mod brownout;
use brownout::Brownout;

use super::ledger::{
    Intent, IntentOutcome, Ledger, LedgerError, Pacer, Registration, RunRegistration, Verdict,
};

/// How a ledger request is made: a compute retries with backoff before it queues the rest; the
/// drain makes one attempt per call, its next call being the retry.
#[derive(Debug, Clone, Copy)]
enum Attempt {
    Retrying,
    Once,
}

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

impl EgressConfig {
    /// The `LEDGER_*` knobs of API.md §5 (their defaults are the host's: the node's knob
    /// table), with the shape fixed here: backoff from 50 ms up to 2 s, brownout after one
    /// whole failed retry sequence (`max_retries + 1` failures in a row) or a p95 over at
    /// least 5 samples.
    pub fn new(
        max_retries: u32,
        batch_max: usize,
        p95_budget: Duration,
        window: Duration,
        quarantine_max: usize,
    ) -> Self {
        EgressConfig {
            max_retries,
            batch_max: batch_max.max(1),
            p95_budget,
            window,
            quarantine_max,
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
        lock(&self.brownout).degraded()
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
            brownout: Mutex::new(Brownout::new(config)),
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

        let registered =
            phase_span!("ledger_register").in_scope(|| self.register(egress, stored, Attempt::Retrying));
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
            let span =
                phase_span!("egress_batch", first = entry.next, intents = to - entry.next, answered = false);
            let answered =
                span.in_scope(|| self.send_batch(egress, stored, entry.next..to, Attempt::Retrying));
            span.record("answered", answered.is_ok());
            match answered {
                Ok(t) => {
                    entry.accepted += t.accepted;
                    entry.dup += t.dup;
                    conflicts += t.conflicts;
                    entry.next = to;
                    egress.keep_progress(&m.run_id, n, entry.report());
                }
                Err(e) => {
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
            let changed = lock(&egress.brownout).probe(now, latency, healthy.is_ok());
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
            match self.register(egress, stored, Attempt::Once) {
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
        match self.send_batch(egress, stored, entry.next..to, Attempt::Once) {
            Ok(t) => {
                *budget = budget.saturating_sub((to - entry.next).max(1));
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

    /// The run's registration (API.md §4.1): the first request of every run, on a compute and
    /// in the drain alike.
    fn register(
        &self,
        egress: &Egress,
        stored: &StoredRun,
        attempt: Attempt,
    ) -> Result<Registration, LedgerError> {
        let m = stored.run.manifest();
        let body = registration(stored);
        self.request(egress, attempt, || egress.ledger.register_run(&m.tenant, &m.epoch, &body))
    }

    /// One batch of the run's intents (`range`, in payee order), on a compute and in the drain
    /// alike: the ledger's verdicts checked against the batch and counted; a batch the ledger
    /// did not answer is counted as errors.
    fn send_batch(
        &self,
        egress: &Egress,
        stored: &StoredRun,
        range: std::ops::Range<usize>,
        attempt: Attempt,
    ) -> Result<Tally, LedgerError> {
        let batch = intents(stored, range.start, range.end);
        let answered = self.request(egress, attempt, || {
            let outcomes = egress.ledger.send_intents(&batch)?;
            super::ledger::check_outcomes(&batch, &outcomes)?;
            Ok(outcomes)
        });
        answered.map(|outcomes| self.count(&outcomes)).inspect_err(|_| {
            self.metrics.ledger_intents(IntentResult::Error, batch.len() as u64);
        })
    }

    /// A ledger request made as `attempt` says.
    fn request<T>(
        &self,
        egress: &Egress,
        attempt: Attempt,
        call: impl FnMut() -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        match attempt {
            Attempt::Retrying => self.attempts(egress, call),
            Attempt::Once => self.timed(egress, call),
        }
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
        let changed = lock(&egress.brownout).record(now, latency, result.is_ok());
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
mod tests;
