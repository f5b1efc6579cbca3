//! Computes and what reads them back: `POST /rewarder/epochs/{epoch}/compute`,
//! `GET /rewarder/epochs/{epoch}` and `GET …/proof/{actor}`.
//!
//! A compute goes: request body → the tenant's stored documents → mismatch checks → the
//! in-flight gate → the run memo (same run id, same run) or [`Run::compute`] → store the run →
//! the ledger step → a freshly signed answer. The ledger step (`Service::settle`, in
//! `egress`) comes after the run is stored: it emits the run's intents, or quarantines them
//! and the answer is `202`, or refuses a second run of a settled epoch (`409`). An invariant
//! violation stores nothing and sends nothing.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use super::metrics::RunStatus;
use super::store::StoredRun;
use super::{JSON, Response, Service, lock};
use crate::commit;
use crate::error::{Code, Error};
use crate::inputs::Inputs;
use crate::manifest::Manifest;
use crate::policy::Policy;
use crate::result::{self, LedgerStatus, ResultMeta};
use crate::run::Run;

/// Longest piece of a request echoed back in an error message.
const ECHO_MAX_CHARS: usize = 128;

/// The fields of a compute request (API.md §1.1).
const COMPUTE_FIELDS: [&str; 4] = ["inputs_cid", "policy_id", "policy_hash", "dry_run"];

/// A parsed compute request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ComputeRequest {
    pub(crate) inputs_cid: String,
    pub(crate) policy_id: String,
    pub(crate) policy_hash: String,
    pub(crate) dry_run: bool,
}

/// At most [`ECHO_MAX_CHARS`] of untrusted text, for messages.
fn clip(text: &str) -> &str {
    match text.char_indices().nth(ECHO_MAX_CHARS) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

fn required_string(map: &Map<String, Value>, field: &str) -> Result<String, Error> {
    match map.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(Error::field(Code::Schema, field, format!("{field} must be a string"))),
        None => Err(Error::field(Code::Schema, field, format!("{field} is required"))),
    }
}

/// Parses a compute body: not JSON → `400 malformed_json`; not an object, or a field missing,
/// mistyped or unknown → `422 schema` naming the field.
pub(crate) fn parse_request(body: &[u8]) -> Result<ComputeRequest, Error> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| Error::new(Code::MalformedJson, "the compute body is not JSON"))?;
    let Value::Object(map) = value else {
        return Err(Error::new(Code::Schema, "the compute body must be a JSON object"));
    };
    if let Some(unknown) = map.keys().find(|k| !COMPUTE_FIELDS.contains(&k.as_str())) {
        let field = clip(unknown);
        return Err(Error::field(Code::Schema, field, format!("unknown field {field:?}")));
    }
    let dry_run = match map.get("dry_run") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Error::field(Code::Schema, "dry_run", "dry_run must be a boolean")),
    };
    Ok(ComputeRequest {
        inputs_cid: required_string(&map, "inputs_cid")?,
        policy_id: required_string(&map, "policy_id")?,
        policy_hash: required_string(&map, "policy_hash")?,
        dry_run,
    })
}

/// The proof body of API.md §1.
#[derive(Serialize)]
struct ProofBody<'a> {
    manifest: &'a Manifest,
    manifest_digest: String,
    actor: &'a str,
    amount_minor: String,
    index: usize,
    proof: Vec<ProofStepJson>,
}

#[derive(Serialize)]
struct ProofStepJson {
    side: &'static str,
    hash: String,
}

