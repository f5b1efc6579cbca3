//! Computes and what reads them back: `POST /rewarder/epochs/{epoch}/compute`,
//! `GET /rewarder/epochs/{epoch}` and `GET …/proof/{actor}`; and the what-if beside them,
//! `POST /rewarder/epochs/{epoch}/compare`, which computes two runs the same way and stores,
//! signs and sends neither (a what-if never becomes an epoch's latest run).
//!
//! A compute goes: request body → the tenant's stored documents → mismatch checks → the
//! in-flight limit → the run memo (same run id, same run) or [`Run::compute`] → store the run →
//! the ledger step → a freshly signed answer. The ledger step (`Service::settle`, in
//! `egress`) comes after the run is stored: it emits the run's intents, or quarantines them
//! and the answer is `202`, or refuses a second run of a settled epoch (`409`). An invariant
//! violation stores nothing and sends nothing.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use super::super::inflight::Permit;
use super::super::metrics::{RunStatus, Scale};
use super::super::store::StoredRun;
use super::super::{HTML, JSON, Response, Service, Shared, Stream, lock};
use crate::commit;
use crate::compare::{self, Comparison};
use crate::error::{Code, Error};
use crate::inputs::Inputs;
use crate::manifest::Manifest;
use crate::policy::Policy;
use crate::result::{self, LedgerReport, LedgerStatus, ResultMeta, Rows};
use crate::run::Run;
use crate::sign::Signatures;

/// Longest piece of a request echoed back in an error message.
const ECHO_MAX_CHARS: usize = 128;

/// The fields of a compute request (API.md §1.1).
const COMPUTE_FIELDS: [&str; 4] = ["inputs_cid", "policy_id", "policy_hash", "dry_run"];

/// The fields of a compare request (API.md §1.3), and of each policy named in it.
const COMPARE_FIELDS: [&str; 4] = ["inputs_cid", "policy_a", "policy_b", "top"];
const POLICY_REF_FIELDS: [&str; 2] = ["policy_id", "policy_hash"];

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

/// A request body as a JSON object: not JSON → `400 malformed_json`; not an object → `422
/// schema`; a member not in `fields` → `422 schema` naming it (the first in byte order).
fn body_object(body: &[u8], what: &str, fields: &[&str]) -> Result<Map<String, Value>, Error> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| Error::new(Code::MalformedJson, format!("the {what} body is not JSON")))?;
    let Value::Object(map) = value else {
        return Err(Error::new(Code::Schema, format!("the {what} body must be a JSON object")));
    };
    if let Some(unknown) = map.keys().find(|k| !fields.contains(&k.as_str())) {
        let field = clip(unknown);
        return Err(Error::field(Code::Schema, field, format!("unknown field {field:?}")));
    }
    Ok(map)
}

/// Parses a compute body: not JSON → `400 malformed_json`; not an object, or a field missing,
/// mistyped or unknown → `422 schema` naming the field.
pub(crate) fn parse_request(body: &[u8]) -> Result<ComputeRequest, Error> {
    let map = body_object(body, "compute", &COMPUTE_FIELDS)?;
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

/// A stored policy as a compare request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PolicyRef {
    pub(crate) policy_id: String,
    pub(crate) policy_hash: String,
}

/// A parsed compare request (API.md §1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompareRequest {
    pub(crate) inputs_cid: String,
    pub(crate) policy_a: PolicyRef,
    pub(crate) policy_b: PolicyRef,
    pub(crate) top: usize,
}

