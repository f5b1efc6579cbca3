//! The one error type of the core: every failure maps to exactly one API code here.

use std::fmt;

use serde_json::{Map, Value};

/// An API error code (`spec/API.md` §2, `spec/CALCULUS.md` §1.3); each maps to one HTTP status.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// 400: the body is not JSON.
    MalformedJson,
    /// 400: a request that cannot be understood (framing, query, header).
    BadRequest,
    /// 401: missing, malformed, expired or badly signed token.
    Unauthenticated,
    /// 403: the token lacks the scope.
    Forbidden,
    /// 404: no such route.
    NotFound,
    /// 404: no stored inputs document with that cid for this tenant.
    UnknownInputs,
    /// 404: no stored policy with that hash for this tenant.
    UnknownPolicy,
    /// 404: no run of that epoch for this tenant.
    UnknownEpoch,
    /// 404: the actor is not a payee of the run.
    UnknownActor,
    /// 405: the route exists, not with this method.
    MethodNotAllowed,
    /// 409: the epoch is settled by another run.
    EpochConflict,
    /// 413: the body exceeds its cap.
    BodyTooLarge,
    /// 413: a compressed body inflates beyond its ratio or size cap.
    DecompressionLimit,
    /// 413: a document alone outweighs its tenant's store quota (`TENANT_STORE_MAX_BYTES`).
    QuotaExceeded,
    /// 415: the content type is not `application/json`.
    UnsupportedMediaType,
    /// 415: a content encoding other than gzip or identity.
    UnsupportedEncoding,
    /// 422: wrong schema, missing or unknown field, top level not an object.
    Schema,
    /// 422: bad epoch.
    InvalidEpoch,
    /// 422: bad decimal-string amount.
    InvalidAmount,
    /// 422: an integer that is not a JSON integer or is out of range.
    InvalidNumber,
    /// 422: bad `kinds`.
    InvalidKinds,
    /// 422: bad actor id.
    InvalidActor,
    /// 422: an actor id listed twice.
    DuplicateActor,
    /// 422: an event that is not a 4-element array.
    InvalidEvent,
    /// 422: an event id seen twice.
    DuplicateEvent,
    /// 422: bad policy id.
    InvalidPolicyId,
    /// 422: bad `weights`.
    InvalidWeights,
    /// 422: bad `caps`.
    InvalidCaps,
    /// 422: `actor_cap_bps` outside 1..=10000.
    InvalidActorCap,
    /// 422: the inputs' epoch differs from the path's.
    EpochMismatch,
    /// 422: the policy id differs from the stored policy's.
    PolicyMismatch,
    /// 422: a configured bound (actors, events) is exceeded.
    LimitExceeded,
    /// 429: per-tenant rate clamp.
    RateLimited,
    /// 500: an invariant of `CALCULUS.md` §3 failed — a defect, never a user error.
    InvariantViolation,
    /// 500: anything else that is our fault.
    Internal,
    /// 503: in-flight or queue cap reached.
    Overloaded,
    /// 503: capability check timed out.
    CapTimeout,
    /// 503: the node is not ready.
    NotReady,
}

