//! The durable side of the quarantine queue (API.md §4.1): what a host keeps on its own volume
//! so that a `202` — a promise that the run's payouts will be delivered — survives a crash.
//!
//! The core decides *when* a record is written and what it holds; the host's [`QueueStore`]
//! only keeps rows (the macronode's is SQLite; the micronode and the embedded node keep none,
//! by design). A run's row is written before its first ledger request, and so before the answer;
//! it holds the run's registration and every intent (the [`encode`]d record), plus a
//! [`Cursor`] of what the ledger has answered. The cursor moves as batches are answered; the
//! row is deleted when the last intent is answered, or when another run holds the epoch.
//!
//! Why only the insert must succeed: a cursor that lags (a failed update, a crash between the
//! ledger's answer and the update) only makes the drain re-send intents the ledger already
//! holds, which its idempotency keys answer `dup`; a row that outlives its run (a failed
//! delete) is re-registered and re-sent as `dup` after a restart, then deleted. A cursor ahead
//! of the ledger would lose intents, and it never is: it moves only after an answer.
//!
//! The record is the run as the queue needs it — the manifest, the time it took, and the
//! payees `(actor, amount, score)` in payee order — because every intent is a pure function of
//! the manifest and one payee (its key is `intent_key(tenant, epoch, actor)`), and the same rows
//! answer `GET /rewarder/epochs/{epoch}` and proofs after a restart, when the inputs are gone.
//! Layout, all integers little-endian: the magic `RWQ1`; `u32` length and the manifest's JSON;
//! `f64` milliseconds; `u32` payee count; per payee `u8` id length, the id, `u64` amount,
//! `u128` score.

use std::fmt;
use std::sync::Arc;

use super::store::StoredRun;
use crate::manifest::Manifest;
use crate::run::Run;

/// What the ledger has answered of a queued run, in payee order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Index of the first payee whose intent is not yet answered.
    pub next: u64,
    /// Intents answered `accepted` so far.
    pub accepted: u64,
    /// Intents answered `dup` so far.
    pub dup: u64,
}

/// One run as a [`QueueStore`] keeps it: a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableRun {
    /// The run id (the row's key).
    pub run_id: String,
    /// Its tenant (for operators reading the store; the record holds it too).
    pub tenant: String,
    /// Its epoch (likewise).
    pub epoch: String,
    /// Its payee count (likewise).
    pub payees: u64,
    /// Its progress.
    pub cursor: Cursor,
    /// The [`encode`]d record: registration, intents, what answers need.
    pub record: Vec<u8>,
}

/// A store failure, for the host's logs (no personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// Where a host keeps the queue durably. Each call is one transaction, made durable before it
/// returns (the answer that follows may be a `202`).
pub trait QueueStore: Send + Sync {
    /// Every run kept, oldest first (once, at start).
    fn load(&self) -> Result<Vec<DurableRun>, StoreError>;
    /// Keeps a new run. A row of the same run id already kept stays as it is: its cursor
    /// only ever names answered intents, whichever compute of the run wrote it.
    fn insert(&self, run: &DurableRun) -> Result<(), StoreError>;
    /// Moves a kept run's cursor (nothing when the run is not kept).
    fn advance(&self, run_id: &str, cursor: Cursor) -> Result<(), StoreError>;
    /// Deletes a run: fully answered, or its epoch belongs to another run. The host makes sure
    /// no copy of its intents lingers on the volume (the actor ids are personal data).
    fn remove(&self, run_id: &str) -> Result<(), StoreError>;
}

/// Magic and version of the record layout.
const MAGIC: &[u8; 4] = b"RWQ1";

/// The row of a stored run at `cursor`.
pub(crate) fn durable_run(stored: &StoredRun, cursor: Cursor) -> DurableRun {
    let m = stored.run.manifest();
    DurableRun {
        run_id: m.run_id.clone(),
        tenant: m.tenant.clone(),
        epoch: m.epoch.clone(),
        payees: m.payees,
        cursor,
        record: encode(stored),
    }
}

