//! The sealed stores of a node, in memory and bounded: parsed documents (by estimated bytes,
//! `DOCUMENTS_MAX_BYTES`) and runs (by count, `RUNS_MAX`, and estimated bytes,
//! `RUNS_MAX_BYTES`), with the index of each tenant's latest run per epoch.
//!
//! Both are shared fairly between tenants ([`super::fair`]): when a store is full, the tenant
//! holding the largest share pays with its least recently used entries, and a tenant under its
//! fair share keeps everything; optional quotas (`TENANT_STORE_MAX_BYTES`, `TENANT_RUNS_MAX`)
//! bound one tenant outright. A run whose intents the ledger has not answered is pinned
//! ([`Runs::pin`]) and never evicted.
//!
//! Every entry sits under its tenant, so one tenant can never reach another's document or run;
//! a miss is a miss whoever holds the same content. The stores hold parsed documents only
//! (`Arc`s shared with computes in flight); raw bytes go to the host's [`super::Artifacts`].
//! They do no I/O and take no locks themselves: the service wraps each in a mutex.

use std::collections::{HashMap, HashSet};
use std::mem::{size_of, size_of_val};
use std::sync::{Arc, Mutex, OnceLock};

use super::fair::{Bounds, FairLru, OverQuota};
use super::lock;
use crate::calculus::Payee;
use crate::inputs::Inputs;
use crate::policy::Policy;
use crate::result::{LedgerReport, Rows};
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

/// A document's key within its tenant's share.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DocKey {
    kind: Kind,
    id: String,
}

impl DocKey {
    fn new(kind: Kind, id: &str) -> Self {
        DocKey { kind, id: id.to_owned() }
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
    fair: FairLru<DocKey, Doc>,
    /// The byte lengths of the inputs documents stored per tenant (evicted ones may linger).
    inputs_lengths: HashSet<(String, usize)>,
}

impl Documents {
    /// An empty store keeping at most `bytes_max` (estimated) of parsed documents, and at most
    /// `tenant_bytes_max` of one tenant's (`TENANT_STORE_MAX_BYTES`).
    pub(crate) fn new(bytes_max: usize, tenant_bytes_max: Option<usize>) -> Self {
        let bounds = Bounds {
            tenant_weight_max: tenant_bytes_max.unwrap_or(usize::MAX),
            ..Bounds::shared(DOCUMENTS_MAX, bytes_max)
        };
        Documents { fair: FairLru::new(bounds), inputs_lengths: HashSet::new() }
    }

    /// Whether the tenant may hold an inputs document of `len` bytes: false means it holds
    /// none, so an upload of that length is new whatever its content id.
    pub(crate) fn may_hold_inputs(&self, tenant: &str, len: usize) -> bool {
        self.inputs_lengths.contains(&(tenant.to_owned(), len))
    }

    /// The tenant's inputs document with that content id.
    pub(crate) fn inputs(&mut self, tenant: &str, cid: &str) -> Option<Arc<Inputs>> {
        match self.fair.get(tenant, &DocKey::new(Kind::Inputs, cid))? {
            Doc::Inputs(i) => Some(Arc::clone(i)),
            Doc::Policy(_) => None,
        }
    }

    /// The tenant's policy with that hash.
    pub(crate) fn policy(&mut self, tenant: &str, hash: &str) -> Option<Arc<Policy>> {
        match self.fair.get(tenant, &DocKey::new(Kind::Policy, hash))? {
            Doc::Policy(p) => Some(Arc::clone(p)),
            Doc::Inputs(_) => None,
        }
    }

    /// Stores an inputs document for the tenant unless it already holds one with the same
    /// cid; returns the one stored and whether it is new. `Err` when the document alone is
    /// over the tenant's quota (nothing stored).
    pub(crate) fn insert_inputs(
        &mut self,
        tenant: &str,
        inputs: Arc<Inputs>,
        raw_len: usize,
    ) -> Result<(Arc<Inputs>, bool), OverQuota> {
        if let Some(old) = self.inputs(tenant, inputs.cid()) {
            return Ok((old, false));
        }
        let weight = inputs_weight(&inputs);
        self.fair.admits(weight)?;
        if self.inputs_lengths.len() >= INPUTS_LENGTHS_MAX {
            self.inputs_lengths.clear();
        }
        self.inputs_lengths.insert((tenant.to_owned(), raw_len));
        let key = DocKey::new(Kind::Inputs, inputs.cid());
        self.fair.insert(tenant, key, Doc::Inputs(Arc::clone(&inputs)), weight);
        Ok((inputs, true))
    }

