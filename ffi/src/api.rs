//! The functions of the FFI surface (FFI.md "Functions"): each parses its arguments into the
//! core's types, calls the core, and converts the answer back. None blocks on anything but
//! the CPU, none keeps state between calls, and every one may run on any thread.

use std::sync::Arc;

use rewarder_core::result;
use rewarder_core::service::auth;
use rewarder_core::{
    Code, Comparison, Error, Inputs, Limits, Policy, PublicKey, Run, commit, compare, manifest, merkle, sign,
    verify,
};

use crate::error::RewarderError;
use crate::records::{self, CompareOutput, ComputeOutput, Manifest, ProofStep, Trust, Verification};

/// Computes the run of a sealed inputs document under a sealed policy for `tenant`, exactly
/// as a node would (CALCULUS.md): the same bytes give the same run id, allocations and
/// digest on every device. The result is not signed (signing keys stay on servers).
///
/// `inputs` and `policy` are the raw JSON documents, borrowed for the call (they cross the
/// boundary as one buffer, not byte by byte); `tenant` is 1–64 characters of
/// `[A-Za-z0-9._-]` (`default` for a node without authentication). Runs on the calling
/// thread, in time linear in the events (milliseconds for thousands of actors).
///
/// Errors: `Invalid` with the code of the refused document (`schema`, `invalid_amount`,
/// `duplicate_event`, … or `bad_request` for the tenant); `Internal` if an invariant failed.
#[uniffi::export]
pub fn compute(inputs: &[u8], policy: &[u8], tenant: String) -> Result<ComputeOutput, RewarderError> {
    let run = run(inputs, policy, &tenant)?;
    Ok(ComputeOutput::from(&run))
}

/// [`compute`], answered as JSON text instead of records: `{"manifest", "manifest_digest",
/// "allocations"}`, the members of a compute result body (API.md §1.2) that describe the
/// run, unsigned. For large epochs: one buffer crosses the boundary (a string's bytes are
/// handed over whole, where a byte vector would be written out byte by byte) instead of one
/// record per payee, and the app parses what it reads (or hands the text on).
///
/// Errors: as [`compute`].
#[uniffi::export]
pub fn compute_json(inputs: &[u8], policy: &[u8], tenant: String) -> Result<String, RewarderError> {
    let run = run(inputs, policy, &tenant)?;
    // The rendering writes JSON (UTF-8) only.
    String::from_utf8(result::render_unsigned(&run))
        .map_err(|_| Error::new(Code::Internal, "the result is not UTF-8").into())
}

/// The run of [`compute`] and [`compute_json`]: the tenant checked first, then the inputs
/// parsed, then the policy.
fn run(inputs: &[u8], policy: &[u8], tenant: &str) -> Result<Run, Error> {
    check_tenant(tenant)?;
    let inputs = Arc::new(Inputs::parse(inputs, &Limits::UNBOUNDED)?);
    let policy = Policy::parse(policy)?;
    Run::compute(&inputs, &policy, tenant)
}

/// Compares the run of a sealed inputs document under `policy_a` with its run under
/// `policy_b`, for `tenant` (API.md §1.3): each side's manifest, digest and figures (payees,
/// totals, Gini, top shares, actors capped and under the dust threshold), the `top` actors
/// whose payout changes most, and — when `actor` names one of the inputs — that actor's row,
/// so an app can show a participant its payout under a proposed policy. Each side is exactly
/// the run `compute` returns for the same documents and tenant. The documents are borrowed
/// for the call, as `compute`'s are.
///
/// Runs on the calling thread: two computes and a sort of the movers.
///
/// Errors: `Invalid` with the code of a refused document (the inputs first, then policy A,
/// then policy B), or `bad_request` for the tenant or a `top` above 10,000; `Internal` if an
/// invariant failed.
#[uniffi::export]
pub fn compare(
    inputs: &[u8],
    policy_a: &[u8],
    policy_b: &[u8],
    tenant: String,
    top: u32,
    actor: Option<String>,
) -> Result<CompareOutput, RewarderError> {
    check_tenant(&tenant)?;
    let top = usize::try_from(top).ok().filter(|t| *t <= compare::TOP_MAX).ok_or_else(|| {
        Error::field(Code::BadRequest, "top", format!("top must be at most {}", compare::TOP_MAX))
    })?;
    let inputs = Arc::new(Inputs::parse(inputs, &Limits::UNBOUNDED)?);
    let (policy_a, policy_b) = (Policy::parse(policy_a)?, Policy::parse(policy_b)?);
    let comparison = Comparison::compute(&inputs, &policy_a, &policy_b, &tenant)?;
    Ok(CompareOutput::new(&comparison, top, actor.as_deref()))
}

/// `bad_request` unless `tenant` is 1–64 characters of `[A-Za-z0-9._-]`.
fn check_tenant(tenant: &str) -> Result<(), Error> {
    if auth::valid_tenant(tenant) {
        return Ok(());
    }
    Err(Error::field(Code::BadRequest, "tenant", "tenant must be 1-64 characters of [A-Za-z0-9._-]"))
}

/// The content id of a sealed document, `"b3:" + hex(BLAKE3(bytes))`: what a node answers
/// as `inputs_cid` / `policy_hash` for the same bytes.
#[uniffi::export]
pub fn content_id(bytes: &[u8]) -> String {
    commit::content_id(bytes)
}

/// The digest of a manifest (CALCULUS.md §4), `"b3:…"`: what the signatures sign.
#[uniffi::export]
pub fn manifest_digest(manifest: Manifest) -> String {
    manifest::Manifest::from(manifest).digest()
}

