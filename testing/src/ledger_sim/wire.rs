//! The request bodies of API.md §4 and their validation: what the simulated ledger accepts.
//!
//! Validation is strict on purpose (the point of a test peer is to catch a client that
//! drifts from the protocol): exactly the documented fields, each in its documented form, and
//! every `idempotency_key` must be the CALCULUS.md §4 key of its `(tenant, epoch, actor)`.

use rewarder_core::commit::intent_key;
use serde_json::{Map, Value, json};

use crate::is_valid_epoch;

/// A run registration: the body of `PUT /v1/runs/{tenant}/{epoch}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRegistration {
    /// `"b3:" + 64 lowercase hex`.
    pub run_id: String,
    /// `"b3:" + 64 lowercase hex`.
    pub manifest_digest: String,
    /// Canonical decimal string (no leading zero), at most 2^64 − 1.
    pub payout_total_minor: String,
    /// Number of payees of the run.
    pub payees: u64,
}

/// One payout intent of `POST /v1/intents`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// The CALCULUS.md §4 key of `(tenant, epoch, actor)`.
    pub idempotency_key: String,
    /// 1–64 chars of `[A-Za-z0-9._-]`.
    pub tenant: String,
    /// 1–128 chars of `[A-Za-z0-9._:-]`.
    pub epoch: String,
    /// 1–128 bytes of printable ASCII without space.
    pub actor: String,
    /// At least 1 (every payee gets at least 1, CALCULUS.md I-2).
    pub amount_minor: u64,
    /// `"b3:" + 64 lowercase hex`.
    pub run_id: String,
    /// `"b3:" + 64 lowercase hex`.
    pub manifest_digest: String,
}

impl Intent {
    /// The wire form (also the journal form) of the intent.
    pub fn to_json(&self) -> Value {
        json!({
            "idempotency_key": self.idempotency_key,
            "tenant": self.tenant,
            "epoch": self.epoch,
            "actor": self.actor,
            "amount_minor": self.amount_minor.to_string(),
            "run_id": self.run_id,
            "manifest_digest": self.manifest_digest,
        })
    }
}

/// A refused request body: answered `400` with `{"error":{"code","message","details"}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct BadBody {
    /// `malformed_json` (not JSON at all) or `bad_request` (JSON of the wrong shape).
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
    /// Where: `{"field": …}` and, for an intent, `{"index": …}`.
    pub details: Value,
}

impl BadBody {
    fn field(field: &str, message: impl Into<String>) -> Self {
        BadBody { code: "bad_request", message: message.into(), details: json!({ "field": field }) }
    }

    fn at(self, index: usize) -> Self {
        let mut details = self.details;
        details["index"] = json!(index);
        BadBody { message: format!("intents[{index}]: {}", self.message), details, ..self }
    }
}

/// Tenant ids as API.md §3 defines them: the node's own rule, so the two cannot drift.
pub use rewarder_core::service::auth::valid_tenant as is_valid_tenant;

/// Actor ids as CALCULUS.md §1.1 defines them: 1–128 bytes, each in 0x21..=0x7E.
pub fn is_valid_actor(actor: &str) -> bool {
    (1..=128).contains(&actor.len()) && actor.bytes().all(|b| (0x21..=0x7E).contains(&b))
}

/// `"b3:"` followed by exactly 64 lowercase hex digits.
pub fn is_b3_id(s: &str) -> bool {
    s.strip_prefix("b3:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// A canonical decimal that fits in a `u64`: the node's own reading of an amount.
pub use rewarder_core::parse_amount as parse_minor;

fn parse_json(body: &[u8]) -> Result<Value, BadBody> {
    serde_json::from_slice(body).map_err(|e| BadBody {
        code: "malformed_json",
        message: format!("body is not JSON: {e}"),
        details: json!({}),
    })
}

/// The object's fields, after checking that it has exactly `names`.
fn exact_fields<'a>(v: &'a Value, names: &[&str], what: &str) -> Result<&'a Map<String, Value>, BadBody> {
    let obj = v.as_object().ok_or_else(|| BadBody::field("", format!("{what} must be a JSON object")))?;
    if let Some(unknown) = obj.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(BadBody::field(unknown, format!("unknown field `{unknown}` in {what}")));
    }
    if let Some(missing) = names.iter().find(|n| !obj.contains_key(**n)) {
        return Err(BadBody::field(missing, format!("missing field `{missing}` in {what}")));
    }
    Ok(obj)
}

