//! The quarantine queue of API.md §4: the intents of runs the ledger could not take yet,
//! waiting to be re-sent with the same keys. Bounded in intents (`LEDGER_QUARANTINE_MAX`);
//! when full, new non-dry runs are refused (`503 overloaded`) rather than queued without bound.
//!
//! A run's intents are sent in payee order and a failed batch is re-sent whole, so what a run
//! still owes the ledger is always a suffix of its payee list: an entry holds the stored run
//! and the index of its first pending payee, never copies of the intents. The run is the very
//! `Arc` the runs store holds, pinned there while it is queued (see `egress`), so the store
//! never evicts it and answers the progress the drain records.
//!
//! Admission reserves room for a whole run before its first intent leaves (see
//! [`Quarantine::reserve`]), so a run whose retries run out always finds room for the rest
//! of its intents: nothing admitted is ever dropped for lack of room. The queue itself lives in
//! memory; a host with a durable store (`STATE_PATH`, the macronode) keeps each run beside it
//! (`durable`), so a restart takes the queue back. Without one (the micronode, by design:
//! amnesia) it is lost on restart, which is safe because a client re-sending the compute
//! recomputes the same run and the ledger's keys dedupe whatever had already been paid.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::store::StoredRun;
use crate::result::{LedgerReport, LedgerStatus};

/// One run waiting in the queue.
#[derive(Debug, Clone)]
pub(crate) struct QueuedRun {
    /// The run (its payees are the intents).
    pub(crate) run: Arc<StoredRun>,
    /// Whether the ledger has registered the run (`201`/`200`); if not, the drain registers
    /// it before sending anything.
    pub(crate) registered: bool,
    /// Index of the first payee not yet answered by the ledger.
    pub(crate) next: usize,
    /// Intents of the run the ledger accepted so far.
    pub(crate) accepted: u64,
    /// Intents of the run answered `dup` so far.
    pub(crate) dup: u64,
}

impl QueuedRun {
    /// Payees of the run.
    pub(crate) fn total(&self) -> usize {
        payees(&self.run)
    }

    /// Intents still to send.
    pub(crate) fn pending(&self) -> usize {
        self.total().saturating_sub(self.next)
    }

    /// The run's progress as `GET /rewarder/epochs/{epoch}` shows it.
    pub(crate) fn report(&self) -> LedgerReport {
        let pending = self.pending() as u64;
        let status =
            if pending == 0 && self.registered { LedgerStatus::Emitted } else { LedgerStatus::Quarantined };
        LedgerReport { status, accepted: self.accepted, dup: self.dup, pending }
    }
}

/// Number of payees (intents) of a stored run.
pub(crate) fn payees(run: &StoredRun) -> usize {
    run.run.outcome().payees.len()
}

/// The queue: runs in arrival order, bounded by the intents they still owe plus the room
/// reserved by runs being sent right now.
#[derive(Debug)]
pub(crate) struct Quarantine {
    /// Queued runs by run id.
    entries: HashMap<String, QueuedRun>,
    /// Run ids in arrival order. Runs leave at the front (the drain works there); an id whose
    /// entry left elsewhere is skipped when it reaches the front.
    order: VecDeque<String>,
    /// Σ pending over `entries`.
    depth: usize,
    /// Room held by runs in egress (their whole payee count until they finish or queue).
    reserved: usize,
    /// `LEDGER_QUARANTINE_MAX`, in intents.
    depth_max: usize,
}

impl Quarantine {
    /// An empty queue of at most about `depth_max` intents.
    pub(crate) fn new(depth_max: usize) -> Self {
        Quarantine { entries: HashMap::new(), order: VecDeque::new(), depth: 0, reserved: 0, depth_max }
    }

    /// Intents waiting (the `quarantine_queue_depth` gauge).
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    /// Runs waiting.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the queue is full: queued plus reserved intents reach the bound.
    pub(crate) fn is_full(&self) -> bool {
        self.depth + self.reserved >= self.depth_max
    }