/// Parses a compare body, in the order of API.md §1.3: JSON, object, unknown members, `top`,
/// `inputs_cid`, then `policy_a` and `policy_b` (each an object of exactly `policy_id` and
/// `policy_hash`, strings; errors name `policy_a.policy_id` and so on).
pub(crate) fn parse_compare_request(body: &[u8]) -> Result<CompareRequest, Error> {
    let map = body_object(body, "compare", &COMPARE_FIELDS)?;
    let top = match map.get("top") {
        None => compare::TOP_DEFAULT,
        Some(v) => {
            v.as_u64().and_then(|n| usize::try_from(n).ok()).filter(|n| *n <= compare::TOP_MAX).ok_or_else(
                || {
                    let message = format!("top must be an integer from 0 to {}", compare::TOP_MAX);
                    Error::field(Code::Schema, "top", message)
                },
            )?
        }
    };
    let inputs_cid = required_string(&map, "inputs_cid")?;
    let policy = |side: &str| -> Result<PolicyRef, Error> {
        let Some(Value::Object(inner)) = map.get(side) else {
            let message = format!("{side} must be an object {{\"policy_id\", \"policy_hash\"}}");
            return Err(Error::field(Code::Schema, side, message));
        };
        if let Some(unknown) = inner.keys().find(|k| !POLICY_REF_FIELDS.contains(&k.as_str())) {
            let field = format!("{side}.{}", clip(unknown));
            return Err(Error::field(Code::Schema, &field, format!("unknown field {field:?}")));
        }
        let named = |field: &str| {
            required_string(inner, field).map_err(|e| {
                let field = format!("{side}.{field}");
                Error::field(e.code(), &field, format!("{field} must be a string"))
            })
        };
        Ok(PolicyRef { policy_id: named("policy_id")?, policy_hash: named("policy_hash")? })
    };
    Ok(CompareRequest { inputs_cid, policy_a: policy("policy_a")?, policy_b: policy("policy_b")?, top })
}

fn unknown_inputs() -> Error {
    Error::field(Code::UnknownInputs, "inputs_cid", "no inputs document with that cid for this tenant")
}

fn unknown_policy(field: &str) -> Error {
    Error::field(Code::UnknownPolicy, field, "no policy with that hash for this tenant")
}

/// `422 policy_mismatch` unless the stored policy has the id the request gave.
fn check_policy_id(policy: &Policy, asked: &str, field: &str) -> Result<(), Error> {
    if policy.policy_id() == asked {
        return Ok(());
    }
    let message = format!("policy id is {}, request says {}", policy.policy_id(), clip(asked));
    Err(Error::field(Code::PolicyMismatch, field, message))
}

/// `422 epoch_mismatch` unless the inputs are of the path's epoch.
fn check_epoch(inputs: &Inputs, epoch: &str) -> Result<(), Error> {
    if inputs.epoch() == epoch {
        return Ok(());
    }
    let message = format!("inputs epoch is {}, path says {}", inputs.epoch(), clip(epoch));
    Err(Error::field(Code::EpochMismatch, "epoch", message))
}

/// The status of a compute answer: `202` while some of its intents wait in the quarantine
/// queue.
fn status_of(ledger: LedgerReport) -> u16 {
    if ledger.status == LedgerStatus::Quarantined { 202 } else { 200 }
}

/// A stored run's ledger step and rows, as a compute answers them.
struct Settled {
    ledger: LedgerReport,
    /// The rows, when the answer lists them.
    rows: Option<Arc<Rows>>,
    /// The body before the rows, when the host's stream already sent it.
    sent: Option<Vec<u8>>,
}

