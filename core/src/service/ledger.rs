//! The ledger boundary of API.md §4, sans-I/O: what the core sends to a ledger and how it
//! reads the answers, behind the small [`Ledger`] trait a host implements with its HTTP
//! client. The core decides *what* is sent and in *which order* (registration first, then
//! intents in batches, retries and quarantine in `egress`); the host only moves bytes.
//!
//! The wire format lives here too ([`registration_body`], [`intents_body`] and the
//! `*_answer` readers), so every host client speaks exactly the same protocol and reads
//! answers with the same strictness: an answer that is not exactly what the protocol says —
//! not JSON, a result count that differs from the intents sent, keys out of order, an unknown
//! result — is [`LedgerErrorKind::Garbage`], an error, never a success.
//!
//! This module does no I/O and keeps no state.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

/// The body of `PUT {LEDGER_URL}/v1/runs/{tenant}/{epoch}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRegistration {
    /// The run claiming the epoch.
    pub run_id: String,
    /// Its manifest digest (`"b3:…"`).
    pub manifest_digest: String,
    /// `Σ amount` of the run, decimal.
    pub payout_total_minor: String,
    /// Number of payees (= intents the run will send).
    pub payees: u64,
}

/// What the ledger said of a run registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// `201`: registered now.
    Created,
    /// `200`: this same run was already registered (a retry or a replay).
    Same,
    /// `409`: another run holds the epoch; nothing of this run may be emitted.
    Conflict,
}

/// One payout intent (API.md §4 step 2), serialized with its fields in protocol order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Intent {
    /// `intent_key(tenant, epoch, actor)`: names what is paid, not how much.
    pub idempotency_key: String,
    /// The tenant.
    pub tenant: String,
    /// The epoch.
    pub epoch: String,
    /// The payee.
    pub actor: String,
    /// The amount, decimal.
    pub amount_minor: String,
    /// The run that pays it.
    pub run_id: String,
    /// That run's manifest digest.
    pub manifest_digest: String,
}

/// What the ledger did with one intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Recorded now.
    Accepted,
    /// Same key and same payload seen before: a retry, a success.
    Dup,
    /// Same key, other payload: must never happen after registration (an invariant failure).
    Conflict,
}

impl Verdict {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Dup => "dup",
            Verdict::Conflict => "conflict",
        }
    }

    fn parse(raw: &str) -> Option<Verdict> {
        match raw {
            "accepted" => Some(Verdict::Accepted),
            "dup" => Some(Verdict::Dup),
            "conflict" => Some(Verdict::Conflict),
            _ => None,
        }
    }
}

/// The ledger's answer for one intent, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentOutcome {
    /// The key it answers for (must equal the intent's at the same position).
    pub idempotency_key: String,
    /// What the ledger did.
    pub verdict: Verdict,
}

/// Why a ledger request failed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerErrorKind {
    /// The attempt exceeded `LEDGER_DEADLINE_MS` (retryable).
    Timeout,
    /// No connection, reset, TLS failure (retryable).
    Connection,
    /// A `5xx` (or `408`/`429`) status (retryable).
    Server,
    /// An answer that breaks the protocol: not JSON, wrong result count, keys out of order,
    /// an unexpected status (retryable: the request may or may not have been applied, and the
    /// keys make a re-send safe — but never a success).
    Garbage,
    /// A `4xx` the protocol does not define (bad URL, auth): retrying the same request cannot
    /// help, so the intents go straight to the quarantine queue.
    Rejected,
}

/// A failed ledger request.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerError {
    kind: LedgerErrorKind,
    message: String,
}

impl LedgerError {
    /// An error of `kind`; `message` is for logs (no personal data).
    pub fn new(kind: LedgerErrorKind, message: impl Into<String>) -> Self {
        LedgerError { kind, message: message.into() }
    }

    /// What went wrong.
    pub fn kind(&self) -> LedgerErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the same request may succeed if tried again (everything but `Rejected`).
    pub fn retryable(&self) -> bool {
        self.kind != LedgerErrorKind::Rejected
    }
}

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for LedgerError {}

/// A ledger, as the host reaches it. One call is one attempt: the host enforces the
/// per-attempt deadline (`LEDGER_DEADLINE_MS`) and maps transport failures to
/// [`LedgerError`]s; the core retries, backs off, batches and quarantines.
pub trait Ledger: Send + Sync {
    /// `PUT /v1/runs/{tenant}/{epoch}`.
    fn register_run(
        &self,
        tenant: &str,
        epoch: &str,
        run: &RunRegistration,
    ) -> Result<Registration, LedgerError>;