impl Code {
    /// The wire name of the code.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::MalformedJson => "malformed_json",
            Code::BadRequest => "bad_request",
            Code::Unauthenticated => "unauthenticated",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not_found",
            Code::UnknownInputs => "unknown_inputs",
            Code::UnknownPolicy => "unknown_policy",
            Code::UnknownEpoch => "unknown_epoch",
            Code::UnknownActor => "unknown_actor",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::EpochConflict => "epoch_conflict",
            Code::BodyTooLarge => "body_too_large",
            Code::DecompressionLimit => "decompression_limit",
            Code::QuotaExceeded => "quota_exceeded",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::UnsupportedEncoding => "unsupported_encoding",
            Code::Schema => "schema",
            Code::InvalidEpoch => "invalid_epoch",
            Code::InvalidAmount => "invalid_amount",
            Code::InvalidNumber => "invalid_number",
            Code::InvalidKinds => "invalid_kinds",
            Code::InvalidActor => "invalid_actor",
            Code::DuplicateActor => "duplicate_actor",
            Code::InvalidEvent => "invalid_event",
            Code::DuplicateEvent => "duplicate_event",
            Code::InvalidPolicyId => "invalid_policy_id",
            Code::InvalidWeights => "invalid_weights",
            Code::InvalidCaps => "invalid_caps",
            Code::InvalidActorCap => "invalid_actor_cap",
            Code::EpochMismatch => "epoch_mismatch",
            Code::PolicyMismatch => "policy_mismatch",
            Code::LimitExceeded => "limit_exceeded",
            Code::RateLimited => "rate_limited",
            Code::InvariantViolation => "invariant_violation",
            Code::Internal => "internal",
            Code::Overloaded => "overloaded",
            Code::CapTimeout => "cap_timeout",
            Code::NotReady => "not_ready",
        }
    }

    /// The HTTP status this code is answered with.
    pub const fn status(self) -> u16 {
        match self {
            Code::MalformedJson | Code::BadRequest => 400,
            Code::Unauthenticated => 401,
            Code::Forbidden => 403,
            Code::NotFound
            | Code::UnknownInputs
            | Code::UnknownPolicy
            | Code::UnknownEpoch
            | Code::UnknownActor => 404,
            Code::MethodNotAllowed => 405,
            Code::EpochConflict => 409,
            Code::BodyTooLarge | Code::DecompressionLimit | Code::QuotaExceeded => 413,
            Code::UnsupportedMediaType | Code::UnsupportedEncoding => 415,
            Code::Schema
            | Code::InvalidEpoch
            | Code::InvalidAmount
            | Code::InvalidNumber
            | Code::InvalidKinds
            | Code::InvalidActor
            | Code::DuplicateActor
            | Code::InvalidEvent
            | Code::DuplicateEvent
            | Code::InvalidPolicyId
            | Code::InvalidWeights
            | Code::InvalidCaps
            | Code::InvalidActorCap
            | Code::EpochMismatch
            | Code::PolicyMismatch
            | Code::LimitExceeded => 422,
            Code::RateLimited => 429,
            Code::InvariantViolation | Code::Internal => 500,
            Code::Overloaded | Code::CapTimeout | Code::NotReady => 503,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with its API code, a human message (no personal data) and structured details.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    code: Code,
    message: String,
    details: Map<String, Value>,
}

impl Error {
    /// An error with no details.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error { code, message: message.into(), details: Map::new() }
    }

    /// An error about a document field (`details.field`).
    pub fn field(code: Code, field: &str, message: impl Into<String>) -> Self {
        Error::new(code, message).with_detail("field", field)
    }

    /// An error about an element of an array field (`details.field`, `details.index`).
    pub fn at(code: Code, field: &str, index: usize, message: impl Into<String>) -> Self {
        Error::field(code, field, message).with_detail("index", index as u64)
    }

    /// Adds one detail.
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// The API code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The HTTP status of the code.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Structured details (`field`, `index`, `invariant`, …).
    pub fn details(&self) -> &Map<String, Value> {
        &self.details
    }

    /// The API.md §2 envelope: `{"error":{"code","message","corr_id","details"}}`.
    pub fn envelope(&self, corr_id: &str) -> Value {
        serde_json::json!({"error": {
            "code": self.code.as_str(),
            "message": self.message,
            "corr_id": corr_id,
            "details": self.details,
        }})
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_carries_code_message_corr_id_and_details() {
        let e = Error::at(Code::DuplicateEvent, "events", 3, "event id 7 seen twice");
        let v = e.envelope("c-1");
        assert_eq!(v["error"]["code"], "duplicate_event");
        assert_eq!(v["error"]["corr_id"], "c-1");
        assert_eq!(v["error"]["details"]["field"], "events");
        assert_eq!(v["error"]["details"]["index"], 3);
        assert_eq!(e.status(), 422);
    }
}
