//! Verification of a compute result (API.md §1.2) by someone who holds the result, the public
//! keys they trust and, optionally, the sealed documents of the run: the manifest digest, each
//! signature and whether its key is trusted, the allocations against their Merkle root and sum,
//! and a recompute of the run (CALCULUS.md §4). The FFI's `verify_result`, the micronode's
//! `verify` command and the `verify` fuzz target all call [`verify`]; none checks on its own.
//!
//! It never fails and never panics: whatever the bytes, it answers a [`Report`] listing each
//! check with its outcome, and for a key outside the trusted set, which key. It does not fetch
//! keys: whom to trust is the caller's decision ([`Trust`]).

use std::sync::Arc;

use serde::Serialize;

use crate::commit;
use crate::error::{Code, Error};
use crate::inputs::{Inputs, Limits};
use crate::manifest::{MANIFEST_SCHEMA, Manifest};
use crate::merkle;
use crate::policy::Policy;
use crate::result::{AllocationJson, ResultJson, SignatureJson};
use crate::run::Run;
use crate::service::auth;
use crate::sign::{self, PublicKey};

/// Whom a verifier trusts.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// Only these keys: a signature by any other key fails its `key.*` check. An empty set
    /// trusts nobody, so every result fails.
    Keys(&'a [PublicKey]),
    /// The keys the result carries. This proves integrity only — the result is as the holder of
    /// its key signed it — not who that holder is.
    Embedded,
}

/// The sealed documents of a run, as uploaded, for a recompute.
#[derive(Debug, Clone, Copy)]
pub struct Documents<'a> {
    /// The inputs document (`rewarder.inputs.v1`).
    pub inputs: &'a [u8],
    /// The policy document (`rewarder.policy.v1`).
    pub policy: &'a [u8],
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It holds.
    Pass,
    /// It does not: the result must not be relied on.
    Fail,
    /// Nothing to check (no allocations listed, no documents given).
    Skipped,
}

/// One check of a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked: `result`, `digest`, `signature.ed25519`, `key.ed25519`,
    /// `signature.ml_dsa_65`, `key.ml_dsa_65`, `allocations` or `recompute`.
    pub check: &'static str,
    /// Its outcome.
    pub status: Status,
    /// What was found, in words (not a contract).
    pub detail: String,
    /// The API code of what was refused: the result (`malformed_json`, `schema`), an amount
    /// (`invalid_amount`) or a document of the recompute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    /// The key id of the key a `signature.*` or `key.*` check is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// That key, lowercase hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// What the result should hold: the recomputed digest (`digest`), the manifest's root
    /// (`allocations`), the recomputed run's digest (`recompute`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What it holds instead (or as well, when the check passed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    /// The manifest members a recompute gave otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<&'static str>,
}

/// What [`verify`] found: `ok` when no check failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// No check failed.
    pub ok: bool,
    /// The result's manifest, when the bytes were a result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
    /// The digest recomputed from that manifest (not the result's claim).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    /// Every check, in the order they were made.
    pub checks: Vec<Check>,
}

/// Check names.
const RESULT: &str = "result";
const DIGEST: &str = "digest";
const ALLOCATIONS: &str = "allocations";
const RECOMPUTE: &str = "recompute";

impl Report {
    /// The check named `name`, if it was made.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.check == name)
    }

    /// Whether the check named `name` was made and passed.
    pub fn passed(&self, name: &str) -> bool {
        self.check(name).is_some_and(|c| c.status == Status::Pass)
    }

    /// Whether no check whose name starts with `prefix` failed.
    pub fn none_failed(&self, prefix: &str) -> bool {
        !self.checks.iter().any(|c| c.check.starts_with(prefix) && c.status == Status::Fail)
    }

    /// The key ids of the signatures by keys outside the trusted set.
    pub fn untrusted_key_ids(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| c.check.starts_with("key.") && c.status == Status::Fail)
            .filter_map(|c| c.key_id.clone())
            .collect()
    }

    /// The report as compact JSON.
    pub fn to_json(&self) -> String {
        // Strings, booleans and a manifest of strings: serializing into memory cannot fail.
        serde_json::to_string(self).expect("serializing a report into memory")
    }
}

impl Check {
    fn new(check: &'static str, status: Status, detail: impl Into<String>) -> Check {
        Check {
            check,
            status,
            detail: detail.into(),
            code: None,
            key_id: None,
            public_key: None,
            expected: None,
            found: None,
            fields: Vec::new(),
        }
    }