    /// `POST /v1/intents` with at most `LEDGER_BATCH_MAX` intents; one outcome per intent,
    /// in request order (the core checks this again).
    fn send_intents(&self, intents: &[Intent]) -> Result<Vec<IntentOutcome>, LedgerError>;

    /// `GET /v1/health`: `Ok` when the ledger answers healthy (brownout probes).
    fn health(&self) -> Result<(), LedgerError>;
}

/// Pauses and randomness for backoff, supplied by the host (a test's fake advances its
/// clock instead of sleeping, and returns fixed "random" numbers).
pub trait Pacer: Send + Sync {
    /// Blocks the calling thread for `duration`.
    fn pause(&self, duration: Duration);
    /// A uniformly distributed random number (backoff jitter).
    fn random_u64(&self) -> u64;
}

/// Most bytes of a ledger answer a host should read (a batch of 10⁶ results fits).
pub const ANSWER_MAX_BYTES: u64 = 256 << 20;

/// The path of a run registration: `/v1/runs/{tenant}/{epoch}` (both are validated ids:
/// `[A-Za-z0-9._-]` and `[A-Za-z0-9._:-]`, all valid path characters; anything else is
/// percent-encoded all the same).
pub fn registration_path(tenant: &str, epoch: &str) -> String {
    let mut path = String::with_capacity(10 + tenant.len() + epoch.len());
    path.push_str("/v1/runs/");
    push_segment(&mut path, tenant);
    path.push('/');
    push_segment(&mut path, epoch);
    path
}

fn push_segment(out: &mut String, segment: &str) {
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The registration body `{"run_id","manifest_digest","payout_total_minor","payees"}`.
pub fn registration_body(run: &RunRegistration) -> Vec<u8> {
    // Serializing strings and an integer into memory cannot fail.
    serde_json::to_vec(run).expect("serializing a registration into memory")
}

/// Reads a registration answer: `201` created, `200` same run, `409` conflict.
pub fn registration_answer(status: u16) -> Result<Registration, LedgerError> {
    match status {
        201 => Ok(Registration::Created),
        200 => Ok(Registration::Same),
        409 => Ok(Registration::Conflict),
        _ => Err(status_error(status, "run registration")),
    }
}

/// The intents body `{"intents":[…]}`.
pub fn intents_body(intents: &[Intent]) -> Vec<u8> {
    struct Body<'a>(&'a [Intent]);
    impl Serialize for Body<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry("intents", self.0)?;
            m.end()
        }
    }
    let mut out = Vec::with_capacity(64 + intents.len() * 400);
    // Serializing strings into memory cannot fail.
    serde_json::to_writer(&mut out, &Body(intents)).expect("serializing intents into memory");
    out
}

/// Reads an intents answer: `200 {"results":[{"idempotency_key","result"}…]}`, one result
/// per intent sent, in request order. Anything else is an error.
pub fn intents_answer(sent: &[Intent], status: u16, body: &[u8]) -> Result<Vec<IntentOutcome>, LedgerError> {
    if status != 200 {
        return Err(status_error(status, "intents"));
    }
    let garbage = |why: &str| LedgerError::new(LedgerErrorKind::Garbage, format!("intents answer: {why}"));
    let value: Value = serde_json::from_slice(body).map_err(|_| garbage("not JSON"))?;
    let results =
        value.get("results").and_then(Value::as_array).ok_or_else(|| garbage("no results array"))?;
    let mut outcomes = Vec::with_capacity(results.len());
    for r in results {
        let key =
            r.get("idempotency_key").and_then(Value::as_str).ok_or_else(|| garbage("a result has no key"))?;
        let verdict = r
            .get("result")
            .and_then(Value::as_str)
            .and_then(Verdict::parse)
            .ok_or_else(|| garbage("a result is not accepted, dup or conflict"))?;
        outcomes.push(IntentOutcome { idempotency_key: key.to_owned(), verdict });
    }
    check_outcomes(sent, &outcomes)?;
    Ok(outcomes)
}

/// Reads a health answer: any `2xx` is healthy.
pub fn health_answer(status: u16) -> Result<(), LedgerError> {
    if (200..300).contains(&status) { Ok(()) } else { Err(status_error(status, "health")) }
}

/// Checks that `outcomes` answer `sent` one for one, in order: the same count and the same
/// key at every position. The core applies it to every host's answer, whatever the host
/// checked itself.
pub fn check_outcomes(sent: &[Intent], outcomes: &[IntentOutcome]) -> Result<(), LedgerError> {
    if sent.len() != outcomes.len() {
        return Err(LedgerError::new(
            LedgerErrorKind::Garbage,
            format!("{} results for {} intents", outcomes.len(), sent.len()),
        ));
    }
    if let Some(i) = sent.iter().zip(outcomes).position(|(s, o)| s.idempotency_key != o.idempotency_key) {
        return Err(LedgerError::new(
            LedgerErrorKind::Garbage,
            format!("result {i} answers another key (out of order)"),
        ));
    }
    Ok(())
}