    /// Admits a run of `n` intents unless the queue is full, holding room for all of them.
    /// A run is admitted whenever the queue is not full, so the queue may hold up to one
    /// run's intents (per compute in flight) beyond the bound — never an unbounded amount —
    /// and a run larger than the bound can still be emitted when the queue is empty.
    pub(crate) fn reserve(&mut self, n: usize) -> bool {
        if self.is_full() {
            return false;
        }
        self.reserved += n;
        true
    }

    /// Gives back room held by [`Quarantine::reserve`].
    pub(crate) fn release(&mut self, n: usize) {
        self.reserved = self.reserved.saturating_sub(n);
    }

    /// The queued run with that id.
    pub(crate) fn get(&self, run_id: &str) -> Option<Arc<StoredRun>> {
        self.entries.get(run_id).map(|e| Arc::clone(&e.run))
    }

    /// The progress of the queued run with that id.
    pub(crate) fn report(&self, run_id: &str) -> Option<LedgerReport> {
        self.entries.get(run_id).map(QueuedRun::report)
    }

    /// Queues the rest of a run (room for it was reserved; the caller releases the
    /// reservation). If the run is already queued (two computes of it raced), the entry keeps
    /// the earlier of the two pending suffixes: re-sending a key is safe, skipping one is not.
    /// Returns the run's progress, and whether the run was not queued before (the caller pins
    /// it in the runs store for as long as it stays).
    pub(crate) fn push(&mut self, entry: QueuedRun) -> (LedgerReport, bool) {
        if let Some(old) = self.entries.get_mut(entry.run.run.run_id()) {
            let before = old.pending();
            old.next = old.next.min(entry.next);
            old.registered &= entry.registered;
            self.depth = self.depth + old.pending() - before;
            return (old.report(), false);
        }
        self.depth += entry.pending();
        let report = entry.report();
        let id = entry.run.run.run_id().to_owned();
        self.order.push_back(id.clone());
        self.entries.insert(id, entry);
        (report, true)
    }

    /// A copy of the oldest entry (the drain works on it without holding the lock).
    pub(crate) fn front(&mut self) -> Option<QueuedRun> {
        while let Some(id) = self.order.front() {
            if let Some(entry) = self.entries.get(id) {
                return Some(entry.clone());
            }
            self.order.pop_front();
        }
        None
    }

    /// Records whether the ledger holds the run's registration (`false`: the drain registers
    /// it again before its next intents).
    pub(crate) fn mark_registered(&mut self, run_id: &str, registered: bool) {
        if let Some(entry) = self.entries.get_mut(run_id) {
            entry.registered = registered;
        }
    }

    /// Records that the ledger answered the intents `from..to` of the run (`accepted` and
    /// `dup` of them). If the entry moved meanwhile (a racing compute queued an earlier
    /// suffix), it is left where it is, so nothing is skipped. A registered run with nothing
    /// left leaves the queue (its progress is then `Emitted`). Returns the run's progress, or
    /// `None` if it is not queued.
    pub(crate) fn advance(
        &mut self,
        run_id: &str,
        from: usize,
        to: usize,
        accepted: u64,
        dup: u64,
    ) -> Option<LedgerReport> {
        let entry = self.entries.get_mut(run_id)?;
        entry.accepted += accepted;
        entry.dup += dup;
        if entry.next == from && to > from {
            let before = entry.pending();
            entry.next = to.min(entry.total());
            self.depth -= before - entry.pending();
        }
        let report = entry.report();
        if report.status == LedgerStatus::Emitted {
            self.remove(run_id);
        }
        Some(report)
    }