/// Where a new run's rows go while they are rendered (see [`Stream`]).
struct Streaming<'a> {
    /// The run's signatures, once made.
    signed: &'a OnceLock<Signatures>,
    stream: &'a mut dyn Stream,
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
        stream: Option<&mut dyn Stream>,
    ) -> Result<Response, Error> {
        // The host's request span, if this request is traced: the phases below open under it,
        // the signature too when it runs on the host's second thread.
        let traced = tracing::Span::current();
        let (request, inputs, policy) = phase_span!("parse", bytes = body.len())
            .in_scope(|| self.compute_request(tenant, epoch, body))?;

        let _permit = self.admit_inflight()?;
        let run_id = commit::run_id(tenant, inputs.epoch(), inputs.cid(), policy.hash());
        // A run whose intents wait in the quarantine queue is pinned in the store (egress), so
        // the memo finds the queue's own run (the one the drain updates), never a copy.
        let cached = lock(&self.runs).get(tenant, &run_id);
        let (dry_run, rows) = (request.dry_run, with_allocations);
        let (stored, answer) = match cached {
            Some(stored) => {
                self.metrics.run(RunStatus::Cached);
                lock(&self.runs).mark_latest(&stored);
                let answer = self.beside_signatures(&stored, &traced, || {
                    self.settle_and_rows(&stored, dry_run, rows, None)
                });
                (stored, answer)
            }
            None => self.fresh_run(&inputs, &policy, tenant, &traced, |stored, signed| {
                self.store(stored);
                let streaming = stream.map(|stream| Streaming { signed, stream });
                self.settle_and_rows(stored, dry_run, rows, streaming)
            })?,
        };
        let Settled { ledger, rows, sent } = answer?;
        let response = match sent {
            Some(before_rows) => self.body_after(before_rows, ledger, stored.compute_ms, rows.as_ref()),
            None => {
                let signatures = stored.signatures(&self.config.keys);
                self.result_body(&stored.run, signatures, ledger, stored.compute_ms, rows.as_ref())
            }
        };
        Ok(Response { status: status_of(ledger), ..response })
    }

    /// A stored run's ledger step, then its rows when the answer lists them: the bulk of a
    /// full answer, rendered once per run, beside a slow signature. A new run's rows go
    /// through `streaming` as they are rendered.
    fn settle_and_rows(
        &self,
        stored: &Arc<StoredRun>,
        dry_run: bool,
        with_rows: bool,
        streaming: Option<Streaming<'_>>,
    ) -> Result<Settled, Error> {
        let ledger = self.settle(stored, dry_run)?;
        let (rows, sent) = match (with_rows, streaming) {
            (false, _) => (None, None),
            (true, Some(streaming)) => {
                let (rows, sent) = self.rows_streamed(stored, ledger, streaming);
                (Some(rows), sent)
            }
            (true, None) => (Some(Arc::clone(stored.rows())), None),
        };
        Ok(Settled { ledger, rows, sent })
    }

    /// A new run's rows, rendered piece by piece into the host's stream once the answer up to
    /// them is known, that is once the run is signed (on the host's second thread): pieces
    /// rendered before that wait, then go first. A run signed only after its last piece, or
    /// whose rows a concurrent answer rendered, sends nothing: the host answers it whole.
    /// Gives the rows and, when the answer was started, the body it was started with.
    fn rows_streamed(
        &self,
        stored: &StoredRun,
        ledger: LedgerReport,
        streaming: Streaming<'_>,
    ) -> (Arc<Rows>, Option<Vec<u8>>) {
        let Streaming { signed, stream } = streaming;
        let mut waiting = Vec::new();
        let mut sent = None;
        let rows = stored.rows_with(|piece| {
            if sent.is_none() {
                let Some(signatures) = signed.get() else {
                    waiting.push(Arc::clone(piece));
                    return;
                };
                let before_rows = result::render_before_rows(&stored.run, signatures, true);
                stream.start(status_of(ledger), &before_rows);
                sent = Some(before_rows);
                for piece in waiting.drain(..) {
                    stream.piece(&piece);
                }
            }
            stream.piece(piece);
        });
        (Arc::clone(rows), sent)
    }

    /// A compute's parse phase: its body, then the tenant's documents it names and the
    /// mismatch checks (API.md §1.1 steps 1–7).
    fn compute_request(
        &self,
        tenant: &str,
        epoch: &str,
        body: &[u8],
    ) -> Result<(ComputeRequest, Arc<Inputs>, Arc<Policy>), Error> {
        let request = parse_request(body)?;
        let (inputs, policy) = {
            let mut documents = lock(&self.documents);
            (documents.inputs(tenant, &request.inputs_cid), documents.policy(tenant, &request.policy_hash))
        };
        let inputs = inputs.ok_or_else(unknown_inputs)?;
        let policy = policy.ok_or_else(|| unknown_policy("policy_hash"))?;
        check_policy_id(&policy, &request.policy_id, "policy_id")?;
        check_epoch(&inputs, epoch)?;
        Ok((request, inputs, policy))
    }

    /// `side` and `main` at once on the host's [`super::Overlap`].
    fn overlapped<A: Send, B>(&self, side: impl FnOnce() -> A + Send, main: impl FnOnce() -> B) -> (A, B) {
        let (mut side, mut main) = (Some(side), Some(main));
        let (mut a, mut b) = (None, None);
        self.overlap.both(&mut || a = side.take().map(|f| f()), &mut || b = main.take().map(|f| f()));
        // `both` runs each to completion before it returns.
        (a.expect("side ran"), b.expect("main ran"))
    }

    /// A place among the computes in flight: `503 overloaded` when `MAX_INFLIGHT` are.
    fn admit_inflight(&self) -> Result<Permit<'_>, Error> {
        self.inflight.enter(self.hot().max_inflight).ok_or_else(|| {
            self.metrics.reject(super::super::Rejection::Inflight);
            Error::new(Code::Overloaded, "too many computes in flight").with_detail("retry_after", 1)
        })
    }

    /// `answer`, beside the making of a stored run's signatures when they are still to be made
    /// with a slow (post-quantum) key: on the host's second thread.
    fn beside_signatures<T>(
        &self,
        stored: &StoredRun,
        traced: &tracing::Span,
        answer: impl FnOnce() -> T,
    ) -> T {
        let keys = &self.config.keys;
        let sign = || {
            let span = traced.in_scope(|| phase_span!("sign", cached = stored.is_signed()));
            span.in_scope(|| {
                stored.signatures(keys);
            });
        };
        if stored.is_signed() || keys.ml_dsa_65_public_hex().is_none() {
            sign();
            answer()
        } else {
            self.overlapped(sign, answer).1
        }
    }

    /// A new run, timed on the host's monotonic clock and counted like every run, then handed
    /// to `answer` (which stores it and makes the answer's parts) once its invariants hold.
    ///
    /// The digest is final before the invariants are checked, so with a slow (post-quantum) key
    /// the signatures are made on the host's second thread beside the check and `answer`, not
    /// only beside `answer`: an ML-DSA-65 signature (0.15–0.5 ms, by the rounds its rejection
    /// loop takes) then hides behind both. A run that fails its check is refused, and its
    /// signatures are dropped unseen.
    fn fresh_run<T>(
        &self,
        inputs: &Arc<Inputs>,
        policy: &Policy,
        tenant: &str,
        traced: &tracing::Span,
        answer: impl FnOnce(&Arc<StoredRun>, &OnceLock<Signatures>) -> T,
    ) -> Result<(Arc<StoredRun>, T), Error> {
        let span = phase_span!("compute", actors = inputs.actor_count(), events = inputs.event_count());
        let scale = Scale::of(inputs.actor_count());
        let started = self.clock.monotonic();
        let committed = span.in_scope(|| Run::commit_overlapped(inputs, policy, tenant, &*self.overlap));
        let committed = committed.inspect_err(|e| self.count_failed_run(e))?;
        let digest = *committed.digest();
        let keys = &self.config.keys;
        // Set by the signing side, read by `answer` (which may start sending once it is set).
        let signed = OnceLock::new();
        let sign = || {
            let span = traced.in_scope(|| phase_span!("sign", cached = false));
            // Only this closure sets it.
            let _ = signed.set(span.in_scope(|| keys.sign(&digest)));
        };
        let check_and_answer = || {
            let (run, elapsed) = self.count_run(scale, started, span.in_scope(|| committed.check()))?;
            let stored = Arc::new(StoredRun::new(run, elapsed.as_secs_f64() * 1000.0));
            let answered = answer(&stored, &signed);
            Ok::<_, Error>((stored, answered))
        };
        let checked = if keys.ml_dsa_65_public_hex().is_some() {
            self.overlapped(sign, check_and_answer).1
        } else {
            sign();
            check_and_answer()
        };
        let (stored, answered) = checked?;
        if let Some(signatures) = signed.into_inner() {
            stored.signed_with(signatures);
        }
        Ok((stored, answered))
    }

    /// Runs the calculus through `compute`, timed on the host's monotonic clock and counted
    /// like every run (`reward_runs_total`, the latency histogram by scale, invariant failures).
    fn counted_run<T>(
        &self,
        scale: Scale,
        compute: impl FnOnce() -> Result<T, Error>,
    ) -> Result<(T, Duration), Error> {
        let started = self.clock.monotonic();
        self.count_run(scale, started, compute())
    }

    /// Counts a run that began at `started` (host monotonic time) and ended in `outcome`.
    fn count_run<T>(
        &self,
        scale: Scale,
        started: Duration,
        outcome: Result<T, Error>,
    ) -> Result<(T, Duration), Error> {
        let elapsed = self.clock.monotonic().saturating_sub(started);
        let outcome = outcome.inspect_err(|e| self.count_failed_run(e))?;
        self.metrics.observe_compute(scale, elapsed);
        self.metrics.run(RunStatus::Ok);
        Ok((outcome, elapsed))
    }

    /// `POST /rewarder/epochs/{epoch}/compare`: the inputs under two stored policies, as JSON
    /// (API.md §1.3) or, with `html`, the report. Checked like a compute (the tenant's stored
    /// documents, ids, epoch, the in-flight limit); each side is computed and counted as a
    /// compute's run is, and nothing is stored, signed or sent to the ledger.
    pub(crate) fn compare(
        &self,
        tenant: &str,
        epoch: &str,
        body: &[u8],
        html: bool,
    ) -> Result<Response, Error> {
        let request = parse_compare_request(body)?;
        let (inputs, policy_a, policy_b) = {
            let mut documents = lock(&self.documents);
            (
                documents.inputs(tenant, &request.inputs_cid),
                documents.policy(tenant, &request.policy_a.policy_hash),
                documents.policy(tenant, &request.policy_b.policy_hash),
            )
        };
        let inputs = inputs.ok_or_else(unknown_inputs)?;
        let policy_a = policy_a.ok_or_else(|| unknown_policy("policy_a.policy_hash"))?;
        let policy_b = policy_b.ok_or_else(|| unknown_policy("policy_b.policy_hash"))?;
        check_policy_id(&policy_a, &request.policy_a.policy_id, "policy_a.policy_id")?;
        check_policy_id(&policy_b, &request.policy_b.policy_id, "policy_b.policy_id")?;
        check_epoch(&inputs, epoch)?;

        let _permit = self.admit_inflight()?;
        let scale = Scale::of(inputs.actor_count());
        let (a, _) = self.counted_run(scale, || Run::compute_with_bounds(&inputs, &policy_a, tenant))?;
        let (b, _) = self.counted_run(scale, || Run::compute_with_bounds(&inputs, &policy_b, tenant))?;
        let comparison = Comparison::new(a, b)?;
        let (content_type, body) = if html {
            (HTML, compare::html::render(&comparison, request.top).into_bytes())
        } else {
            (JSON, compare::json::render(&comparison, request.top))
        };
        Ok(Response { status: 200, content_type, retry_after_s: None, body, shared: None })
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
        let allocations = with_allocations.then(|| stored.rows());
        let signatures = stored.signatures(&self.config.keys);
        self.result_body(&stored.run, signatures, stored.ledger(), stored.compute_ms, allocations)
    }

    /// A `200` with the API.md §1.2 body of a run; its kept `allocations` array, when asked
    /// for, goes out shared ([`Response::shared`]), not copied.
    fn result_body(
        &self,
        run: &Run,
        signatures: &Signatures,
        ledger: LedgerReport,
        compute_ms: f64,
        allocations: Option<&Arc<Rows>>,
    ) -> Response {
        let before_rows = result::render_before_rows(run, signatures, allocations.is_some());
        self.body_after(before_rows, ledger, compute_ms, allocations)
    }

    /// A `200` with the API.md §1.2 body that starts with `before_rows` (as
    /// [`result::render_before_rows`] wrote it): the rows, shared, then the rest.
    fn body_after(
        &self,
        mut body: Vec<u8>,
        ledger: LedgerReport,
        compute_ms: f64,
        allocations: Option<&Arc<Rows>>,
    ) -> Response {
        let at = body.len();
        let meta = ResultMeta { ledger, compute_ms, allocations: None, durable: self.durable() };
        result::write_after_rows(&mut body, &meta);
        let shared = allocations.map(|rows| Shared { at, rows: Arc::clone(rows) });
        Response { status: 200, content_type: JSON, retry_after_s: None, body, shared }
    }

    fn latest_run(&self, tenant: &str, epoch: &str) -> Result<Arc<StoredRun>, Error> {
        let latest = lock(&self.runs).latest(tenant, epoch);
        latest
            .or_else(|| self.queued_latest(tenant, epoch))
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
        Ok(Response { status: 200, content_type: JSON, retry_after_s: None, body, shared: None })
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
    fn compare_bodies() {
        let ok = br#"{"inputs_cid":"b3:1","policy_a":{"policy_id":"p","policy_hash":"b3:2"},"policy_b":{"policy_id":"q","policy_hash":"b3:3"}}"#;
        let parsed = parse_compare_request(ok).unwrap();
        assert_eq!(parsed.top, compare::TOP_DEFAULT);
        assert_eq!(parsed.policy_b, PolicyRef { policy_id: "q".into(), policy_hash: "b3:3".into() });
        let with_top = |top: &str| {
            let body = format!(
                r#"{{"top":{top},"inputs_cid":"b3:1","policy_a":{{"policy_id":"p","policy_hash":"b3:2"}},"policy_b":{{"policy_id":"q","policy_hash":"b3:3"}}}}"#
            );
            parse_compare_request(body.as_bytes()).map(|r| r.top).map_err(|e| e.code())
        };
        assert_eq!(with_top("0"), Ok(0));
        assert_eq!(with_top("10000"), Ok(compare::TOP_MAX));
        for bad in ["10001", "-1", "1.5", "\"5\"", "null"] {
            assert_eq!(with_top(bad), Err(Code::Schema), "{bad}");
        }
        let cases: [(&[u8], Code, Option<&str>); 8] = [
            (b"", Code::MalformedJson, None),
            (b"[1]", Code::Schema, None),
            (br#"{"inputs_cid":"a","policy_a":{},"policy_b":{},"dry_run":true}"#, Code::Schema, Some("dry_run")),
            (br#"{"policy_a":{},"policy_b":{}}"#, Code::Schema, Some("inputs_cid")),
            (br#"{"inputs_cid":"a","policy_b":{}}"#, Code::Schema, Some("policy_a")),
            (br#"{"inputs_cid":"a","policy_a":"b3:2","policy_b":{}}"#, Code::Schema, Some("policy_a")),
            (
                br#"{"inputs_cid":"a","policy_a":{"policy_id":"p","policy_hash":"h"},"policy_b":{"policy_id":"p"}}"#,
                Code::Schema,
                Some("policy_b.policy_hash"),
            ),
            (
                br#"{"inputs_cid":"a","policy_a":{"policy_id":"p","policy_hash":"h","x":1},"policy_b":{}}"#,
                Code::Schema,
                Some("policy_a.x"),
            ),
        ];
        for (body, code, field) in cases {
            let e = parse_compare_request(body).unwrap_err();
            assert_eq!(e.code(), code, "{}", String::from_utf8_lossy(body));
            assert_eq!(
                e.details().get("field").and_then(Value::as_str),
                field,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn echoes_are_clipped() {
        assert_eq!(clip(&"é".repeat(500)).chars().count(), ECHO_MAX_CHARS);
        assert_eq!(clip("short"), "short");
    }
}
