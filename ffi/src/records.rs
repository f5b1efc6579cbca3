//! The records of the FFI surface (FFI.md "Records") and their conversions from and to the
//! core's types. Amounts stay decimal strings, hashes stay the strings of the wire.

use rewarder_core::compare::{Row, Side, Summary};
use rewarder_core::{Comparison, Run, manifest, merkle, run, verify};

/// The run manifest of CALCULUS.md §4: what the digest covers and the signatures sign.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Manifest {
    /// Always `"rewarder.manifest.v1"`.
    pub schema: String,
    /// The tenant the run was computed for (`default` without authentication).
    pub tenant: String,
    /// The epoch label.
    pub epoch: String,
    /// The run id (`"b3:…"`).
    pub run_id: String,
    /// Content id of the inputs document (`"b3:…"`).
    pub inputs_cid: String,
    /// The policy's id.
    pub policy_id: String,
    /// Content hash of the policy document (`"b3:…"`).
    pub policy_hash: String,
    /// The pool, decimal minor units.
    pub pool_minor: String,
    /// What the policy lets out of the pool, decimal.
    pub distributable_minor: String,
    /// The sum of every payout, decimal.
    pub payout_total_minor: String,
    /// Pool minus payouts, decimal.
    pub residual_minor: String,
    /// Number of payees.
    pub payees: u64,
    /// Root of the allocations Merkle tree (`"b3:…"`).
    pub allocations_root: String,
}

/// One payee of a run.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Allocation {
    /// The actor id.
    pub actor: String,
    /// The payout, decimal minor units.
    pub amount_minor: String,
    /// The actor's score, decimal.
    pub score: String,
}

/// What `compute` returns: the manifest, its digest and the payees ascending by actor id.
/// Unsigned: signing keys stay on servers.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ComputeOutput {
    /// The manifest.
    pub manifest: Manifest,
    /// `"b3:…"` digest of the manifest.
    pub manifest_digest: String,
    /// The payees, ascending by actor id.
    pub allocations: Vec<Allocation>,
}

/// The figures of one side of a comparison, over every actor of the inputs (API.md §1.3).
/// Ratios are decimal strings with six decimals, rounded half to even (`"0.296025"`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CompareSummary {
    /// Actors paid.
    pub payees: u64,
    /// The sum of every payout, decimal.
    pub payout_total_minor: String,
    /// Pool minus payouts, decimal.
    pub residual_minor: String,
    /// The Gini coefficient of the payouts, zeros included.
    pub gini: String,
    /// The share of the ⌈n/100⌉ largest payouts in the total.
    pub top1_share: String,
    /// The share of the ⌈n/10⌉ largest payouts in the total.
    pub top10_share: String,
    /// Actors the per-actor ceiling bound.
    pub capped: u64,
    /// Actors whose score a kind cap lowered.
    pub kind_capped: u64,
    /// Actors whose allocation was under the dust threshold (not paid).
    pub dust: u64,
}

/// One side of a comparison: the run's manifest and digest (what a node signs for the same
/// documents and tenant), and its figures.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CompareSide {
    /// The manifest of the run.
    pub manifest: Manifest,
    /// `"b3:…"` digest of the manifest.
    pub manifest_digest: String,
    /// The figures.
    pub summary: CompareSummary,
}

/// One actor under both policies.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PayoutChange {
    /// The actor id.
    pub actor: String,
    /// Its payout under policy A, decimal.
    pub amount_a_minor: String,
    /// Its payout under policy B, decimal.
    pub amount_b_minor: String,
    /// B − A, decimal, with a leading `-` when B pays less.
    pub delta_minor: String,
    /// The per-actor ceiling bound it under A.
    pub capped_a: bool,
    /// The per-actor ceiling bound it under B.
    pub capped_b: bool,
    /// Its allocation under A was dust (not paid).
    pub dust_a: bool,
    /// Its allocation under B was dust (not paid).
    pub dust_b: bool,
}

/// What `compare` returns: both sides, the movers, and the row of the actor asked for.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CompareOutput {
    /// Actors of the inputs, paid or not.
    pub population: u64,
    /// The run under policy A.
    pub a: CompareSide,
    /// The run under policy B.
    pub b: CompareSide,
    /// The actors whose payout changes, at most `top`, largest change first (ties: actor id
    /// ascending).
    pub movers: Vec<PayoutChange>,
    /// The row of the `actor` asked for, mover or not; none when not asked or not in the inputs.
    pub actor: Option<PayoutChange>,
}

/// One step of a Merkle proof, bottom-up: the sibling's hash and the side it sits on.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ProofStep {
    /// `"L"` or `"R"`.
    pub side: String,
    /// Lowercase hex of the sibling's 32-byte hash (no `b3:` prefix, as in API.md proofs).
    pub hash: String,
}

