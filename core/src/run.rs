//! One run: calculus, invariants, Merkle root, manifest and digest — everything a result
//! commits to, before any signature or ledger.

use std::sync::Arc;

use crate::calculus::{self, Bounds, Outcome, Payee};
use crate::commit;
use crate::error::{Code, Error};
use crate::inputs::Inputs;
use crate::manifest::{MANIFEST_SCHEMA, Manifest};
use crate::merkle::{self, ProofStep};
use crate::policy::Policy;
use crate::service::Overlap;

/// A computed, checked and committed run.
#[derive(Debug, Clone)]
pub struct Run {
    inputs: Arc<Inputs>,
    outcome: Outcome,
    manifest: Manifest,
    digest: [u8; 32],
}

/// One payee as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation<'a> {
    /// The actor id.
    pub actor: &'a str,
    /// Amount paid.
    pub amount: u64,
    /// The actor's score.
    pub score: u128,
}

/// A run committed to (root, manifest, digest) whose invariants are still to be checked.
///
/// The digest is final before the check, so a host may sign it beside the check and the rest
/// of its answer (`service::handlers::runs`): the signature of a slow post-quantum scheme then
/// has that much more work to hide behind. Only [`Committed::check`] gives the [`Run`] that
/// may be answered or stored; a failed check throws the signature away with the run.
#[derive(Debug)]
pub(crate) struct Committed(Run);

impl Committed {
    /// The manifest digest the run commits to.
    pub(crate) fn digest(&self) -> &[u8; 32] {
        &self.0.digest
    }

    /// The run, once its invariants hold; `Code::InvariantViolation` otherwise, and nothing of
    /// the run may leave.
    pub(crate) fn check(self) -> Result<Run, Error> {
        crate::invariants::check(&self.0.inputs, &self.0.outcome)?;
        Ok(self.0)
    }
}

/// A payee's Merkle proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The payee's position in payee order.
    pub index: usize,
    /// Amount paid.
    pub amount: u64,
    /// Bottom-up sibling hashes.
    pub steps: Vec<ProofStep>,
}

/// Fewest Merkle leaf blocks (64 bytes of `len ‖ id ‖ amount` each) worth splitting over two
/// threads: below it, handing half to another thread costs about what it saves.
const OVERLAP_LEAF_BLOCKS_MIN: usize = 4096;

/// The Merkle leaves of the payees, in payee order; in two halves on `overlap` (if any) when
/// there are enough blocks to hash.
fn leaves(inputs: &Inputs, payees: &[Payee], overlap: Option<&dyn Overlap>) -> Vec<[u8; 32]> {
    let pair = |p: &Payee| (inputs.actor(p.actor as usize), p.amount);
    let Some(overlap) = overlap else {
        return merkle::leaves(payees.iter().map(pair));
    };
    // A leaf input is 10 bytes plus the id: one block up to 54-byte ids, three at 128. The
    // mean id length of the document is enough to decide.
    let mean_id = inputs.actor_bytes.len() / inputs.actor_count().max(1);
    let blocks = payees.len() * (10 + mean_id).div_ceil(64);
    if blocks < OVERLAP_LEAF_BLOCKS_MIN {
        return merkle::leaves(payees.iter().map(pair));
    }
    let (first, second) = payees.split_at(payees.len() / 2);
    let (mut head, mut tail) = (Vec::new(), Vec::new());
    overlap.both(&mut || head = merkle::leaves(first.iter().map(pair)), &mut || {
        tail = merkle::leaves(second.iter().map(pair));
    });
    head.extend_from_slice(&tail);
    head
}

impl Run {
    /// Computes a run of `inputs` under `policy` for `tenant` (CALCULUS.md §2–§4).
    ///
    /// An invariant failure is `Code::InvariantViolation`: nothing of the run may leave.
    pub fn compute(inputs: &Arc<Inputs>, policy: &Policy, tenant: &str) -> Result<Run, Error> {
        Run::commit(inputs, policy, tenant, calculus::allocate(inputs, policy)?, None).check()
    }

    /// [`Run::compute`] up to its commitments, the invariants not yet checked
    /// ([`Committed::check`]), with the Merkle leaves of a large run hashed in two halves at
    /// once on `overlap` (the host's second thread, where it has one): the same run, sooner
    /// when there are many or long payee ids.
    pub(crate) fn commit_overlapped(
        inputs: &Arc<Inputs>,
        policy: &Policy,
        tenant: &str,
        overlap: &dyn Overlap,
    ) -> Result<Committed, Error> {
        Ok(Run::commit(inputs, policy, tenant, calculus::allocate(inputs, policy)?, Some(overlap)))
    }