    fn outcome(check: &'static str, pass: bool, detail: impl Into<String>) -> Check {
        Check::new(check, if pass { Status::Pass } else { Status::Fail }, detail)
    }

    /// A failed check about something refused; `what` (unless empty) prefixes the message.
    fn refused(check: &'static str, what: &str, e: &Error) -> Check {
        let detail =
            if what.is_empty() { e.message().to_owned() } else { format!("{what}: {}", e.message()) };
        Check { code: Some(e.code().as_str()), ..Check::new(check, Status::Fail, detail) }
    }

    fn about(self, key: &PublicKey) -> Check {
        Check { key_id: Some(key.key_id()), public_key: Some(key.hex()), ..self }
    }

    fn comparing(self, expected: String, found: String) -> Check {
        Check { expected: Some(expected), found: Some(found), ..self }
    }
}

/// Verifies the bytes of a compute result (API.md §1.2) against the keys of `trust`, and, with
/// `documents`, against a recompute of the run for the manifest's tenant.
///
/// Checks, in order: `result` (the bytes are such a body, with the manifest schema), `digest`
/// (`manifest_digest` is the digest of the manifest), for each signature present
/// `signature.<algorithm>` (it verifies over the recomputed digest with the key beside it, and
/// its `key_id`, when given, names that key) and `key.<algorithm>` (the key is trusted), then
/// `allocations` (when listed: as many as `payees`, summing to `payout_total_minor`, with the
/// manifest's Merkle root) and `recompute` (with documents: the same manifest).
pub fn verify(result: &[u8], trust: Trust<'_>, documents: Option<Documents<'_>>) -> Report {
    let body = match parse(result) {
        Ok(body) => body,
        Err(e) => {
            return Report {
                ok: false,
                manifest: None,
                manifest_digest: None,
                checks: vec![Check::refused(RESULT, "", &e)],
            };
        }
    };
    let digest = body.manifest.digest_bytes();
    let digest_hex = commit::b3_hex(&digest);
    let mut checks = vec![
        Check::new(RESULT, Status::Pass, "a compute result"),
        Check::outcome(
            DIGEST,
            digest_hex == body.manifest_digest,
            if digest_hex == body.manifest_digest {
                "manifest_digest is the digest of the manifest"
            } else {
                "manifest_digest is not the digest of the manifest"
            },
        )
        .comparing(digest_hex.clone(), body.manifest_digest.clone()),
    ];
    let signatures = [
        (sign::ED25519, Some(&body.signatures.ed25519)),
        (sign::ML_DSA_65, body.signatures.ml_dsa_65.as_ref()),
    ];
    for (algorithm, signature) in signatures {
        if let Some(signature) = signature {
            checks.extend(signature_checks(algorithm, signature, &digest, trust));
        }
    }
    checks.push(allocations_check(&body.manifest, body.allocations.as_deref()));
    checks.push(recompute_check(&body.manifest, &digest_hex, documents));
    Report {
        ok: checks.iter().all(|c| c.status != Status::Fail),
        manifest: Some(body.manifest),
        manifest_digest: Some(digest_hex),
        checks,
    }
}

/// The body as a result: `malformed_json` when not JSON, `schema` when not a result.
fn parse(result: &[u8]) -> Result<ResultJson, Error> {
    let body: ResultJson = serde_json::from_slice(result).map_err(|e| {
        let (code, what) = match e.classify() {
            serde_json::error::Category::Data => (Code::Schema, "not a compute result"),
            _ => (Code::MalformedJson, "not JSON"),
        };
        Error::new(code, format!("the body is {what} (line {}, column {})", e.line(), e.column()))
    })?;
    if body.manifest.schema != MANIFEST_SCHEMA {
        return Err(Error::field(
            Code::Schema,
            "schema",
            format!("the manifest's schema is not {MANIFEST_SCHEMA}"),
        ));
    }
    Ok(body)
}

