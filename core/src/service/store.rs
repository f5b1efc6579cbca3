//! The sealed stores of a node, in memory and bounded: parsed documents per tenant (by bytes,
//! least recently used evicted first) and runs (by count, `RUNS_MAX`), with the index of each
//! tenant's latest run per epoch.
//!
//! Every key includes the tenant, so one tenant can never reach another's document or run;
//! a miss is a miss whoever holds the same content. The stores hold parsed documents only
//! (`Arc`s shared with computes in flight); raw bytes go to the host's [`super::Artifacts`].
//! They do no I/O and take no locks themselves: the service wraps each in a mutex.

use std::collections::{HashMap, HashSet};
use std::mem::{size_of, size_of_val};
use std::sync::{Arc, Mutex, OnceLock};

use super::lock;
use super::lru::Lru;
use crate::calculus::Payee;
use crate::inputs::Inputs;
use crate::policy::Policy;
use crate::result::LedgerReport;
use crate::run::Run;
use crate::sign::{Signatures, SigningKeys};

/// Bytes counted per stored document beyond its contents (keys, map and slab slots).
const DOCUMENT_OVERHEAD_BYTES: usize = 256;

/// Most documents kept whatever their size (many tiny documents still cost map slots).
pub const DOCUMENTS_MAX: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Inputs,
    Policy,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DocKey {
    kind: Kind,
    tenant: String,
    id: String,
}

impl DocKey {
    fn new(kind: Kind, tenant: &str, id: &str) -> Self {
        DocKey { kind, tenant: tenant.to_owned(), id: id.to_owned() }
    }
}

enum Doc {
    Inputs(Arc<Inputs>),
    Policy(Arc<Policy>),
}

/// An estimate of the memory a parsed inputs document holds, from its public shape.
pub(crate) fn inputs_weight(inputs: &Inputs) -> usize {
    let mut bytes = size_of::<Inputs>() + inputs.cid().len() + inputs.epoch().len();
    bytes += inputs.kinds().iter().map(|k| k.len() + size_of::<String>()).sum::<usize>();
    for i in 0..inputs.actor_count() {
        bytes += inputs.actor(i).len() + 2 * size_of::<u32>() + size_of_val(inputs.usage(i));
    }
    bytes + DOCUMENT_OVERHEAD_BYTES
}

/// An estimate of the memory a parsed policy holds: never more than its raw bytes (every
/// parsed field is a subset of them) plus fixed overhead.
pub(crate) fn policy_weight(raw_len: usize) -> usize {
    size_of::<Policy>() + raw_len + DOCUMENT_OVERHEAD_BYTES
}

/// Most (tenant, length) pairs remembered for [`Documents::may_hold_inputs`]; past it the set
/// starts again (a forgotten length only costs a re-upload its early answer).
const INPUTS_LENGTHS_MAX: usize = 1 << 16;

/// Parsed sealed documents of every tenant, bounded by their estimated size.
pub(crate) struct Documents {
    lru: Lru<DocKey, Doc>,
    /// The byte lengths of the inputs documents stored per tenant (evicted ones may linger).
    inputs_lengths: HashSet<(String, usize)>,
}

impl Documents {
    /// An empty store keeping at most `bytes_max` (estimated) of parsed documents.
    pub(crate) fn new(bytes_max: usize) -> Self {
        Documents { lru: Lru::new(DOCUMENTS_MAX, bytes_max), inputs_lengths: HashSet::new() }
    }

    /// Whether the tenant may hold an inputs document of `len` bytes: false means it holds
    /// none, so an upload of that length is new whatever its content id.
    pub(crate) fn may_hold_inputs(&self, tenant: &str, len: usize) -> bool {
        self.inputs_lengths.contains(&(tenant.to_owned(), len))
    }

    /// The tenant's inputs document with that content id.
    pub(crate) fn inputs(&mut self, tenant: &str, cid: &str) -> Option<Arc<Inputs>> {
        match self.lru.get(&DocKey::new(Kind::Inputs, tenant, cid))? {
            Doc::Inputs(i) => Some(Arc::clone(i)),
            Doc::Policy(_) => None,
        }
    }

    /// The tenant's policy with that hash.
    pub(crate) fn policy(&mut self, tenant: &str, hash: &str) -> Option<Arc<Policy>> {
        match self.lru.get(&DocKey::new(Kind::Policy, tenant, hash))? {
            Doc::Policy(p) => Some(Arc::clone(p)),
            Doc::Inputs(_) => None,
        }
    }