fn string<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, BadBody> {
    obj[name].as_str().ok_or_else(|| BadBody::field(name, format!("`{name}` must be a string")))
}

fn b3(obj: &Map<String, Value>, name: &str) -> Result<String, BadBody> {
    let s = string(obj, name)?;
    if is_b3_id(s) {
        Ok(s.to_owned())
    } else {
        Err(BadBody::field(name, format!("`{name}` must be \"b3:\" and 64 lowercase hex digits")))
    }
}

/// Parses and validates the body of `PUT /v1/runs/{tenant}/{epoch}`.
pub fn parse_run(body: &[u8]) -> Result<RunRegistration, BadBody> {
    let v = parse_json(body)?;
    let obj = exact_fields(&v, &["run_id", "manifest_digest", "payout_total_minor", "payees"], "the run")?;
    let payout = string(obj, "payout_total_minor")?;
    if parse_minor(payout).is_none() {
        return Err(BadBody::field(
            "payout_total_minor",
            "`payout_total_minor` must be a decimal string without leading zero, at most 2^64-1",
        ));
    }
    let payees = obj["payees"]
        .as_u64()
        .ok_or_else(|| BadBody::field("payees", "`payees` must be a non-negative JSON integer"))?;
    Ok(RunRegistration {
        run_id: b3(obj, "run_id")?,
        manifest_digest: b3(obj, "manifest_digest")?,
        payout_total_minor: payout.to_owned(),
        payees,
    })
}

const INTENT_FIELDS: [&str; 7] =
    ["idempotency_key", "tenant", "epoch", "actor", "amount_minor", "run_id", "manifest_digest"];

/// Parses and validates one intent object (the wire form, also used by the journal).
pub fn parse_intent(v: &Value) -> Result<Intent, BadBody> {
    let obj = exact_fields(v, &INTENT_FIELDS, "an intent")?;
    let tenant = string(obj, "tenant")?;
    if !is_valid_tenant(tenant) {
        return Err(BadBody::field("tenant", "`tenant` must be 1-64 chars of [A-Za-z0-9._-]"));
    }
    let epoch = string(obj, "epoch")?;
    if !is_valid_epoch(epoch) {
        return Err(BadBody::field("epoch", "`epoch` must be 1-128 chars of [A-Za-z0-9._:-]"));
    }
    let actor = string(obj, "actor")?;
    if !is_valid_actor(actor) {
        return Err(BadBody::field("actor", "`actor` must be 1-128 bytes of printable ASCII without space"));
    }
    let amount_minor = parse_minor(string(obj, "amount_minor")?).filter(|&a| a >= 1).ok_or_else(|| {
        BadBody::field(
            "amount_minor",
            "`amount_minor` must be a decimal string without leading zero, in 1..=2^64-1",
        )
    })?;
    let idempotency_key = b3(obj, "idempotency_key")?;
    let want = intent_key(tenant, epoch, actor);
    if idempotency_key != want {
        return Err(BadBody {
            code: "bad_request",
            message: format!(
                "`idempotency_key` is not the CALCULUS.md §4 key of (tenant, epoch, actor): expected {want}"
            ),
            details: json!({ "field": "idempotency_key", "expected": want }),
        });
    }
    Ok(Intent {
        idempotency_key,
        tenant: tenant.to_owned(),
        epoch: epoch.to_owned(),
        actor: actor.to_owned(),
        amount_minor,
        run_id: b3(obj, "run_id")?,
        manifest_digest: b3(obj, "manifest_digest")?,
    })
}

