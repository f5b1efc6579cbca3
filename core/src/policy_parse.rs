//! Parsing and validation of the policy document (CALCULUS.md §1.2, §1.3) into [`Policy`].
//!
//! Policies are small; they are walked with the same scanner as the inputs so that both
//! documents agree on what JSON is (nesting limit, surrogates, huge numbers, repeated keys).

use crate::commit::content_id;
use crate::error::{Code, Error};
use crate::inputs_parse::{INT_MAX, amount, is_kind_name, label};
use crate::json::{self, Scanner};
use crate::policy::Policy;

/// The `schema` value of a policy document.
const SCHEMA: &str = "rewarder.policy.v1";
/// Longest policy id, in characters.
const POLICY_ID_LEN_MAX: usize = 64;
/// Most entries in `weights`.
const WEIGHTS_MAX: usize = 256;
/// Largest weight.
const WEIGHT_MAX: u64 = 1_000_000;
/// Largest `actor_cap_bps`: the whole pool.
const ACTOR_CAP_BPS_MAX: u64 = 10_000;

const _: () = assert!(WEIGHT_MAX <= u32::MAX as u64 && ACTOR_CAP_BPS_MAX <= u16::MAX as u64);

/// Parses and validates a policy document.
pub(crate) fn parse(raw: &[u8]) -> Result<Policy, Error> {
    let mut policy = json::confirm(raw, parse_document(raw))?;
    policy.hash = content_id(raw);
    Ok(policy)
}

/// The fields of the document; the first three are required, in the order missing ones are
/// reported.
#[derive(Debug, Clone, Copy)]
enum Field {
    Schema,
    PolicyId,
    Weights,
    Caps,
    ActorCapBps,
    MinPayoutMinor,
    MaxPoolMinor,
}

const FIELDS: [(&str, Field); 7] = [
    ("schema", Field::Schema),
    ("policy_id", Field::PolicyId),
    ("weights", Field::Weights),
    ("caps", Field::Caps),
    ("actor_cap_bps", Field::ActorCapBps),
    ("min_payout_minor", Field::MinPayoutMinor),
    ("max_pool_minor", Field::MaxPoolMinor),
];
const REQUIRED: usize = 3;

fn parse_document(src: &[u8]) -> Result<Policy, Error> {
    let mut sc = Scanner::new(src);
    sc.skip_ws();
    if sc.peek() != Some(b'{') {
        return Err(Error::new(Code::Schema, "the document is not a JSON object"));
    }
    let mut policy = Policy {
        hash: String::new(),
        policy_id: String::new(),
        weights: Vec::new(),
        caps: Vec::new(),
        actor_cap_bps: None,
        min_payout_minor: 1,
        max_pool_minor: None,
    };
    let mut seen = 0u8;
    sc.object(|sc, key| {
        let Some(&(name, field)) = FIELDS.iter().find(|(name, _)| *name == key) else {
            let mut end = key.len().min(64);
            while !key.is_char_boundary(end) {
                end -= 1;
            }
            return Err(Error::field(Code::Schema, key.get(..end).unwrap_or_default(), "unknown field"));
        };
        let bit = 1u8 << field as u8;
        if seen & bit != 0 {
            return Err(Error::field(Code::Schema, name, "field given twice"));
        }
        seen |= bit;
        match field {
            Field::Schema => {
                if sc.peek() != Some(b'"') || sc.string()? != SCHEMA {
                    return Err(Error::field(Code::Schema, name, "expected \"rewarder.policy.v1\""));
                }
            }
            Field::PolicyId => {
                policy.policy_id = label(sc, name, POLICY_ID_LEN_MAX, Code::InvalidPolicyId)?;
            }
            Field::Weights => {
                let weights = map(sc, name, Code::InvalidWeights, WEIGHT_MAX, WEIGHTS_MAX)?;
                if weights.is_empty() {
                    return Err(Error::field(Code::InvalidWeights, name, "must not be empty"));
                }
                // Every weight is at most WEIGHT_MAX, which fits in a u32.
                policy.weights = weights.into_iter().map(|(k, w)| (k, w as u32)).collect();
            }
            Field::Caps => policy.caps = map(sc, name, Code::InvalidCaps, INT_MAX, usize::MAX)?,
            Field::ActorCapBps => {
                let bps = if sc.at_number() { sc.number()?.uint_max(ACTOR_CAP_BPS_MAX) } else { None };
                let bps = bps.filter(|&b| b >= 1).ok_or_else(|| {
                    Error::field(Code::InvalidActorCap, name, "must be an integer from 1 to 10000")
                })?;
                policy.actor_cap_bps = Some(bps as u16); // at most ACTOR_CAP_BPS_MAX
            }
            Field::MinPayoutMinor => policy.min_payout_minor = amount(sc, name)?,
            Field::MaxPoolMinor => policy.max_pool_minor = Some(amount(sc, name)?),
        }
        Ok(())
    })?;
    sc.end()?;
    for &(name, field) in &FIELDS[..REQUIRED] {
        if seen & (1 << field as u8) == 0 {
            return Err(Error::field(Code::Schema, name, "required field missing"));
        }
    }
    Ok(policy)
}

