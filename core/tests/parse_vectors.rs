//! The document parsers against the golden vectors: every invalid case gets its code, and
//! every valid document parses to what a naive reading of the same JSON says.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rewarder_core::{Inputs, Limits, Policy};
use serde_json::Value;

use rewarder_gen::golden;
use rewarder_gen::rng::SplitMix64;

use golden::vectors;

/// One vector directory: its documents and, when present, the expected results.
struct Case {
    name: String,
    inputs: Vec<u8>,
    policy: Vec<u8>,
    expected: Option<Value>,
}

/// Every vector directory holding an `inputs.json`.
fn valid_cases() -> Vec<Case> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(vectors())
        .expect("testing/vectors in the repository")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.join("inputs.json").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no vectors found");
    dirs.iter()
        .map(|d| {
            let read =
                |name: &str| fs::read(d.join(name)).unwrap_or_else(|e| panic!("{}/{name}: {e}", d.display()));
            let expected =
                fs::read(d.join("expected.json")).ok().map(|b| serde_json::from_slice(&b).unwrap());
            Case { name: name_of(d), inputs: read("inputs.json"), policy: read("policy.json"), expected }
        })
        .collect()
}

fn name_of(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

/// Everything an [`Inputs`] says except its cid.
type Summary = (String, u64, Vec<String>, usize, Vec<(String, Vec<(u16, u128)>)>);

fn summary(inputs: &Inputs) -> Summary {
    let actors = (0..inputs.actor_count())
        .map(|i| (inputs.actor(i).to_owned(), inputs.usage(i).iter().map(|u| (u.kind, u.units)).collect()))
        .collect();
    (inputs.epoch().to_owned(), inputs.pool_minor(), inputs.kinds().to_vec(), inputs.event_count(), actors)
}

/// The same summary, computed naively from the raw JSON.
fn naive_summary(doc: &Value) -> Summary {
    let actors: Vec<&str> = doc["actors"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let events = doc["events"].as_array().unwrap();
    let mut sums: BTreeMap<&str, BTreeMap<u16, u128>> =
        actors.iter().map(|&a| (a, BTreeMap::new())).collect();
    for e in events {
        let e: Vec<u64> = e.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
        let actor = actors[e[1] as usize];
        *sums.get_mut(actor).unwrap().entry(e[2] as u16).or_default() += u128::from(e[3]);
    }
    let kinds = doc["kinds"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
    (
        doc["epoch"].as_str().unwrap().to_owned(),
        doc["pool_minor"].as_str().unwrap().parse().unwrap(),
        kinds,
        events.len(),
        sums.into_iter().map(|(a, u)| (a.to_owned(), u.into_iter().collect())).collect(),
    )
}

/// The document with its actors and events shuffled (event actor indices remapped).
fn permuted(doc: &Value, rng: &mut SplitMix64) -> Value {
    let mut doc = doc.clone();
    let actors = doc["actors"].as_array().unwrap().clone();
    let mut order: Vec<usize> = (0..actors.len()).collect();
    rng.shuffle(&mut order);
    let mut new_index = vec![0; actors.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    doc["actors"] = Value::Array(order.iter().map(|&old| actors[old].clone()).collect());
    let events = doc["events"].as_array_mut().unwrap();
    for e in events.iter_mut() {
        let old = e[1].as_u64().unwrap() as usize;
        e[1] = Value::from(new_index[old] as u64);
    }
    rng.shuffle(events);
    doc
}

#[test]
fn invalid_vectors_get_their_code() {
    let raw = fs::read(vectors().join("invalid.json")).unwrap();
    let cases: Vec<Value> = serde_json::from_slice(&raw).unwrap();
    assert!(!cases.is_empty());
    for case in &cases {
        let doc = case["raw"].as_str().unwrap();
        let expected = case["code"].as_str().unwrap();
        let result = match case["doc"].as_str().unwrap() {
            "inputs" => Inputs::parse(doc.as_bytes(), &Limits::UNBOUNDED).map(drop),
            "policy" => Policy::parse(doc.as_bytes()).map(drop),
            other => panic!("unknown doc kind {other}"),
        };
        let err = result.err().unwrap_or_else(|| panic!("accepted: {doc}"));
        assert_eq!(err.code().as_str(), expected, "{doc}: {err}");
        assert_eq!(err.status(), 422, "{doc}");
        assert!(err.details().contains_key("field"), "{doc}: no field in {:?}", err.details());
    }
}

#[test]
fn invalid_vector_events_name_their_index() {
    let raw = fs::read(vectors().join("invalid.json")).unwrap();
    let cases: Vec<Value> = serde_json::from_slice(&raw).unwrap();
    for case in cases.iter().filter(|c| c["doc"] == "inputs") {
        let doc = case["raw"].as_str().unwrap();
        let err = Inputs::parse(doc.as_bytes(), &Limits::UNBOUNDED).unwrap_err();
        let element =
            ["duplicate_actor", "duplicate_event", "invalid_number", "invalid_event", "invalid_actor"];
        if element.contains(&err.code().as_str()) {
            assert!(err.details().contains_key("index"), "{doc}: {:?}", err.details());
        }
    }
}

#[test]
fn valid_vectors_parse_and_match_a_naive_reading() {
    for Case { name, inputs: inputs_raw, policy: policy_raw, expected } in valid_cases() {
        let inputs = Inputs::parse(&inputs_raw, &Limits::UNBOUNDED).unwrap_or_else(|e| panic!("{name}: {e}"));
        let doc: Value = serde_json::from_slice(&inputs_raw).unwrap();
        assert_eq!(inputs.actor_count(), doc["actors"].as_array().unwrap().len(), "{name}");
        assert_eq!(inputs.event_count(), doc["events"].as_array().unwrap().len(), "{name}");
        assert_eq!(summary(&inputs), naive_summary(&doc), "{name}");
        for i in 1..inputs.actor_count() {
            assert!(inputs.actor(i - 1).as_bytes() < inputs.actor(i).as_bytes(), "{name}: actors unsorted");
        }

        let policy = Policy::parse(&policy_raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        let pdoc: Value = serde_json::from_slice(&policy_raw).unwrap();
        assert_eq!(policy.policy_id(), pdoc["policy_id"].as_str().unwrap(), "{name}");
        for (kind, weight) in pdoc["weights"].as_object().unwrap() {
            assert_eq!(u64::from(policy.weight(kind)), weight.as_u64().unwrap(), "{name}: weight {kind}");
        }
        let caps = pdoc.get("caps").and_then(Value::as_object).cloned().unwrap_or_default();
        for (kind, cap) in &caps {
            assert_eq!(policy.cap(kind), cap.as_u64(), "{name}: cap {kind}");
        }
        assert_eq!(policy.cap("no_such_kind_in_any_vector"), None);
        assert_eq!(policy.actor_cap_bps().map(u64::from), pdoc.get("actor_cap_bps").and_then(Value::as_u64));
        let amount = |key: &str| pdoc.get(key).map(|v| v.as_str().unwrap().parse::<u64>().unwrap());
        assert_eq!(policy.min_payout_minor(), amount("min_payout_minor").unwrap_or(1), "{name}");
        assert_eq!(policy.max_pool_minor(), amount("max_pool_minor"), "{name}");

        // The ids are over the exact bytes: they match what the golden results were computed with.
        if let Some(manifest) =
            expected.as_ref().and_then(|e| e.get("default")).and_then(|d| d.get("manifest"))
        {
            assert_eq!(Some(inputs.cid()), manifest["inputs_cid"].as_str(), "{name}");
            assert_eq!(Some(policy.hash()), manifest["policy_hash"].as_str(), "{name}");
        }
        assert!(inputs.cid().starts_with("b3:") && inputs.cid().len() == 67);
    }
}

#[test]
fn permuting_actors_and_events_changes_only_the_cid() {
    let mut rng = SplitMix64::new(7);
    for Case { name, inputs: inputs_raw, .. } in valid_cases() {
        let original = Inputs::parse(&inputs_raw, &Limits::UNBOUNDED).unwrap();
        let doc: Value = serde_json::from_slice(&inputs_raw).unwrap();
        for round in 0..3 {
            let shuffled = serde_json::to_vec(&permuted(&doc, &mut rng)).unwrap();
            let other =
                Inputs::parse(&shuffled, &Limits::UNBOUNDED).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(summary(&other), summary(&original), "{name} round {round}");
            if shuffled != inputs_raw {
                assert_ne!(other.cid(), original.cid(), "{name}");
            }
        }
    }
}

#[test]
fn pretty_printed_documents_parse_to_the_same_inputs_and_policy() {
    for Case { name, inputs: inputs_raw, policy: policy_raw, .. } in valid_cases() {
        let doc: Value = serde_json::from_slice(&inputs_raw).unwrap();
        let pretty = serde_json::to_vec_pretty(&doc).unwrap();
        let a = Inputs::parse(&inputs_raw, &Limits::UNBOUNDED).unwrap();
        let b = Inputs::parse(&pretty, &Limits::UNBOUNDED).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(summary(&a), summary(&b), "{name}");

        let pdoc: Value = serde_json::from_slice(&policy_raw).unwrap();
        let p = Policy::parse(&policy_raw).unwrap();
        let q = Policy::parse(&serde_json::to_vec_pretty(&pdoc).unwrap()).unwrap();
        assert_eq!(p.policy_id(), q.policy_id());
        assert_eq!(
            (p.actor_cap_bps(), p.min_payout_minor(), p.max_pool_minor()),
            (q.actor_cap_bps(), q.min_payout_minor(), q.max_pool_minor())
        );
    }
}

#[test]
fn a_large_generated_document_matches_the_naive_sums() {
    let mut rng = SplitMix64::new(42);
    let actors: Vec<String> = (0..3000)
        .map(|i| match i % 3 {
            0 => format!("acct:{:07}", i * 7 + rng.index(7)),
            1 => format!("node:{:016x}", rng.next_u64()),
            _ => format!("user/{}-{i}", ["ant", "bee", "cat"][rng.index(3)]),
        })
        .collect();
    let mut ids: Vec<u64> = (0..60_000u64).map(|i| 1_000_000_000_000 + 3 * i + (i % 2)).collect();
    rng.shuffle(&mut ids);
    let events: Vec<Value> = ids
        .iter()
        .map(|&id| {
            let actor = (rng.index(3000) * rng.index(3000)) / 3000; // skewed towards low indices
            let units = if rng.index(512) == 0 { 0 } else { rng.next_u64() >> (11 + rng.index(50)) };
            serde_json::json!([id, actor, rng.index(5), units])
        })
        .collect();
    let doc = serde_json::json!({
        "events": events, "actors": actors, "kinds": ["k3", "k1", "k4", "k2", "k0"],
        "schema": "rewarder.inputs.v1", "epoch": "ep-1", "pool_minor": "18446744073709551615",
    });
    let raw = serde_json::to_vec(&doc).unwrap();
    let inputs = Inputs::parse(&raw, &Limits::UNBOUNDED).unwrap();
    assert_eq!(summary(&inputs), naive_summary(&doc));
    let limited = Inputs::parse(&raw, &Limits { actors_max: 3000, events_max: 59_999 }).unwrap_err();
    assert_eq!(limited.code().as_str(), "limit_exceeded");
    assert_eq!(limited.details()["field"], "events");
    let limited = Inputs::parse(&raw, &Limits { actors_max: 2999, events_max: 60_000 }).unwrap_err();
    assert_eq!(limited.details()["field"], "actors");
}