/// Parses and validates the body of `POST /v1/intents` (an empty list is valid).
pub fn parse_intents(body: &[u8]) -> Result<Vec<Intent>, BadBody> {
    let v = parse_json(body)?;
    let obj = exact_fields(&v, &["intents"], "the request")?;
    let list =
        obj["intents"].as_array().ok_or_else(|| BadBody::field("intents", "`intents` must be an array"))?;
    list.iter().enumerate().map(|(i, v)| parse_intent(v).map_err(|e| e.at(i))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "b3:1111111111111111111111111111111111111111111111111111111111111111";
    const DIGEST: &str = "b3:2222222222222222222222222222222222222222222222222222222222222222";

    fn intent(actor: &str, amount: &str) -> Value {
        json!({
            "idempotency_key": intent_key("t", "e", actor),
            "tenant": "t", "epoch": "e", "actor": actor, "amount_minor": amount,
            "run_id": RUN, "manifest_digest": DIGEST,
        })
    }

    #[test]
    fn ids() {
        assert!(is_b3_id(RUN));
        assert!(!is_b3_id(&RUN.to_uppercase()));
        assert!(!is_b3_id(&RUN[..66]));
        assert!(is_valid_tenant("default") && !is_valid_tenant("a b") && !is_valid_tenant(""));
        assert!(is_valid_actor("acct:alice") && !is_valid_actor("a b") && !is_valid_actor("é"));
    }

    #[test]
    fn run_body() {
        let ok = json!({"run_id": RUN, "manifest_digest": DIGEST, "payout_total_minor": "10", "payees": 2});
        let r = parse_run(ok.to_string().as_bytes()).unwrap();
        assert_eq!((r.payout_total_minor.as_str(), r.payees), ("10", 2));
        assert_eq!(parse_run(b"{").unwrap_err().code, "malformed_json");
        for (bad, field) in [
            (json!({"run_id": RUN, "manifest_digest": DIGEST, "payout_total_minor": "10"}), "payees"),
            (
                json!({"run_id": RUN, "manifest_digest": DIGEST, "payout_total_minor": 10, "payees": 2}),
                "payout_total_minor",
            ),
            (
                json!({"run_id": "x", "manifest_digest": DIGEST, "payout_total_minor": "1", "payees": 2}),
                "run_id",
            ),
            (
                json!({"run_id": RUN, "manifest_digest": DIGEST, "payout_total_minor": "1", "payees": -2}),
                "payees",
            ),
            (
                json!({"run_id": RUN, "manifest_digest": DIGEST, "payout_total_minor": "1", "payees": 2, "x": 1}),
                "x",
            ),
        ] {
            let e = parse_run(bad.to_string().as_bytes()).unwrap_err();
            assert_eq!((e.code, e.details["field"].as_str()), ("bad_request", Some(field)), "{bad}");
        }
    }

    #[test]
    fn intents_body() {
        let body = json!({"intents": [intent("a", "5"), intent("b", "7")]});
        let got = parse_intents(body.to_string().as_bytes()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].amount_minor, 7);
        assert_eq!(got[0].to_json(), intent("a", "5"));
        assert!(parse_intents(br#"{"intents":[]}"#).unwrap().is_empty());

        let mut wrong_key = intent("b", "7");
        wrong_key["idempotency_key"] = intent("a", "7")["idempotency_key"].clone();
        for (bad, field) in [
            (intent("a", "0"), "amount_minor"),
            (intent("a", "007"), "amount_minor"),
            (wrong_key, "idempotency_key"),
            (json!({"idempotency_key": 1}), "tenant"),
        ] {
            let body = json!({"intents": [intent("a", "5"), bad]});
            let e = parse_intents(body.to_string().as_bytes()).unwrap_err();
            assert_eq!(e.details["index"], 1, "{e:?}");
            assert_eq!(e.details["field"].as_str(), Some(field), "{e:?}");
            assert!(e.message.starts_with("intents[1]: "), "{e:?}");
        }
        assert_eq!(parse_intents(b"[]").unwrap_err().code, "bad_request");
        assert_eq!(parse_intents(b"not json").unwrap_err().code, "malformed_json");
    }
}
