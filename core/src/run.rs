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

impl Run {
    /// Computes a run of `inputs` under `policy` for `tenant` (CALCULUS.md §2–§4).
    ///
    /// An invariant failure is `Code::InvariantViolation`: nothing of the run may leave.
    pub fn compute(inputs: &Arc<Inputs>, policy: &Policy, tenant: &str) -> Result<Run, Error> {
        Run::commit(inputs, policy, tenant, calculus::allocate(inputs, policy)?)
    }

    /// [`Run::compute`], and which actors the policy's limits bound in this very run (what a
    /// comparison reports, `crate::compare`). The run is the one `compute` makes.
    pub fn compute_with_bounds(
        inputs: &Arc<Inputs>,
        policy: &Policy,
        tenant: &str,
    ) -> Result<(Run, Bounds), Error> {
        let (outcome, bounds) = calculus::allocate_with_bounds(inputs, policy)?;
        Ok((Run::commit(inputs, policy, tenant, outcome)?, bounds))
    }

    /// Checks the invariants of an allocation, then commits to it: root, manifest, digest.
    fn commit(inputs: &Arc<Inputs>, policy: &Policy, tenant: &str, outcome: Outcome) -> Result<Run, Error> {
        crate::invariants::check(inputs, &outcome)?;
        let leaves =
            merkle::leaves(outcome.payees.iter().map(|p| (inputs.actor(p.actor as usize), p.amount)));
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
        Ok(Run { inputs: Arc::clone(inputs), outcome, manifest, digest })
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