/// `signature.<algorithm>` and `key.<algorithm>` of one signature of the result.
fn signature_checks(
    algorithm: &'static str,
    signature: &SignatureJson,
    digest: &[u8; 32],
    trust: Trust<'_>,
) -> [Check; 2] {
    let (signature_name, key_name) = match algorithm {
        sign::ED25519 => ("signature.ed25519", "key.ed25519"),
        _ => ("signature.ml_dsa_65", "key.ml_dsa_65"),
    };
    let key = match PublicKey::from_hex(&signature.public_key) {
        Ok(key) if key.algorithm() == algorithm => key,
        _ => {
            let detail = format!("public_key is not hex of an {algorithm} public key");
            return [
                Check::new(signature_name, Status::Fail, &detail),
                Check::new(key_name, Status::Fail, detail),
            ];
        }
    };
    let signature_check = match sign::verify(algorithm, &signature.public_key, digest, &signature.signature) {
        Err(e) => Check::new(signature_name, Status::Fail, e.message()),
        Ok(false) => Check::new(
            signature_name,
            Status::Fail,
            "the signature does not verify over the manifest's digest",
        ),
        Ok(true) => match &signature.key_id {
            Some(claimed) if *claimed != key.key_id() => Check::new(
                signature_name,
                Status::Fail,
                format!("key_id {claimed:?} does not name the public key beside it"),
            ),
            _ => {
                Check::new(signature_name, Status::Pass, "the signature verifies over the manifest's digest")
            }
        },
    };
    let key_check = match trust {
        Trust::Embedded => Check::new(
            key_name,
            Status::Pass,
            "trusted because the result carries it: this proves integrity only, not who signed",
        ),
        Trust::Keys([]) => Check::new(
            key_name,
            Status::Fail,
            "no key is trusted: give the public keys you trust (or trust the embedded keys, for integrity only)",
        ),
        Trust::Keys(trusted) if trusted.contains(&key) => {
            Check::new(key_name, Status::Pass, "the key is among the trusted keys")
        }
        Trust::Keys(trusted) => Check::new(
            key_name,
            Status::Fail,
            format!("the key {} is not among the {} trusted keys", key.key_id(), trusted.len()),
        ),
    };
    [signature_check.about(&key), key_check.about(&key)]
}

/// `allocations`: skipped when the result lists none.
fn allocations_check(manifest: &Manifest, list: Option<&[AllocationJson]>) -> Check {
    let Some(list) = list else {
        return Check::new(ALLOCATIONS, Status::Skipped, "the result lists no allocations");
    };
    let mut pairs = Vec::with_capacity(list.len());
    let mut total: u128 = 0;
    for (i, a) in list.iter().enumerate() {
        let Some(amount) = crate::parse_amount(&a.amount_minor) else {
            let e =
                Error::at(Code::InvalidAmount, "allocations", i, "amount_minor is not a canonical decimal");
            return Check::refused(ALLOCATIONS, &format!("allocation {i}"), &e);
        };
        total += u128::from(amount);
        pairs.push((a.actor.as_str(), amount));
    }
    let root = commit::b3_hex(&merkle::root(&merkle::leaves(pairs)));
    let mut problems = Vec::new();
    if list.len() as u64 != manifest.payees {
        problems.push(format!("{} allocations are listed for {} payees", list.len(), manifest.payees));
    }
    let total = total.to_string();
    if total != manifest.payout_total_minor {
        problems
            .push(format!("the amounts sum to {total}, the manifest pays {}", manifest.payout_total_minor));
    }
    if root != manifest.allocations_root {
        problems.push("their Merkle root is not the manifest's allocations_root".to_owned());
    }
    let detail = if problems.is_empty() {
        "the allocations sum to the payout total and hash to the allocations root".to_owned()
    } else {
        problems.join("; ")
    };
    Check::outcome(ALLOCATIONS, problems.is_empty(), detail)
        .comparing(manifest.allocations_root.clone(), root)
}