    /// Takes a run out of the queue whatever it still owes (its epoch belongs to another
    /// run). Returns the intents dropped, or `None` if it was not queued.
    pub(crate) fn remove(&mut self, run_id: &str) -> Option<usize> {
        let entry = self.entries.remove(run_id)?;
        let dropped = entry.pending();
        self.depth -= dropped;
        if self.order.front().is_some_and(|id| id == run_id) {
            self.order.pop_front();
        }
        Some(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::{Inputs, Limits};
    use crate::policy::Policy;
    use crate::run::Run;

    fn run(epoch: &str, payees: usize) -> Arc<StoredRun> {
        let actors: Vec<String> = (0..payees).map(|i| format!("\"a{i}\"")).collect();
        let events: Vec<String> = (0..payees).map(|i| format!("[{i},{i},0,1]")).collect();
        let raw = format!(
            r#"{{"schema":"rewarder.inputs.v1","epoch":"{epoch}","pool_minor":"1000","kinds":["k"],"actors":[{}],"events":[{}]}}"#,
            actors.join(","),
            events.join(",")
        );
        let inputs = Arc::new(Inputs::parse(raw.as_bytes(), &Limits::UNBOUNDED).unwrap());
        let policy =
            Policy::parse(br#"{"schema":"rewarder.policy.v1","policy_id":"p","weights":{"k":1}}"#).unwrap();
        Arc::new(StoredRun::new(Run::compute(&inputs, &policy, "t").unwrap(), 1.0))
    }

    fn entry(run: &Arc<StoredRun>, next: usize, registered: bool) -> QueuedRun {
        QueuedRun { run: Arc::clone(run), registered, next, accepted: 0, dup: 0 }
    }

    #[test]
    fn reservations_bound_admission_and_turn_into_depth() {
        let mut q = Quarantine::new(10);
        assert!(q.reserve(6));
        assert!(q.reserve(6), "not full yet (6 < 10): one run may overshoot");
        assert!(q.is_full() && !q.reserve(1));
        let a = run("e1", 6);
        q.push(entry(&a, 2, true));
        q.release(6);
        assert_eq!((q.depth(), q.len()), (4, 1));
        q.release(6);
        assert!(!q.is_full() && q.reserve(100));
    }

    #[test]
    fn a_racing_push_keeps_the_earlier_suffix_and_advance_never_skips() {
        let mut q = Quarantine::new(100);
        let a = run("e1", 5);
        assert_eq!(q.push(entry(&a, 3, true)).0.pending, 2);
        // A second compute of the same run failed earlier in the run: its suffix wins.
        let (report, new) = q.push(entry(&a, 1, true));
        assert_eq!((report.pending, new), (4, false));
        assert_eq!((q.depth(), q.len()), (4, 1));
        // A drain that had read `next = 3` reports 3..5: the entry moved, so nothing is skipped.
        let report = q.advance(a.run.run_id(), 3, 5, 2, 0).unwrap();
        assert_eq!((report.status, report.pending, report.accepted), (LedgerStatus::Quarantined, 4, 2));
        let report = q.advance(a.run.run_id(), 1, 5, 2, 2).unwrap();
        assert_eq!((report.status, report.accepted, report.dup), (LedgerStatus::Emitted, 4, 2));
        assert_eq!((q.depth(), q.len()), (0, 0));
        assert!(q.front().is_none());
    }

    #[test]
    fn the_front_skips_runs_that_left_and_unregistered_runs_are_never_emitted() {
        let mut q = Quarantine::new(100);
        let (a, b) = (run("e1", 2), run("e2", 0));
        q.push(entry(&a, 0, false));
        q.push(entry(&b, 0, false));
        assert_eq!(q.report(b.run.run_id()).unwrap().status, LedgerStatus::Quarantined);
        assert_eq!(q.remove(a.run.run_id()), Some(2));
        assert_eq!(q.remove(a.run.run_id()), None);
        assert_eq!(q.front().unwrap().run.run.run_id(), b.run.run_id());
        q.mark_registered(b.run.run_id(), true);
        let report = q.advance(b.run.run_id(), 0, 0, 0, 0).unwrap();
        assert_eq!(report.status, LedgerStatus::Emitted);
        assert!(q.front().is_none() && q.get(b.run.run_id()).is_none());
    }
}