    /// [`Run::compute`], and which actors the policy's limits bound in this very run (what a
    /// comparison reports, `crate::compare`). The run is the one `compute` makes.
    pub fn compute_with_bounds(
        inputs: &Arc<Inputs>,
        policy: &Policy,
        tenant: &str,
    ) -> Result<(Run, Bounds), Error> {
        let (outcome, bounds) = calculus::allocate_with_bounds(inputs, policy)?;
        Ok((Run::commit(inputs, policy, tenant, outcome, None).check()?, bounds))
    }

    /// Commits to an allocation: root, manifest, digest; the Merkle leaves hashed in two halves
    /// on `overlap`, when given and worth it. Its invariants are checked by [`Committed::check`].
    fn commit(
        inputs: &Arc<Inputs>,
        policy: &Policy,
        tenant: &str,
        outcome: Outcome,
        overlap: Option<&dyn Overlap>,
    ) -> Committed {
        let leaves = leaves(inputs, &outcome.payees, overlap);
        let root = merkle::root(&leaves);
        let manifest = Manifest {
            schema: MANIFEST_SCHEMA.to_owned(),
            tenant: tenant.to_owned(),
            epoch: inputs.epoch().to_owned(),
            run_id: commit::run_id(tenant, inputs.epoch(), inputs.cid(), policy.hash()),
            inputs_cid: inputs.cid().to_owned(),
            policy_id: policy.policy_id().to_owned(),
            policy_hash: policy.hash().to_owned(),
            pool_minor: outcome.pool_minor.to_string(),
            distributable_minor: outcome.distributable_minor.to_string(),
            payout_total_minor: outcome.payout_total_minor.to_string(),
            residual_minor: outcome.residual_minor.to_string(),
            payees: outcome.payees.len() as u64,
            allocations_root: commit::b3_hex(&root),
        };
        let digest = manifest.digest_bytes();
        Committed(Run { inputs: Arc::clone(inputs), outcome, manifest, digest })
    }