    /// Stores a policy for the tenant unless it already holds one with the same hash; returns
    /// the one stored and whether it is new. `Err` when the policy alone is over the tenant's
    /// quota (nothing stored).
    pub(crate) fn insert_policy(
        &mut self,
        tenant: &str,
        policy: Arc<Policy>,
        raw_len: usize,
    ) -> Result<(Arc<Policy>, bool), OverQuota> {
        if let Some(old) = self.policy(tenant, policy.hash()) {
            return Ok((old, false));
        }
        let weight = policy_weight(raw_len);
        self.fair.admits(weight)?;
        let key = DocKey::new(Kind::Policy, policy.hash());
        self.fair.insert(tenant, key, Doc::Policy(Arc::clone(&policy)), weight);
        Ok((policy, true))
    }

    /// Estimated bytes held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.fair.weight()
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
    /// Its `allocations` array as answered, rendered once: the bytes never change, and a
    /// repeated full answer is then a copy, not a render (counted in [`run_weight`]).
    rows: OnceLock<Arc<Rows>>,
}

impl StoredRun {
    /// A run not yet handed to any ledger.
    pub(crate) fn new(run: Run, compute_ms: f64) -> Self {
        StoredRun {
            run,
            compute_ms,
            ledger: Mutex::new(LedgerReport::DRY_RUN),
            signatures: OnceLock::new(),
            rows: OnceLock::new(),
        }
    }

    /// Its `allocations` array, rendering it on first use.
    pub(crate) fn rows(&self) -> &Arc<Rows> {
        self.rows_with(|_| {})
    }

    /// Its `allocations` array; when this call renders it, `each` sees every piece as soon as
    /// it is rendered (a concurrent caller waits for the whole).
    pub(crate) fn rows_with(&self, each: impl FnMut(&Arc<Vec<u8>>)) -> &Arc<Rows> {
        self.rows.get_or_init(|| Arc::new(crate::result::render_rows(&self.run, each)))
    }

    /// Its signatures under `keys`, signing on first use (a concurrent caller waits for it).
    pub(crate) fn signatures(&self, keys: &SigningKeys) -> &Signatures {
        self.signatures.get_or_init(|| keys.sign(self.run.digest_bytes()))
    }