/// The record of a stored run (layout in the module docs).
pub(crate) fn encode(stored: &StoredRun) -> Vec<u8> {
    let run = &stored.run;
    // Serializing plain strings into memory cannot fail.
    let manifest = serde_json::to_vec(run.manifest()).expect("serializing a manifest into memory");
    let payees = &run.outcome().payees;
    let ids: usize = run.allocations().map(|a| a.actor.len()).sum();
    let mut out = Vec::with_capacity(20 + manifest.len() + ids + payees.len() * 25);
    out.extend_from_slice(MAGIC);
    // A manifest is a few hundred bytes of validated ids and decimals.
    out.extend_from_slice(&u32::try_from(manifest.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&manifest);
    out.extend_from_slice(&stored.compute_ms.to_le_bytes());
    // Payee counts are bounded by actor indices, which are u32.
    out.extend_from_slice(&u32::try_from(payees.len()).unwrap_or(u32::MAX).to_le_bytes());
    for a in run.allocations() {
        // Payee ids are 1–128 bytes (CALCULUS.md §1.1).
        out.push(a.actor.len() as u8);
        out.extend_from_slice(a.actor.as_bytes());
        out.extend_from_slice(&a.amount.to_le_bytes());
        out.extend_from_slice(&a.score.to_le_bytes());
    }
    out
}

/// Rebuilds a stored run from its record; `Err` says why the record is unusable (truncated,
/// trailing bytes, a manifest that does not parse, payees that do not match the manifest).
pub(crate) fn decode(record: &[u8]) -> Result<Arc<StoredRun>, StoreError> {
    let bad = |why: &str| StoreError(format!("damaged queue record: {why}"));
    let mut r = Reader(record);
    if r.take(4).ok_or_else(|| bad("truncated"))? != MAGIC {
        return Err(bad("unknown layout"));
    }
    let len = r.u32().ok_or_else(|| bad("truncated"))? as usize;
    let manifest: Manifest = serde_json::from_slice(r.take(len).ok_or_else(|| bad("truncated"))?)
        .map_err(|_| bad("the manifest does not parse"))?;
    let compute_ms = f64::from_le_bytes(r.array().ok_or_else(|| bad("truncated"))?);
    let n = r.u32().ok_or_else(|| bad("truncated"))? as usize;
    // Each payee takes at least 26 bytes: a count beyond what is left is damage, not memory.
    if n > r.0.len() / 26 {
        return Err(bad("payee count beyond the record"));
    }
    let mut payees = Vec::with_capacity(n);
    for _ in 0..n {
        let len = usize::from(r.take(1).ok_or_else(|| bad("truncated"))?[0]);
        let actor =
            std::str::from_utf8(r.take(len).ok_or_else(|| bad("truncated"))?).map_err(|_| bad("an id"))?;
        let amount = u64::from_le_bytes(r.array().ok_or_else(|| bad("truncated"))?);
        let score = u128::from_le_bytes(r.array().ok_or_else(|| bad("truncated"))?);
        payees.push((actor, amount, score));
    }
    if !r.0.is_empty() {
        return Err(bad("trailing bytes"));
    }
    let run = Run::restore(manifest, &payees).map_err(|why| bad(&why))?;
    Ok(Arc::new(StoredRun::new(run, compute_ms)))
}

/// A cursor over record bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::{Inputs, Limits};
    use crate::policy::Policy;

    fn stored(payees: usize) -> StoredRun {
        let actors: Vec<String> = (0..payees).map(|i| format!("\"acct:{i:03}\"")).collect();
        let events: Vec<String> = (0..payees).map(|i| format!("[{i},{i},0,{}]", 1 + i % 5)).collect();
        let raw = format!(
            r#"{{"schema":"rewarder.inputs.v1","epoch":"e1","pool_minor":"1000","kinds":["k"],"actors":[{}],"events":[{}]}}"#,
            actors.join(","),
            events.join(",")
        );
        let inputs = Arc::new(Inputs::parse(raw.as_bytes(), &Limits::UNBOUNDED).unwrap());
        let policy =
            Policy::parse(br#"{"schema":"rewarder.policy.v1","policy_id":"p","weights":{"k":1}}"#).unwrap();
        StoredRun::new(Run::compute(&inputs, &policy, "t").unwrap(), 2.5)
    }

    #[test]
    fn a_record_rebuilds_the_same_run() {
        for n in [0, 1, 7] {
            let original = stored(n);
            let back = decode(&encode(&original)).unwrap();
            assert_eq!(back.run.manifest(), original.run.manifest());
            assert_eq!(back.run.digest_bytes(), original.run.digest_bytes());
            assert_eq!(back.compute_ms, 2.5);
            assert!(back.run.allocations().eq(original.run.allocations()), "{n} payees");
            if n > 0 {
                let actor = original.run.allocations().last().unwrap().actor.to_owned();
                assert_eq!(back.run.proof(&actor), original.run.proof(&actor), "proofs survive");
            }
        }
    }

    #[test]
    fn a_damaged_record_is_refused_never_half_read() {
        let record = encode(&stored(3));
        for cut in [0, 3, 10, record.len() - 1] {
            assert!(decode(&record[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = record.clone();
        longer.push(0);
        assert!(decode(&longer).unwrap_err().0.contains("trailing"));
        // One amount changed: the payees no longer hash to the manifest's root.
        let mut flipped = record.clone();
        let at = record.len() - 16 - 8;
        flipped[at] ^= 1;
        assert!(decode(&flipped).is_err());
        let mut foreign = record;
        foreign[..4].copy_from_slice(b"RWQ9");
        assert!(decode(&foreign).unwrap_err().0.contains("unknown layout"));
    }
}