impl Service {
    /// `POST /rewarder/epochs/{epoch}/compute`.
    pub(crate) fn compute(
        &self,
        tenant: &str,
        epoch: &str,
        body: &[u8],
        with_allocations: bool,
    ) -> Result<Response, Error> {
        let request = parse_request(body)?;
        let (inputs, policy) = {
            let mut documents = lock(&self.documents);
            (documents.inputs(tenant, &request.inputs_cid), documents.policy(tenant, &request.policy_hash))
        };
        let inputs = inputs.ok_or_else(|| {
            Error::field(
                Code::UnknownInputs,
                "inputs_cid",
                "no inputs document with that cid for this tenant",
            )
        })?;
        let policy = policy.ok_or_else(|| {
            Error::field(Code::UnknownPolicy, "policy_hash", "no policy with that hash for this tenant")
        })?;
        if policy.policy_id() != request.policy_id {
            return Err(Error::field(
                Code::PolicyMismatch,
                "policy_id",
                format!("policy id is {}, request says {}", policy.policy_id(), clip(&request.policy_id)),
            ));
        }
        if inputs.epoch() != epoch {
            return Err(Error::field(
                Code::EpochMismatch,
                "epoch",
                format!("inputs epoch is {}, path says {}", inputs.epoch(), clip(epoch)),
            ));
        }

        let Some(_permit) = self.gate.enter(self.hot().max_inflight) else {
            self.metrics.reject(super::Rejection::Inflight);
            return Err(
                Error::new(Code::Overloaded, "too many computes in flight").with_detail("retry_after", 1)
            );
        };
        let run_id = commit::run_id(tenant, inputs.epoch(), inputs.cid(), policy.hash());
        let mut cached = lock(&self.runs).get(tenant, &run_id);
        if cached.is_none() {
            // A run evicted from the store while its intents wait in the quarantine queue is
            // the queue's: answer that one (the drain updates its progress), never a copy.
            cached = self.queued_run(tenant, &run_id);
            if let Some(queued) = &cached {
                lock(&self.runs).insert(Arc::clone(queued));
            }
        }
        let (stored, fresh) = match cached {
            Some(stored) => {
                self.metrics.run(RunStatus::Cached);
                lock(&self.runs).mark_latest(&stored);
                (stored, false)
            }
            None => (self.run(&inputs, &policy, tenant)?, true),
        };
        let answer = || {
            if fresh {
                self.store(&stored);
            }
            let ledger = self.settle(&stored, request.dry_run)?;
            let status = if ledger.status == LedgerStatus::Quarantined { 202 } else { 200 };
            let meta = ResultMeta { ledger, compute_ms: stored.compute_ms, with_allocations };
            Ok::<_, Error>((status, result::render_tail(&stored.run, &meta)))
        };
        let keys = &self.config.keys;
        let (signatures, answer) = if stored.is_signed() || keys.ml_dsa_65_public_hex().is_none() {
            (stored.signatures(keys), answer())
        } else {
            self.overlapped(|| stored.signatures(keys), answer)
        };
        let (status, tail) = answer?;
        let body = result::join(result::render_head(&stored.run, signatures), &tail);
        Ok(Response { status, content_type: JSON, retry_after_s: None, body })
    }

    /// `side` and `main` at once on the host's [`super::Overlap`].
    fn overlapped<A: Send, B>(&self, side: impl FnOnce() -> A + Send, main: impl FnOnce() -> B) -> (A, B) {
        let (mut side, mut main) = (Some(side), Some(main));
        let (mut a, mut b) = (None, None);
        self.overlap.both(&mut || a = side.take().map(|f| f()), &mut || b = main.take().map(|f| f()));
        // `both` runs each to completion before it returns.
        (a.expect("side ran"), b.expect("main ran"))
    }

    /// Computes and checks a new run, timing it on the host's monotonic clock.
    fn run(&self, inputs: &Arc<Inputs>, policy: &Policy, tenant: &str) -> Result<Arc<StoredRun>, Error> {
        let started = self.clock.monotonic();
        let run = Run::compute_overlapped(inputs, policy, tenant, &*self.overlap);
        let elapsed = self.clock.monotonic().saturating_sub(started);
        let run = run.inspect_err(|e| self.count_failed_run(e))?;
        self.metrics.observe_compute(elapsed);
        self.metrics.run(RunStatus::Ok);
        Ok(Arc::new(StoredRun::new(run, elapsed.as_secs_f64() * 1000.0)))
    }

    /// Keeps a new run's record with the host and stores the run.
    fn store(&self, stored: &Arc<StoredRun>) {
        let record = serde_json::json!({
            "manifest": stored.run.manifest(),
            "manifest_digest": stored.run.manifest_digest(),
        });
        self.keep_artifact(stored.run.run_id(), record.to_string().as_bytes());
        lock(&self.runs).insert(Arc::clone(stored));
    }

    /// Counts a run the calculus refused (`reward_runs_total`, `reward_invariant_fail_total`).
    pub(crate) fn count_failed_run(&self, error: &Error) {
        let status = match error.code() {
            Code::InvariantViolation => RunStatus::InvariantViolation,
            _ => RunStatus::Error,
        };
        self.metrics.run(status);
    }