    /// Keeps `signatures`, made of its digest beside its check, as its signatures; the ones
    /// already kept win (a concurrent answer signed first: both are deterministic, and equal).
    pub(crate) fn signed_with(&self, signatures: Signatures) {
        self.signatures.get_or_init(|| signatures);
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

/// Bytes a payee's rendered allocation is counted as: the kept `allocations` array is rendered
/// on a run's first full answer, so it is counted from the start.
const RENDERED_ALLOCATION_BYTES: usize = 80;

/// An estimate of the memory a stored run holds: its payees, their rendered allocations and
/// its manifest. The inputs it shares (`Arc`) are the documents store's to count.
pub(crate) fn run_weight(run: &Run) -> usize {
    let payees = run.outcome().payees.capacity();
    payees * (size_of::<Payee>() + RENDERED_ALLOCATION_BYTES) + RUN_OVERHEAD_BYTES
}

/// Runs by tenant and run id (a memo: the same request is the same run), bounded by count and
/// by their estimated bytes, and each tenant's latest run per epoch.
pub(crate) struct Runs {
    fair: FairLru<String, Arc<StoredRun>>,
    /// `(tenant, epoch)` → run id; only ever names runs still in `fair`.
    latest: HashMap<(String, String), String>,
}

impl Runs {
    /// An empty store of at most `runs_max` runs weighing at most `bytes_max` (estimated), and
    /// at most `tenant_runs_max` runs of one tenant (`TENANT_RUNS_MAX`).
    pub(crate) fn new(runs_max: usize, bytes_max: usize, tenant_runs_max: Option<usize>) -> Self {
        let bounds = Bounds {
            tenant_len_max: tenant_runs_max.unwrap_or(usize::MAX),
            ..Bounds::shared(runs_max, bytes_max)
        };
        Runs { fair: FairLru::new(bounds), latest: HashMap::new() }
    }

    /// The tenant's run with that id.
    pub(crate) fn get(&mut self, tenant: &str, run_id: &str) -> Option<Arc<StoredRun>> {
        self.fair.get(tenant, run_id).map(|run| Arc::clone(run))
    }

    /// Stores a run (replacing one with the same id) and makes it its epoch's latest.
    pub(crate) fn insert(&mut self, run: Arc<StoredRun>) {
        self.mark_latest(&run);
        self.put(run);
    }

    /// Stores a run (replacing one with the same id), forgetting the latest runs evicted.
    fn put(&mut self, run: Arc<StoredRun>) {
        let m = run.run.manifest();
        let (tenant, id) = (m.tenant.clone(), m.run_id.clone());
        let weight = run_weight(&run.run);
        for (evicted_id, evicted) in self.fair.insert(&tenant, id, run, weight) {
            let m = evicted.run.manifest();
            let key = (m.tenant.clone(), m.epoch.clone());
            if self.latest.get(&key) == Some(&evicted_id) {
                self.latest.remove(&key);
            }
        }
    }

    /// Keeps a run out of eviction until as many [`Runs::unpin`]s: while the ledger has not
    /// answered all its intents (in egress, or in the quarantine queue), it stays answerable
    /// by `GET /rewarder/epochs/{epoch}` and its proofs.
    ///
    /// The store then holds this very `Arc`, the one egress records progress on: a run no
    /// longer stored (evicted between its compute and now) is stored again, as its epoch's
    /// latest as its compute made it; a twin computed by a racing compute of the same request
    /// is replaced, the epoch's latest left as it is.
    pub(crate) fn pin(&mut self, run: &Arc<StoredRun>) {
        let m = run.run.manifest();
        match self.fair.get(&m.tenant, m.run_id.as_str()) {
            Some(held) if Arc::ptr_eq(held, run) => {}
            Some(_) => self.put(Arc::clone(run)),
            None => self.insert(Arc::clone(run)),
        }
        self.fair.pin(&m.tenant, m.run_id.as_str());
    }

    /// Drops one pin of a run (see [`Runs::pin`]).
    pub(crate) fn unpin(&mut self, run: &StoredRun) {
        let m = run.run.manifest();
        self.fair.unpin(&m.tenant, m.run_id.as_str());
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
        self.fair.len()
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

    fn stored_run(policy: &Policy, tenant: &str, epoch: &str, pool: u32) -> Arc<StoredRun> {
        Arc::new(StoredRun::new(Run::compute(&inputs(epoch, pool), policy, tenant).unwrap(), 1.0))
    }

    #[test]
    fn documents_are_per_tenant_and_inserted_once() {
        let mut d = Documents::new(1 << 20, None);
        let i = inputs("e1", 100);
        assert_eq!(d.insert_inputs("t1", Arc::clone(&i), 0).map(|(_, new)| new), Ok(true));
        assert_eq!(d.insert_inputs("t1", Arc::clone(&i), 0).map(|(_, new)| new), Ok(false));
        assert!(d.inputs("t1", i.cid()).is_some());
        assert!(d.inputs("t2", i.cid()).is_none());
        assert!(d.policy("t1", i.cid()).is_none(), "kinds do not mix");
        let (p, len) = policy();
        assert_eq!(d.insert_policy("t2", Arc::clone(&p), len).map(|(_, new)| new), Ok(true));
        assert!(d.policy("t2", p.hash()).is_some());
        assert!(d.policy("t1", p.hash()).is_none());
    }

    #[test]
    fn documents_are_bounded_by_estimated_bytes() {
        let one = inputs_weight(&inputs("e0", 0));
        let mut d = Documents::new(3 * one + one / 2, None);
        let docs: Vec<_> = (0..5).map(|n| inputs("e0", n)).collect();
        for i in &docs {
            d.insert_inputs("t", Arc::clone(i), 0).unwrap();
        }
        assert!(d.bytes() <= 3 * one + one / 2);
        assert!(d.inputs("t", docs[0].cid()).is_none());
        assert!(d.inputs("t", docs[4].cid()).is_some());
    }

    #[test]
    fn runs_are_bounded_and_latest_follows_eviction() {
        let (p, _) = policy();
        let mut runs = Runs::new(2, usize::MAX, None);
        let run = |t: &str, e: &str, pool| stored_run(&p, t, e, pool);
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

    #[test]
    fn a_documents_flood_evicts_only_the_flooding_tenant() {
        let one = inputs_weight(&inputs("e0", 0));
        let mut d = Documents::new(4 * one, None);
        let mine = inputs("a", 1);
        d.insert_inputs("a", Arc::clone(&mine), 0).unwrap();
        let flood: Vec<_> = (0..8).map(|n| inputs("b", n)).collect();
        for i in &flood {
            d.insert_inputs("b", Arc::clone(i), 0).unwrap();
        }
        assert!(d.inputs("a", mine.cid()).is_some(), "under its fair share: kept");
        assert!(d.inputs("b", flood[0].cid()).is_none());
        assert!(d.inputs("b", flood[7].cid()).is_some());
        assert!(d.bytes() <= 4 * one);
    }

    #[test]
    fn a_document_over_its_tenants_quota_is_refused_and_at_the_quota_the_tenant_pays() {
        let one = inputs_weight(&inputs("e0", 0));
        let mut d = Documents::new(1 << 20, Some(2 * one));
        let (p, len) = policy();
        assert!(policy_weight(len) < one);
        let docs: Vec<_> = (0..3).map(|n| inputs("e0", n)).collect();
        d.insert_inputs("b", Arc::clone(&docs[0]), 0).unwrap();
        d.insert_inputs("a", Arc::clone(&docs[0]), 0).unwrap();
        d.insert_inputs("a", Arc::clone(&docs[1]), 0).unwrap();
        // At its quota: a's own oldest makes room, b (far under the store's bound) keeps its own.
        d.insert_inputs("a", Arc::clone(&docs[2]), 0).unwrap();
        assert!(d.inputs("a", docs[0].cid()).is_none());
        assert!(d.inputs("a", docs[1].cid()).is_some() && d.inputs("a", docs[2].cid()).is_some());
        assert!(d.inputs("b", docs[0].cid()).is_some());
        // The policy fits beside one inputs document: a's oldest (docs[1]) goes.
        d.insert_policy("a", p, len).unwrap();
        assert!(d.inputs("a", docs[1].cid()).is_none());
        // One document heavier than the whole quota: refused, nothing changes.
        let mut tight = Documents::new(1 << 20, Some(one - 1));
        assert_eq!(
            tight.insert_inputs("a", Arc::clone(&docs[0]), 0).err(),
            Some(OverQuota { weight: one, quota: one - 1 })
        );
        assert_eq!(tight.bytes(), 0);
    }

    #[test]
    fn a_runs_flood_evicts_only_the_flooding_tenant_and_pinned_runs_stay() {
        let (p, _) = policy();
        // RUNS_MAX = 5: a holds one run, b computes six.
        let mut runs = Runs::new(5, usize::MAX, None);
        let mine = stored_run(&p, "a", "e1", 10);
        runs.insert(Arc::clone(&mine));
        for pool in 0..6 {
            runs.insert(stored_run(&p, "b", &format!("b{pool}"), 10 + pool));
        }
        assert_eq!(runs.len(), 5);
        assert!(runs.latest("a", "e1").is_some());
        assert!(runs.latest("b", "b0").is_none() && runs.latest("b", "b5").is_some());
        // A pinned run of b stays however many more runs b computes; unpinned, it goes.
        let queued = stored_run(&p, "b", "q", 10);
        runs.insert(Arc::clone(&queued));
        runs.pin(&queued);
        for pool in 0..10 {
            runs.insert(stored_run(&p, "b", &format!("c{pool}"), 10 + pool));
        }
        assert!(runs.latest("b", "q").is_some() && runs.latest("a", "e1").is_some());
        runs.unpin(&queued);
        for pool in 0..4 {
            runs.insert(stored_run(&p, "b", &format!("d{pool}"), 10 + pool));
        }
        assert!(runs.latest("b", "q").is_none());
        assert!(runs.latest("a", "e1").is_some());
        // Pinning a run the store no longer holds stores it again, as its epoch's latest.
        runs.pin(&queued);
        assert!(Arc::ptr_eq(&runs.latest("b", "q").unwrap(), &queued));
        // Pinning a twin (the same run computed by a racing compute) makes the store hold it.
        let twin = stored_run(&p, "b", "q", 10);
        assert_eq!(twin.run.run_id(), queued.run.run_id());
        runs.pin(&twin);
        assert!(Arc::ptr_eq(&runs.get("b", twin.run.run_id()).unwrap(), &twin));
        runs.unpin(&twin);
        runs.unpin(&queued);
        for pool in 0..5 {
            runs.insert(stored_run(&p, "b", &format!("e{pool}"), 10 + pool));
        }
        assert!(runs.get("b", twin.run.run_id()).is_none(), "both pins dropped");
    }

    #[test]
    fn a_tenant_at_its_runs_quota_loses_its_own_oldest_run() {
        let (p, _) = policy();
        let mut runs = Runs::new(100, usize::MAX, Some(2));
        runs.insert(stored_run(&p, "a", "e1", 10));
        for pool in 0..3 {
            runs.insert(stored_run(&p, "b", &format!("e{pool}"), 10 + pool));
        }
        assert_eq!(runs.len(), 3);
        assert!(runs.latest("b", "e0").is_none() && runs.latest("b", "e2").is_some());
        assert!(runs.latest("a", "e1").is_some());
    }
}
