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