/// The error of an unexpected status: `5xx`, `408` and `429` are worth retrying; a `2xx` or
/// `3xx` the protocol does not define is garbage; any other `4xx` is a refusal.
fn status_error(status: u16, what: &str) -> LedgerError {
    let kind = match status {
        500..=599 | 408 | 429 => LedgerErrorKind::Server,
        400..=499 => LedgerErrorKind::Rejected,
        _ => LedgerErrorKind::Garbage,
    };
    LedgerError::new(kind, format!("{what}: unexpected status {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(key: &str) -> Intent {
        Intent {
            idempotency_key: key.into(),
            tenant: "t".into(),
            epoch: "e".into(),
            actor: "a".into(),
            amount_minor: "5".into(),
            run_id: "b3:r".into(),
            manifest_digest: "b3:d".into(),
        }
    }

    #[test]
    fn bodies_follow_the_protocol_field_order() {
        let body = String::from_utf8(intents_body(&[intent("k1")])).unwrap();
        assert_eq!(
            body,
            r#"{"intents":[{"idempotency_key":"k1","tenant":"t","epoch":"e","actor":"a","amount_minor":"5","run_id":"b3:r","manifest_digest":"b3:d"}]}"#
        );
        let reg = RunRegistration {
            run_id: "b3:r".into(),
            manifest_digest: "b3:d".into(),
            payout_total_minor: "10".into(),
            payees: 2,
        };
        assert_eq!(
            String::from_utf8(registration_body(&reg)).unwrap(),
            r#"{"run_id":"b3:r","manifest_digest":"b3:d","payout_total_minor":"10","payees":2}"#
        );
        assert_eq!(registration_path("acme", "2026-11-29"), "/v1/runs/acme/2026-11-29");
        assert_eq!(registration_path("a b", "e:1"), "/v1/runs/a%20b/e:1");
    }

    #[test]
    fn registration_statuses() {
        assert_eq!(registration_answer(201), Ok(Registration::Created));
        assert_eq!(registration_answer(200), Ok(Registration::Same));
        assert_eq!(registration_answer(409), Ok(Registration::Conflict));
        assert_eq!(registration_answer(503).unwrap_err().kind(), LedgerErrorKind::Server);
        assert_eq!(registration_answer(404).unwrap_err().kind(), LedgerErrorKind::Rejected);
        assert!(!registration_answer(404).unwrap_err().retryable());
        assert_eq!(registration_answer(204).unwrap_err().kind(), LedgerErrorKind::Garbage);
    }

    #[test]
    fn intents_answers_must_match_what_was_sent() {
        let sent = [intent("k1"), intent("k2")];
        let ok = br#"{"results":[{"idempotency_key":"k1","result":"accepted"},{"idempotency_key":"k2","result":"dup"}]}"#;
        let outcomes = intents_answer(&sent, 200, ok).unwrap();
        assert_eq!(outcomes[0].verdict, Verdict::Accepted);
        assert_eq!(outcomes[1].verdict, Verdict::Dup);
        let garbage: [&[u8]; 6] = [
            b"not json",
            br#"{"results":[{"idempotency_key":"k1","result":"accepted"}]}"#,
            br#"{"results":[{"idempotency_key":"k2","result":"accepted"},{"idempotency_key":"k1","result":"dup"}]}"#,
            br#"{"results":[{"idempotency_key":"k1","result":"ok"},{"idempotency_key":"k2","result":"dup"}]}"#,
            br#"{"results":{}}"#,
            br#"[]"#,
        ];
        for body in garbage {
            let e = intents_answer(&sent, 200, body).unwrap_err();
            assert_eq!(e.kind(), LedgerErrorKind::Garbage, "{}", String::from_utf8_lossy(body));
            assert!(e.retryable());
        }
        assert_eq!(intents_answer(&sent, 502, ok).unwrap_err().kind(), LedgerErrorKind::Server);
        assert_eq!(intents_answer(&sent, 201, ok).unwrap_err().kind(), LedgerErrorKind::Garbage);
        assert_eq!(intents_answer(&sent, 400, ok).unwrap_err().kind(), LedgerErrorKind::Rejected);
    }

    #[test]
    fn health_is_any_success() {
        assert!(health_answer(200).is_ok());
        assert!(health_answer(204).is_ok());
        assert!(health_answer(503).is_err());
    }
}