/// Whom `verify_result` trusts.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum Trust {
    /// Only these public keys (hex: 64 digits for Ed25519, 3904 for ML-DSA-65), for instance
    /// those `GET /rewarder/keys` lists, fetched over a channel you trust. An empty list trusts
    /// nobody: every result fails.
    Keys {
        /// The trusted public keys, hex.
        public_keys: Vec<String>,
    },
    /// The keys the result itself carries: proves integrity only (the result is as the holder
    /// of its key signed it), not who signed.
    EmbeddedKeys,
}

/// What `verify_result` found in a compute result body (API.md §1.2).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Verification {
    /// Every check held: the result may be relied on.
    pub ok: bool,
    /// The body's `manifest_digest` equals the digest recomputed from its manifest.
    pub digest_ok: bool,
    /// Every signature present verifies over the recomputed digest with the key beside it.
    pub signatures_ok: bool,
    /// Every signature's key is trusted.
    pub keys_trusted: bool,
    /// The key ids of the signatures' keys that are not trusted.
    pub untrusted_key_ids: Vec<String>,
    /// The body carries an ML-DSA-65 signature too (whether it verifies is `signatures_ok`).
    pub pq_signed: bool,
    /// The allocations are as many as the payees, sum to `payout_total_minor` and their
    /// recomputed Merkle root equals `allocations_root`; true when the body lists none
    /// (`?allocations=false`).
    pub allocations_ok: bool,
    /// The documents given recompute to the same manifest; none when none were given.
    pub recompute_ok: Option<bool>,
    /// The manifest of the body.
    pub manifest: Manifest,
    /// The digest recomputed from the manifest (not the body's claim).
    pub manifest_digest: String,
    /// The whole report as JSON (FFI.md): each check, its status and what it found.
    pub report_json: String,
}

impl Verification {
    /// The record of a report; `None` when the bytes were not a result (no manifest).
    pub(crate) fn from_report(report: &verify::Report) -> Option<Verification> {
        let recompute = report.check("recompute").filter(|c| c.status != verify::Status::Skipped);
        Some(Verification {
            ok: report.ok,
            digest_ok: report.passed("digest"),
            signatures_ok: report.none_failed("signature."),
            keys_trusted: report.none_failed("key."),
            untrusted_key_ids: report.untrusted_key_ids(),
            pq_signed: report.check("signature.ml_dsa_65").is_some(),
            allocations_ok: report.none_failed("allocations"),
            recompute_ok: recompute.map(|c| c.status == verify::Status::Pass),
            manifest: Manifest::from(report.manifest.as_ref()?),
            manifest_digest: report.manifest_digest.clone()?,
            report_json: report.to_json(),
        })
    }
}

/// How to start an [`EmbeddedNode`](crate::EmbeddedNode); everything else takes the
/// micronode's defaults.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct EmbeddedConfig {
    /// The loopback port to bind; 0 picks any free port.
    pub port: u16,
    /// Sign every result with ML-DSA-65 as well as Ed25519.
    pub require_pq: bool,
    /// `AUTH_KEYS` (`kid:hexkey,…`, keys of at least 32 bytes) when the app mints its own
    /// tokens; none = the node makes a key and one token at each start (`EmbeddedNode.token`).
    pub auth_keys: Option<String>,
    /// Serve without authentication to every process of the device that reaches loopback: an
    /// explicit opt-out, off by default.
    #[uniffi(default = false)]
    pub open: bool,
}

impl From<&manifest::Manifest> for Manifest {
    fn from(m: &manifest::Manifest) -> Self {
        // Destructured so that a field added to the core's manifest fails to compile here.
        let manifest::Manifest {
            schema,
            tenant,
            epoch,
            run_id,
            inputs_cid,
            policy_id,
            policy_hash,
            pool_minor,
            distributable_minor,
            payout_total_minor,
            residual_minor,
            payees,
            allocations_root,
        } = m.clone();
        Manifest {
            schema,
            tenant,
            epoch,
            run_id,
            inputs_cid,
            policy_id,
            policy_hash,
            pool_minor,
            distributable_minor,
            payout_total_minor,
            residual_minor,
            payees,
            allocations_root,
        }
    }
}

impl From<Manifest> for manifest::Manifest {
    fn from(m: Manifest) -> Self {
        let Manifest {
            schema,
            tenant,
            epoch,
            run_id,
            inputs_cid,
            policy_id,
            policy_hash,
            pool_minor,
            distributable_minor,
            payout_total_minor,
            residual_minor,
            payees,
            allocations_root,
        } = m;
        manifest::Manifest {
            schema,
            tenant,
            epoch,
            run_id,
            inputs_cid,
            policy_id,
            policy_hash,
            pool_minor,
            distributable_minor,
            payout_total_minor,
            residual_minor,
            payees,
            allocations_root,
        }
    }
}