/// Whether `proof` shows that the tree of `allocations_root` (`"b3:…"`) pays `amount_minor`
/// (decimal) to `actor`: the proof from `GET …/proof/{actor}`, folded from the leaf.
///
/// Answers false for a wrong proof and for arguments that cannot name one (a root or hash
/// that is not hex of 32 bytes, a side other than `L`/`R`, an amount that is not a canonical
/// decimal of at most 2^64−1); it never throws.
#[uniffi::export]
pub fn verify_allocation(
    allocations_root: String,
    actor: String,
    amount_minor: String,
    proof: Vec<ProofStep>,
) -> bool {
    let Some(root) = records::hash_from_b3(&allocations_root) else { return false };
    let Some(amount) = rewarder_core::parse_amount(&amount_minor) else { return false };
    let Some(steps) = proof.iter().map(ProofStep::to_core).collect::<Option<Vec<_>>>() else {
        return false;
    };
    merkle::verify(&root, &actor, amount, &steps)
}

/// Whether `signature` (hex) by `public_key` (hex) signs the 32 digest bytes of
/// `manifest_digest` (`"b3:…"`) with `algorithm` (`"ed25519"` or `"ml_dsa_65"`).
///
/// Answers false for a wrong signature and for arguments that cannot name one (bad hex, a
/// wrong length, an unknown algorithm); it never throws.
#[uniffi::export]
pub fn verify_signature(
    manifest_digest: String,
    algorithm: String,
    public_key: String,
    signature: String,
) -> bool {
    let Some(digest) = records::hash_from_b3(&manifest_digest) else { return false };
    sign::verify(&algorithm, &public_key, &digest, &signature).unwrap_or(false)
}

/// Checks a compute result body (API.md §1.2, as `POST …/compute` or
/// `GET /rewarder/epochs/{epoch}` answer it) against the keys of `trust`: the manifest digest,
/// every signature over it and whether its key is trusted, the allocations (when listed)
/// against their sum and Merkle root, and — with `inputs` and `policy`, the sealed documents
/// of the run — that they recompute to the same manifest for the manifest's tenant.
///
/// Tampering, a key outside `trust` and a recompute mismatch show as false flags (and in
/// `report_json`), never as an error. Runs on the calling thread; a recompute costs a compute.
///
/// Errors: `Invalid` with `malformed_json` (not JSON) or `schema` (not a compute result), or
/// `bad_request` for a trusted key that is not hex of an Ed25519 or ML-DSA-65 public key, or
/// for `inputs` without `policy` (or the reverse).
#[uniffi::export]
pub fn verify_result(
    result_json: String,
    trust: Trust,
    inputs: Option<Vec<u8>>,
    policy: Option<Vec<u8>>,
) -> Result<Verification, RewarderError> {
    let keys = match &trust {
        Trust::Keys { public_keys } => {
            public_keys.iter().map(|k| PublicKey::from_hex(k)).collect::<Result<Vec<_>, _>>()?
        }
        Trust::EmbeddedKeys => Vec::new(),
    };
    let trust = match trust {
        Trust::Keys { .. } => verify::Trust::Keys(&keys),
        Trust::EmbeddedKeys => verify::Trust::Embedded,
    };
    let documents = match (&inputs, &policy) {
        (Some(inputs), Some(policy)) => Some(verify::Documents { inputs, policy }),
        (None, None) => None,
        _ => return Err(Error::new(Code::BadRequest, "inputs and policy go together").into()),
    };
    let report = verify::verify(result_json.as_bytes(), trust, documents);
    Verification::from_report(&report).ok_or_else(|| {
        let refused = &report.checks[0];
        RewarderError::Invalid {
            code: refused.code.unwrap_or(Code::Schema.as_str()).to_owned(),
            detail: refused.detail.clone(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_tenant_is_invalid_before_any_parsing() {
        let e = compute(&[], &[], "has space".into()).unwrap_err();
        assert!(matches!(e, RewarderError::Invalid { ref code, .. } if code == "bad_request"), "{e}");
        let e = compute_json(&[], &[], "has space".into()).unwrap_err();
        assert!(matches!(e, RewarderError::Invalid { ref code, .. } if code == "bad_request"), "{e}");
    }

    #[test]
    fn compare_refuses_a_bad_tenant_or_top_before_any_parsing() {
        let e = compare(&[], &[], &[], "a b".into(), 1, None).unwrap_err();
        assert!(matches!(e, RewarderError::Invalid { ref code, .. } if code == "bad_request"), "{e}");
        let e = compare(&[], &[], &[], "default".into(), 10_001, None).unwrap_err();
        assert!(matches!(e, RewarderError::Invalid { ref code, .. } if code == "bad_request"), "{e}");
    }

    #[test]
    fn malformed_verify_arguments_answer_false() {
        assert!(!verify_signature("b3:00".into(), "ed25519".into(), "00".into(), "00".into()));
        assert!(!verify_signature(commit::b3_hex(&[0; 32]), "rsa".into(), "00".into(), "00".into()));
        assert!(!verify_allocation("nope".into(), "a".into(), "1".into(), Vec::new()));
    }

    #[test]
    fn verify_result_refuses_bad_arguments_before_the_body() {
        let bad_key = Trust::Keys { public_keys: vec!["zz".into()] };
        let e = verify_result("{}".into(), bad_key, None, None).unwrap_err();
        assert!(matches!(e, RewarderError::Invalid { ref code, .. } if code == "bad_request"), "{e}");
        let e = verify_result("{}".into(), Trust::EmbeddedKeys, Some(Vec::new()), None).unwrap_err();
        assert!(matches!(e, RewarderError::Invalid { ref code, .. } if code == "bad_request"), "{e}");
        let e = verify_result("not json".into(), Trust::EmbeddedKeys, None, None).unwrap_err();
        assert!(matches!(e, RewarderError::Invalid { ref code, .. } if code == "malformed_json"), "{e}");
    }
}