    /// Stores an inputs document for the tenant unless it already holds one with the same
    /// cid; returns the one stored and whether it is new.
    pub(crate) fn insert_inputs(
        &mut self,
        tenant: &str,
        inputs: Arc<Inputs>,
        raw_len: usize,
    ) -> (Arc<Inputs>, bool) {
        if let Some(old) = self.inputs(tenant, inputs.cid()) {
            return (old, false);
        }
        if self.inputs_lengths.len() >= INPUTS_LENGTHS_MAX {
            self.inputs_lengths.clear();
        }
        self.inputs_lengths.insert((tenant.to_owned(), raw_len));
        let weight = inputs_weight(&inputs);
        self.lru.insert(
            DocKey::new(Kind::Inputs, tenant, inputs.cid()),
            Doc::Inputs(Arc::clone(&inputs)),
            weight,
        );
        (inputs, true)
    }

    /// Stores a policy for the tenant unless it already holds one with the same hash; returns
    /// the one stored and whether it is new.
    pub(crate) fn insert_policy(
        &mut self,
        tenant: &str,
        policy: Arc<Policy>,
        raw_len: usize,
    ) -> (Arc<Policy>, bool) {
        if let Some(old) = self.policy(tenant, policy.hash()) {
            return (old, false);
        }
        let key = DocKey::new(Kind::Policy, tenant, policy.hash());
        self.lru.insert(key, Doc::Policy(Arc::clone(&policy)), policy_weight(raw_len));
        (policy, true)
    }

    /// Estimated bytes held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.lru.weight()
    }
}

/// A computed run as the node keeps it.
#[derive(Debug)]
pub(crate) struct StoredRun {
    /// The run (manifest, allocations, proofs).
    pub(crate) run: Run,
    /// How long it took to compute, in milliseconds.
    pub(crate) compute_ms: f64,
    /// Where its payouts stand with the ledger.
    ledger: Mutex<LedgerReport>,
    /// Its signatures, made once: both algorithms sign deterministically and the node's keys
    /// never change while it runs, so every later answer repeats them.
    signatures: OnceLock<Signatures>,
}

impl StoredRun {
    /// A run not yet handed to any ledger.
    pub(crate) fn new(run: Run, compute_ms: f64) -> Self {
        StoredRun { run, compute_ms, ledger: Mutex::new(LedgerReport::DRY_RUN), signatures: OnceLock::new() }
    }

    /// Its signatures under `keys`, signing on first use (a concurrent caller waits for it).
    pub(crate) fn signatures(&self, keys: &SigningKeys) -> &Signatures {
        self.signatures.get_or_init(|| keys.sign(self.run.digest_bytes()))
    }

    /// Whether [`StoredRun::signatures`] would answer at once.
    pub(crate) fn is_signed(&self) -> bool {
        self.signatures.get().is_some()
    }

    /// The latest ledger report.
    pub(crate) fn ledger(&self) -> LedgerReport {
        *lock(&self.ledger)
    }

    /// Records the ledger's progress (the egress step, or the quarantine drain later).
    pub(crate) fn set_ledger(&self, report: LedgerReport) {
        *lock(&self.ledger) = report;
    }
}

/// Bytes counted per stored run beyond its payees (manifest strings, keys, map slots).
const RUN_OVERHEAD_BYTES: usize = 2048;

/// An estimate of the memory a stored run holds: its payees and manifest. The inputs it
/// shares (`Arc`) are the documents store's to count.
pub(crate) fn run_weight(run: &Run) -> usize {
    run.outcome().payees.capacity() * size_of::<Payee>() + RUN_OVERHEAD_BYTES
}

/// Runs by run id (a memo: the same request is the same run), bounded by count and by their
/// estimated bytes, and each tenant's latest run per epoch.
pub(crate) struct Runs {
    lru: Lru<String, Arc<StoredRun>>,
    /// `(tenant, epoch)` → run id; only ever names runs still in `lru`.
    latest: HashMap<(String, String), String>,
}

impl Runs {
    /// An empty store of at most `runs_max` runs weighing at most `bytes_max` (estimated).
    pub(crate) fn new(runs_max: usize, bytes_max: usize) -> Self {
        Runs { lru: Lru::new(runs_max, bytes_max), latest: HashMap::new() }
    }

    /// The tenant's run with that id.
    pub(crate) fn get(&mut self, tenant: &str, run_id: &str) -> Option<Arc<StoredRun>> {
        let run = self.lru.get(run_id)?;
        // Run ids commit to the tenant, so this holds; checked all the same.
        (run.run.manifest().tenant == tenant).then(|| Arc::clone(run))
    }