    /// A run rebuilt from what a durable queue record keeps of it (`service::durable`): its
    /// manifest and its payees `(actor, amount, score)` in payee order. The inputs document may
    /// be long gone, so the rebuilt run's [`Run::inputs`] hold only the payees' ids (no kinds,
    /// usage or events) — all that answers, proofs and intents read.
    ///
    /// The record is checked against the manifest it carries, so a damaged record is refused
    /// rather than answered: ids strictly ascending and well formed, one payee per manifest
    /// payee, amounts summing to `payout_total_minor`, and the Merkle root of the payees equal
    /// to `allocations_root`.
    pub(crate) fn restore(manifest: Manifest, payees: &[(&str, u64, u128)]) -> Result<Run, String> {
        let number = |field: &str, value: &str| {
            value.parse::<u64>().map_err(|_| format!("manifest {field} {value:?} is not a whole number"))
        };
        if manifest.schema != MANIFEST_SCHEMA {
            return Err(format!("manifest schema {:?}", manifest.schema));
        }
        if payees.len() as u64 != manifest.payees {
            return Err(format!("{} payees for a manifest of {}", payees.len(), manifest.payees));
        }
        let mut actor_bytes = String::with_capacity(payees.iter().map(|p| p.0.len()).sum());
        let mut actor_ends = Vec::with_capacity(payees.len());
        let mut total: u64 = 0;
        for (i, (actor, amount, _)) in payees.iter().enumerate() {
            let well_formed =
                (1..=128).contains(&actor.len()) && actor.bytes().all(|b| (0x21..=0x7e).contains(&b));
            if !well_formed || (i > 0 && payees[i - 1].0 >= *actor) {
                return Err(format!("payee {i} is not a valid id in ascending order"));
            }
            actor_bytes.push_str(actor);
            actor_ends.push(u32::try_from(actor_bytes.len()).map_err(|_| "payee ids too long".to_owned())?);
            total = total.checked_add(*amount).ok_or("the amounts overflow")?;
        }
        if total != number("payout_total_minor", &manifest.payout_total_minor)? {
            return Err("the amounts do not sum to payout_total_minor".to_owned());
        }
        let root = merkle::root(&merkle::leaves(payees.iter().map(|(a, amount, _)| (*a, *amount))));
        if commit::b3_hex(&root) != manifest.allocations_root {
            return Err("the payees do not hash to allocations_root".to_owned());
        }
        let inputs = Inputs {
            cid: manifest.inputs_cid.clone(),
            epoch: manifest.epoch.clone(),
            pool_minor: number("pool_minor", &manifest.pool_minor)?,
            kinds: Vec::new(),
            actor_bytes,
            actor_ends,
            usage: Vec::new(),
            usage_ends: vec![0; payees.len()],
            event_count: 0,
        };
        let outcome = Outcome {
            pool_minor: inputs.pool_minor,
            distributable_minor: number("distributable_minor", &manifest.distributable_minor)?,
            payout_total_minor: total,
            residual_minor: number("residual_minor", &manifest.residual_minor)?,
            ceiling_minor: None,
            min_payout_minor: 0,
            payees: (0..payees.len() as u32)
                .map(|i| Payee { actor: i, amount: payees[i as usize].1, score: payees[i as usize].2 })
                .collect(),
        };
        let digest = manifest.digest_bytes();
        Ok(Run { inputs: Arc::new(inputs), outcome, manifest, digest })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The manifest digest bytes (what is signed).
    pub fn digest_bytes(&self) -> &[u8; 32] {
        &self.digest
    }

    /// `"b3:" + hex` of the manifest digest.
    pub fn manifest_digest(&self) -> String {
        commit::b3_hex(&self.digest)
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.manifest.run_id
    }

    /// The numbers behind the manifest.
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// The inputs this run was computed from.
    pub fn inputs(&self) -> &Arc<Inputs> {
        &self.inputs
    }

    /// Payees ascending by actor id.
    pub fn allocations(&self) -> impl ExactSizeIterator<Item = Allocation<'_>> + '_ {
        self.outcome.payees.iter().map(|p: &Payee| Allocation {
            actor: self.inputs.actor(p.actor as usize),
            amount: p.amount,
            score: p.score,
        })
    }

    /// The Merkle proof of `actor`'s payout; `UnknownActor` when it is not a payee.
    pub fn proof(&self, actor: &str) -> Result<Proof, Error> {
        let unknown = || Error::new(Code::UnknownActor, "no payee with that actor id in this run");
        let a = self.inputs.actor_index(actor).ok_or_else(unknown)? as u32;
        let index = self.outcome.payees.binary_search_by_key(&a, |p| p.actor).map_err(|_| unknown())?;
        let leaves = merkle::leaves(self.allocations().map(|x| (x.actor, x.amount)));
        let steps = merkle::proof(&leaves, index).ok_or_else(unknown)?;
        Ok(Proof { index, amount: self.outcome.payees[index].amount, steps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::Limits;
    use crate::service::Sequential;

    #[test]
    fn leaves_hashed_in_two_halves_make_the_same_run() {
        // Enough leaf blocks to split: 3,000 payees with 100-byte ids (two blocks each). The
        // halves run one after the other here (core has no threads); the nodes' hosts run them
        // on two (micronode's `SideThread`, `core/tests/service.rs`'s `CountingThreads`).
        let actors: Vec<String> = (0..3000).map(|i| format!("{i:0>100}")).collect();
        let events: Vec<String> = (0..3000).map(|i| format!("[{i},{i},0,{}]", 1 + i % 97)).collect();
        let inputs = format!(
            r#"{{"schema":"rewarder.inputs.v1","epoch":"e","pool_minor":"1000000007","kinds":["k"],"actors":{},"events":[{}]}}"#,
            serde_json::to_string(&actors).unwrap(),
            events.join(",")
        );
        let inputs = Arc::new(Inputs::parse(inputs.as_bytes(), &Limits::UNBOUNDED).unwrap());
        let policy =
            Policy::parse(br#"{"schema":"rewarder.policy.v1","policy_id":"p","weights":{"k":1}}"#).unwrap();
        let alone = Run::compute(&inputs, &policy, "t").unwrap();
        let split = Run::commit_overlapped(&inputs, &policy, "t", &Sequential).unwrap().check().unwrap();
        assert_eq!(alone.outcome().payees.len(), 3000);
        assert_eq!(split.manifest(), alone.manifest());
        assert_eq!(split.digest_bytes(), alone.digest_bytes());
        let payees = &alone.outcome().payees;
        assert_eq!(leaves(&inputs, payees, Some(&Sequential)), leaves(&inputs, payees, None));
    }
}