    /// The API.md §1.2 body of a stored run.
    fn result_response(&self, stored: &StoredRun, with_allocations: bool) -> Response {
        let meta = ResultMeta { ledger: stored.ledger(), compute_ms: stored.compute_ms, with_allocations };
        let body = result::render(&stored.run, stored.signatures(&self.config.keys), &meta);
        Response { status: 200, content_type: JSON, retry_after_s: None, body }
    }

    fn latest_run(&self, tenant: &str, epoch: &str) -> Result<Arc<StoredRun>, Error> {
        lock(&self.runs)
            .latest(tenant, epoch)
            .ok_or_else(|| Error::new(Code::UnknownEpoch, "no run of that epoch for this tenant"))
    }

    /// `GET /rewarder/epochs/{epoch}`: the tenant's latest run of the epoch, as compute answered it.
    pub(crate) fn epoch_result(
        &self,
        tenant: &str,
        epoch: &str,
        with_allocations: bool,
    ) -> Result<Response, Error> {
        let stored = self.latest_run(tenant, epoch)?;
        if self.lost_epoch(stored.run.run_id()) {
            return Err(Error::new(
                Code::EpochConflict,
                format!(
                    "epoch {epoch} is settled by another run; this tenant's latest run of it was refused"
                ),
            )
            .with_detail("epoch", epoch)
            .with_detail("run_id", stored.run.run_id()));
        }
        Ok(self.result_response(&stored, with_allocations))
    }

    /// `GET /rewarder/epochs/{epoch}/proof/{actor}`: the Merkle proof of one payee of the
    /// tenant's latest run of the epoch.
    pub(crate) fn proof(&self, tenant: &str, epoch: &str, actor: &str) -> Result<Response, Error> {
        let stored = self.latest_run(tenant, epoch)?;
        let run = &stored.run;
        let proof = run.proof(actor)?;
        let body = ProofBody {
            manifest: run.manifest(),
            manifest_digest: run.manifest_digest(),
            actor,
            amount_minor: proof.amount.to_string(),
            index: proof.index,
            proof: proof
                .steps
                .iter()
                .map(|s| ProofStepJson { side: s.side(), hash: hex::encode(s.hash) })
                .collect(),
        };
        let body = serde_json::to_vec(&body)
            .map_err(|_| Error::new(Code::Internal, "could not render the proof"))?;
        Ok(Response { status: 200, content_type: JSON, retry_after_s: None, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_bodies() {
        let ok = br#"{"inputs_cid":"b3:1","policy_id":"p","policy_hash":"b3:2"}"#;
        assert_eq!(
            parse_request(ok),
            Ok(ComputeRequest {
                inputs_cid: "b3:1".into(),
                policy_id: "p".into(),
                policy_hash: "b3:2".into(),
                dry_run: false
            })
        );
        let dry = br#"{"inputs_cid":"b3:1","policy_id":"p","policy_hash":"b3:2","dry_run":true}"#;
        assert!(parse_request(dry).unwrap().dry_run);
        let cases: [(&[u8], Code, Option<&str>); 9] = [
            (b"", Code::MalformedJson, None),
            (b"{", Code::MalformedJson, None),
            (b"\xff", Code::MalformedJson, None),
            (b"[]", Code::Schema, None),
            (br#"{"policy_id":"p","policy_hash":"b3:2"}"#, Code::Schema, Some("inputs_cid")),
            (br#"{"inputs_cid":1,"policy_id":"p","policy_hash":"b3:2"}"#, Code::Schema, Some("inputs_cid")),
            (
                br#"{"inputs_cid":"a","policy_id":"p","policy_hash":"b3:2","dry_run":"no"}"#,
                Code::Schema,
                Some("dry_run"),
            ),
            (
                br#"{"inputs_cid":"a","policy_id":"p","policy_hash":"b3:2","extra":1}"#,
                Code::Schema,
                Some("extra"),
            ),
            (br#"{"inputs_cid":"a","policy_id":null,"policy_hash":"b3:2"}"#, Code::Schema, Some("policy_id")),
        ];
        for (body, code, field) in cases {
            let e = parse_request(body).unwrap_err();
            assert_eq!(e.code(), code, "{}", String::from_utf8_lossy(body));
            assert_eq!(e.details().get("field").and_then(Value::as_str), field);
        }
    }

    #[test]
    fn echoes_are_clipped() {
        assert_eq!(clip(&"é".repeat(500)).chars().count(), ECHO_MAX_CHARS);
        assert_eq!(clip("short"), "short");
    }
}