    /// Stores a run (replacing one with the same id) and makes it its epoch's latest.
    pub(crate) fn insert(&mut self, run: Arc<StoredRun>) {
        let id = run.run.run_id().to_owned();
        self.mark_latest(&run);
        let weight = run_weight(&run.run);
        for (evicted_id, evicted) in self.lru.insert(id, run, weight) {
            let m = evicted.run.manifest();
            let key = (m.tenant.clone(), m.epoch.clone());
            if self.latest.get(&key) == Some(&evicted_id) {
                self.latest.remove(&key);
            }
        }
    }

    /// Makes a stored run its tenant's latest of its epoch.
    pub(crate) fn mark_latest(&mut self, run: &StoredRun) {
        let m = run.run.manifest();
        self.latest.insert((m.tenant.clone(), m.epoch.clone()), m.run_id.clone());
    }

    /// The tenant's latest run of an epoch.
    pub(crate) fn latest(&mut self, tenant: &str, epoch: &str) -> Option<Arc<StoredRun>> {
        let id = self.latest.get(&(tenant.to_owned(), epoch.to_owned()))?.clone();
        self.get(tenant, &id)
    }

    /// Number of runs kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lru.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::Limits;

    fn inputs(epoch: &str, pool: u32) -> Arc<Inputs> {
        let raw = format!(
            r#"{{"schema":"rewarder.inputs.v1","epoch":"{epoch}","pool_minor":"{pool}","kinds":["k"],"actors":["a","b"],"events":[[1,0,0,5],[2,1,0,7]]}}"#
        );
        Arc::new(Inputs::parse(raw.as_bytes(), &Limits::UNBOUNDED).unwrap())
    }

    fn policy() -> (Arc<Policy>, usize) {
        let raw = br#"{"schema":"rewarder.policy.v1","policy_id":"p1","weights":{"k":1}}"#;
        (Arc::new(Policy::parse(raw).unwrap()), raw.len())
    }

    #[test]
    fn documents_are_per_tenant_and_inserted_once() {
        let mut d = Documents::new(1 << 20);
        let i = inputs("e1", 100);
        assert!(d.insert_inputs("t1", Arc::clone(&i), 0).1);
        assert!(!d.insert_inputs("t1", Arc::clone(&i), 0).1);
        assert!(d.inputs("t1", i.cid()).is_some());
        assert!(d.inputs("t2", i.cid()).is_none());
        assert!(d.policy("t1", i.cid()).is_none(), "kinds do not mix");
        let (p, len) = policy();
        assert!(d.insert_policy("t2", Arc::clone(&p), len).1);
        assert!(d.policy("t2", p.hash()).is_some());
        assert!(d.policy("t1", p.hash()).is_none());
    }

    #[test]
    fn documents_are_bounded_by_estimated_bytes() {
        let one = inputs_weight(&inputs("e0", 0));
        let mut d = Documents::new(3 * one + one / 2);
        let docs: Vec<_> = (0..5).map(|n| inputs("e0", n)).collect();
        for i in &docs {
            d.insert_inputs("t", Arc::clone(i), 0);
        }
        assert!(d.bytes() <= 3 * one + one / 2);
        assert!(d.inputs("t", docs[0].cid()).is_none());
        assert!(d.inputs("t", docs[4].cid()).is_some());
    }

    #[test]
    fn runs_are_bounded_and_latest_follows_eviction() {
        let (p, _) = policy();
        let mut runs = Runs::new(2, usize::MAX);
        let run = |t: &str, e: &str, pool| {
            Arc::new(StoredRun::new(Run::compute(&inputs(e, pool), &p, t).unwrap(), 1.0))
        };
        let a = run("t", "e1", 10);
        let b = run("t", "e1", 20);
        runs.insert(Arc::clone(&a));
        assert_eq!(runs.latest("t", "e1").unwrap().run.run_id(), a.run.run_id());
        runs.insert(Arc::clone(&b));
        assert_eq!(runs.latest("t", "e1").unwrap().run.run_id(), b.run.run_id());
        assert!(runs.latest("u", "e1").is_none());
        assert!(runs.get("u", a.run.run_id()).is_none());
        runs.mark_latest(&a);
        assert_eq!(runs.latest("t", "e1").unwrap().run.run_id(), a.run.run_id());
        // Two more runs evict a and b; the epoch index forgets them.
        runs.insert(run("t", "e2", 10));
        runs.insert(run("t", "e3", 10));
        assert_eq!(runs.len(), 2);
        assert!(runs.latest("t", "e1").is_none());
        assert!(runs.latest("t", "e2").is_some());
    }
}