/// Reads a map from kind name to integer in `0..=value_max`, sorted by name. A bad map or
/// key is `code`; a bad value is `invalid_number`.
fn map(
    sc: &mut Scanner<'_>,
    field: &str,
    code: Code,
    value_max: u64,
    entries_max: usize,
) -> Result<Vec<(String, u64)>, Error> {
    if sc.peek() != Some(b'{') {
        return Err(Error::field(code, field, "must be an object from kind name to integer"));
    }
    let mut entries: Vec<(String, u64)> = Vec::new();
    sc.object(|sc, key| {
        if entries.len() >= entries_max {
            return Err(Error::field(code, field, format!("more than {entries_max} entries")));
        }
        if !is_kind_name(&key) {
            return Err(Error::field(
                code,
                field,
                "a key must be a kind name: 1 to 64 characters of [a-z0-9_.:-]",
            ));
        }
        let value = if sc.at_number() { sc.number()?.uint_max(value_max) } else { None };
        let Some(value) = value else {
            let msg = format!("a value must be an integer from 0 to {value_max}");
            return Err(Error::field(Code::InvalidNumber, field, msg).with_detail("key", key.as_ref()));
        };
        entries.push((key.into_owned(), value));
        Ok(())
    })?;
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::field(code, field, "kind named twice").with_detail("key", w[0].0.as_str()));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(doc: &str) -> Result<Policy, Error> {
        parse(doc.as_bytes())
    }

    fn with(extra: &str) -> String {
        format!(r#"{{"schema": "rewarder.policy.v1", "policy_id": "p", "weights": {{"k": 1}}{extra}}}"#)
    }

    fn code(doc: &str) -> Code {
        match parse_str(doc) {
            Ok(_) => panic!("accepted: {doc}"),
            Err(e) => e.code(),
        }
    }

    #[test]
    fn full_policy_is_parsed_and_maps_sorted() {
        let doc = r#"{
            "schema": "rewarder.policy.v1", "policy_id": "rev42",
            "weights": {"uptime_s": 250, "bytes_served": 1, "a": 0, "z": 1000000},
            "caps": {"uptime_s": 86400, "b": 9007199254740991},
            "actor_cap_bps": 2500, "min_payout_minor": "10", "max_pool_minor": "900000000"
        }"#;
        let p = parse_str(doc).unwrap();
        assert_eq!(p.hash(), content_id(doc.as_bytes()));
        assert_eq!(p.policy_id(), "rev42");
        let names: Vec<&str> = p.weights.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["a", "bytes_served", "uptime_s", "z"]);
        assert_eq!((p.weight("uptime_s"), p.weight("z"), p.weight("missing")), (250, 1_000_000, 0));
        assert_eq!(p.caps, [("b".to_owned(), INT_MAX), ("uptime_s".to_owned(), 86_400)]);
        assert_eq!(p.actor_cap_bps(), Some(2500));
        assert_eq!(p.min_payout_minor(), 10);
        assert_eq!(p.max_pool_minor(), Some(900_000_000));
    }

    #[test]
    fn defaults_apply_to_optional_fields() {
        let p = parse_str(&with("")).unwrap();
        assert!(p.caps.is_empty());
        assert_eq!((p.actor_cap_bps(), p.min_payout_minor(), p.max_pool_minor()), (None, 1, None));
        let p = parse_str(&with(r#", "caps": {}, "min_payout_minor": "0", "max_pool_minor": "0""#)).unwrap();
        assert_eq!((p.min_payout_minor(), p.max_pool_minor()), (0, Some(0)));
    }

    #[test]
    fn schema_errors() {
        assert_eq!(code("[]"), Code::Schema);
        assert_eq!(code("{}"), Code::Schema);
        assert_eq!(code(r#"{"schema": "rewarder.policy.v1", "policy_id": "p"}"#), Code::Schema);
        assert_eq!(code(&with(r#", "bonus": true"#)), Code::Schema);
        assert_eq!(code(&with(r#", "policy_id": "q""#)), Code::Schema);
        assert_eq!(code(r#"{"schema": 1, "policy_id": "p", "weights": {"k": 1}}"#), Code::Schema);
        let err = parse_str(&with(r#", "caps": {}, "caps": {}"#)).unwrap_err();
        assert_eq!((err.code(), err.details()["field"].as_str()), (Code::Schema, Some("caps")));
    }

    #[test]
    fn field_rules() {
        let cases = [
            (r#", "policy_id": "q""#, Code::Schema),
            (r#", "caps": []"#, Code::InvalidCaps),
            (r#", "caps": null"#, Code::InvalidCaps),
            (r#", "caps": {"K": 1}"#, Code::InvalidCaps),
            (r#", "caps": {"k": 1, "k": 2}"#, Code::InvalidCaps),
            (r#", "caps": {"k": -1}"#, Code::InvalidNumber),
            (r#", "caps": {"k": 9007199254740992}"#, Code::InvalidNumber),
            (r#", "caps": {"k": 1.0}"#, Code::InvalidNumber),
            (r#", "caps": {"k": "1"}"#, Code::InvalidNumber),
            (r#", "actor_cap_bps": 0"#, Code::InvalidActorCap),
            (r#", "actor_cap_bps": 10001"#, Code::InvalidActorCap),
            (r#", "actor_cap_bps": 1e3"#, Code::InvalidActorCap),
            (r#", "actor_cap_bps": "100""#, Code::InvalidActorCap),
            (r#", "actor_cap_bps": null"#, Code::InvalidActorCap),
            (r#", "actor_cap_bps": 99999999999999999999999"#, Code::InvalidActorCap),
            (r#", "min_payout_minor": 10"#, Code::InvalidAmount),
            (r#", "min_payout_minor": "1.5""#, Code::InvalidAmount),
            (r#", "max_pool_minor": "01""#, Code::InvalidAmount),
            (r#", "max_pool_minor": "18446744073709551616""#, Code::InvalidAmount),
        ];
        for (extra, expected) in cases {
            assert_eq!(code(&with(extra)), expected, "{extra}");
        }
        for (id, ok) in [("a", true), ("A-z_0.9:x", true), ("", false), ("a b", false), ("é", false)] {
            let doc =
                format!(r#"{{"schema": "rewarder.policy.v1", "policy_id": "{id}", "weights": {{"k": 1}}}}"#);
            assert_eq!(parse_str(&doc).is_ok(), ok, "{id}");
        }
        let long = |n: usize| {
            format!(
                r#"{{"schema": "rewarder.policy.v1", "policy_id": "{}", "weights": {{"k": 1}}}}"#,
                "p".repeat(n)
            )
        };
        assert!(parse_str(&long(64)).is_ok());
        assert_eq!(code(&long(65)), Code::InvalidPolicyId);
        assert_eq!(parse_str(&with(r#", "actor_cap_bps": 1"#)).unwrap().actor_cap_bps(), Some(1));
        assert_eq!(parse_str(&with(r#", "actor_cap_bps": 10000"#)).unwrap().actor_cap_bps(), Some(10_000));
    }

    #[test]
    fn weights_rules() {
        let weights = |body: &str| {
            format!(r#"{{"schema": "rewarder.policy.v1", "policy_id": "p", "weights": {body}}}"#)
        };
        assert_eq!(code(&weights("{}")), Code::InvalidWeights);
        assert_eq!(code(&weights("[]")), Code::InvalidWeights);
        assert_eq!(code(&weights(r#"{"Bad": 1}"#)), Code::InvalidWeights);
        assert_eq!(code(&weights(r#"{"": 1}"#)), Code::InvalidWeights);
        assert_eq!(code(&weights(r#"{"k": 1, "k": 1}"#)), Code::InvalidWeights);
        assert_eq!(code(&weights(r#"{"k": 1000001}"#)), Code::InvalidNumber);
        assert_eq!(code(&weights(r#"{"k": -0}"#)), Code::InvalidNumber);
        let err = parse_str(&weights(r#"{"k": 1, "j": true}"#)).unwrap_err();
        assert_eq!(err.code(), Code::InvalidNumber);
        assert_eq!(
            (err.details()["field"].as_str(), err.details()["key"].as_str()),
            (Some("weights"), Some("j"))
        );
        let entries = |n: usize| (0..n).map(|i| format!("\"k{i}\": {i}")).collect::<Vec<_>>().join(", ");
        assert_eq!(parse_str(&weights(&format!("{{{}}}", entries(256)))).unwrap().weights.len(), 256);
        assert_eq!(code(&weights(&format!("{{{}}}", entries(257)))), Code::InvalidWeights);
        let escaped = parse_str(&weights(r#"{"\u006b": 7}"#)).unwrap();
        assert_eq!(escaped.weight("k"), 7);
    }

    #[test]
    fn malformed_json_wins() {
        for bad in [
            format!("{} x", with(r#", "bonus": true"#)),
            with(r#", "actor_cap_bps": 0,"#),
            with(r#", "caps": {"K": 1,}"#),
            with(r#", "caps": {"k": 1e400, "j": 01}"#),
            with(&format!(r#", "bonus": {}{}"#, "[".repeat(128), "]".repeat(128))),
            "{".to_owned(),
            String::new(),
        ] {
            assert_eq!(code(&bad), Code::MalformedJson, "{bad}");
        }
        assert_eq!(code(&with(r#", "caps": {"k": 1e400}"#)), Code::InvalidNumber);
        assert_eq!(
            code(&with(&format!(r#", "bonus": {}{}"#, "[".repeat(127), "]".repeat(127)))),
            Code::Schema
        );
        assert_eq!(parse(b"{\"schema\": \"\xff\"}").unwrap_err().code(), Code::MalformedJson);
    }
}