/// `recompute`: skipped without documents.
fn recompute_check(manifest: &Manifest, digest_hex: &str, documents: Option<Documents<'_>>) -> Check {
    let Some(documents) = documents else {
        return Check::new(RECOMPUTE, Status::Skipped, "no inputs and policy were given");
    };
    if !auth::valid_tenant(&manifest.tenant) {
        return Check::new(RECOMPUTE, Status::Fail, "the manifest's tenant is not a valid tenant");
    }
    let inputs = match Inputs::parse(documents.inputs, &Limits::UNBOUNDED) {
        Ok(inputs) => Arc::new(inputs),
        Err(e) => return Check::refused(RECOMPUTE, "the inputs were refused", &e),
    };
    let policy = match Policy::parse(documents.policy) {
        Ok(policy) => policy,
        Err(e) => return Check::refused(RECOMPUTE, "the policy was refused", &e),
    };
    let run = match Run::compute(&inputs, &policy, &manifest.tenant) {
        Ok(run) => run,
        Err(e) => return Check::refused(RECOMPUTE, "the run failed", &e),
    };
    let ours = run.manifest();
    let fields: Vec<&'static str> = ours
        .fields()
        .iter()
        .zip(manifest.fields().iter())
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, _)| a.0)
        .collect();
    let detail = if fields.is_empty() {
        "the documents give the same manifest".to_owned()
    } else {
        format!("the documents give another manifest: {}", fields.join(", "))
    };
    Check { fields, ..Check::outcome(RECOMPUTE, ours == manifest, detail) }
        .comparing(run.manifest_digest(), digest_hex.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKeys;
    use crate::result::{self, LedgerReport, ResultMeta};

    const INPUTS: &str = r#"{"schema":"rewarder.inputs.v1","epoch":"e","pool_minor":"1000","kinds":["k"],"actors":["a","b"],"events":[[1,0,0,3],[2,1,0,5]]}"#;
    const POLICY: &str =
        r#"{"schema":"rewarder.policy.v1","policy_id":"p","weights":{"k":1000000},"min_payout_minor":"0"}"#;

    /// A signed result of the documents above, and the signer's keys.
    fn signed(pq: bool) -> (Vec<u8>, Vec<PublicKey>) {
        let keys = SigningKeys::from_seeds(&[3; 32], pq.then_some(&[4; 32]));
        let inputs = Arc::new(Inputs::parse(INPUTS.as_bytes(), &Limits::UNBOUNDED).unwrap());
        let run = Run::compute(&inputs, &Policy::parse(POLICY.as_bytes()).unwrap(), "default").unwrap();
        let allocations = result::render_allocations(&run);
        let meta = ResultMeta {
            ledger: LedgerReport::DRY_RUN,
            compute_ms: 0.0,
            allocations: Some(&allocations),
            durable: false,
        };
        let body = result::render(&run, &keys.sign(run.digest_bytes()), &meta);
        (body, keys.published().into_iter().map(|p| p.key).collect())
    }

    fn statuses(report: &Report) -> Vec<(&'static str, Status)> {
        report.checks.iter().map(|c| (c.check, c.status)).collect()
    }

    #[test]
    fn a_signed_result_passes_with_its_keys_and_fails_with_none() {
        let (body, keys) = signed(true);
        let documents = Documents { inputs: INPUTS.as_bytes(), policy: POLICY.as_bytes() };
        let report = verify(&body, Trust::Keys(&keys), Some(documents));
        assert!(report.ok, "{}", report.to_json());
        assert_eq!(statuses(&report).len(), 8);
        assert!(report.checks.iter().all(|c| c.status == Status::Pass));
        let nobody = verify(&body, Trust::Keys(&[]), None);
        assert_eq!(nobody.untrusted_key_ids(), [keys[0].key_id(), keys[1].key_id()]);
        assert!(verify(&body, Trust::Embedded, None).ok);
        let half = verify(&body, Trust::Keys(&keys[1..]), None);
        assert_eq!(half.check("key.ed25519").map(|c| c.status), Some(Status::Fail));
        assert_eq!(half.check("key.ml_dsa_65").map(|c| c.status), Some(Status::Pass));
    }

    #[test]
    fn a_foreign_key_is_named_and_other_documents_fail_the_recompute() {
        let (body, _) = signed(false);
        let foreign = SigningKeys::from_seeds(&[9; 32], None).published().remove(0).key;
        let report = verify(&body, Trust::Keys(std::slice::from_ref(&foreign)), None);
        let key = report.check("key.ed25519").unwrap();
        assert_eq!(key.status, Status::Fail);
        assert!(key.detail.contains(key.key_id.as_deref().unwrap()), "{}", key.detail);
        let policy = POLICY.replace("\"p\"", "\"q\"");
        let documents = Documents { inputs: INPUTS.as_bytes(), policy: policy.as_bytes() };
        let report = verify(&body, Trust::Embedded, Some(documents));
        let recompute = report.check("recompute").unwrap();
        assert_eq!(recompute.status, Status::Fail);
        assert_eq!(recompute.fields, ["run_id", "policy_id", "policy_hash"]);
    }

    #[test]
    fn decimals_are_canonical() {
        assert_eq!(crate::parse_amount("0"), Some(0));
        assert_eq!(crate::parse_amount("18446744073709551615"), Some(u64::MAX));
        for bad in ["", "+1", "-1", "01", "1.0", "1e3", " 1", "18446744073709551616"] {
            assert_eq!(crate::parse_amount(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn garbage_is_a_failed_result_check_with_its_code() {
        for (bytes, code) in [(&b"nope"[..], "malformed_json"), (b"{}", "schema"), (b"[1]", "schema")] {
            let report = verify(bytes, Trust::Embedded, None);
            assert!(!report.ok);
            assert_eq!(report.checks.len(), 1);
            assert_eq!(report.checks[0].code, Some(code), "{:?}", String::from_utf8_lossy(bytes));
        }
    }
}