impl From<run::Allocation<'_>> for Allocation {
    fn from(a: run::Allocation<'_>) -> Self {
        Allocation {
            actor: a.actor.to_owned(),
            amount_minor: a.amount.to_string(),
            score: a.score.to_string(),
        }
    }
}

impl From<&Run> for ComputeOutput {
    fn from(run: &Run) -> Self {
        ComputeOutput {
            manifest: run.manifest().into(),
            manifest_digest: run.manifest_digest(),
            allocations: run.allocations().map(Allocation::from).collect(),
        }
    }
}

impl From<&Summary> for CompareSummary {
    fn from(s: &Summary) -> Self {
        CompareSummary {
            payees: s.payees,
            payout_total_minor: s.payout_total_minor.to_string(),
            residual_minor: s.residual_minor.to_string(),
            gini: s.gini.to_string(),
            top1_share: s.top1_share.to_string(),
            top10_share: s.top10_share.to_string(),
            capped: s.capped,
            kind_capped: s.kind_capped,
            dust: s.dust,
        }
    }
}

impl From<&Side> for CompareSide {
    fn from(side: &Side) -> Self {
        CompareSide {
            manifest: side.run().manifest().into(),
            manifest_digest: side.run().manifest_digest(),
            summary: side.summary().into(),
        }
    }
}

impl From<&Row<'_>> for PayoutChange {
    fn from(r: &Row<'_>) -> Self {
        PayoutChange {
            actor: r.actor.to_owned(),
            amount_a_minor: r.amount_a.to_string(),
            amount_b_minor: r.amount_b.to_string(),
            delta_minor: r.delta().to_string(),
            capped_a: r.capped_a,
            capped_b: r.capped_b,
            dust_a: r.dust_a,
            dust_b: r.dust_b,
        }
    }
}

impl CompareOutput {
    /// The output of `comparison`: at most `top` movers, and `actor`'s row when asked.
    pub(crate) fn new(comparison: &Comparison, top: usize, actor: Option<&str>) -> Self {
        CompareOutput {
            population: comparison.population() as u64,
            a: comparison.a().into(),
            b: comparison.b().into(),
            movers: comparison.movers(top).iter().map(PayoutChange::from).collect(),
            actor: actor.and_then(|a| comparison.row(a)).as_ref().map(PayoutChange::from),
        }
    }
}

impl From<&merkle::ProofStep> for ProofStep {
    fn from(s: &merkle::ProofStep) -> Self {
        ProofStep { side: s.side().to_owned(), hash: hex::encode(s.hash) }
    }
}

impl ProofStep {
    /// The core's step; `None` when the side is not `L`/`R` or the hash not 64 hex digits.
    pub(crate) fn to_core(&self) -> Option<merkle::ProofStep> {
        let left = match self.side.as_str() {
            "L" => true,
            "R" => false,
            _ => return None,
        };
        Some(merkle::ProofStep { left, hash: hash_from_hex(&self.hash)? })
    }
}

#[cfg(feature = "embedded")]
impl From<EmbeddedConfig> for rewarder_micronode::embedded::AppNodeOptions {
    fn from(c: EmbeddedConfig) -> Self {
        rewarder_micronode::embedded::AppNodeOptions {
            port: c.port,
            require_pq: c.require_pq,
            auth_keys: c.auth_keys,
            open: c.open,
        }
    }
}

/// 32 bytes from 64 hex digits.
pub(crate) fn hash_from_hex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// 32 bytes from `"b3:"` + 64 hex digits (a digest, a root).
pub(crate) fn hash_from_b3(text: &str) -> Option<[u8; 32]> {
    hash_from_hex(text.strip_prefix("b3:")?)
}

#[cfg(test)]
mod tests {
    use rewarder_core::commit;

    use super::*;

    #[test]
    fn proof_steps_round_trip_and_refuse_bad_sides_or_hex() {
        let core = merkle::ProofStep { left: true, hash: [0xab; 32] };
        let step = ProofStep::from(&core);
        assert_eq!((step.side.as_str(), step.hash.len()), ("L", 64));
        assert_eq!(step.to_core(), Some(core));
        assert_eq!(ProofStep { side: "X".into(), ..step.clone() }.to_core(), None);
        assert_eq!(ProofStep { hash: "zz".into(), ..step }.to_core(), None);
    }

    #[test]
    fn b3_strings_need_their_prefix_and_64_hex_digits() {
        let b3 = commit::b3_hex(&[7; 32]);
        assert_eq!(hash_from_b3(&b3), Some([7; 32]));
        assert_eq!(hash_from_b3(&b3[3..]), None);
        assert_eq!(hash_from_b3("b3:07"), None);
    }
}
