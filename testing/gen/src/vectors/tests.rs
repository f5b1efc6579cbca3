use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::*;

const MAX_SAFE: u64 = (1 << 53) - 1;

fn decimal(v: &Value) -> u64 {
    let s = v.as_str().expect("amount is a string");
    assert!(s == "0" || (!s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit())), "{s}");
    s.parse().expect("amount fits u64")
}

fn int(v: &Value, max: u64) -> u64 {
    let n = v.as_u64().unwrap_or_else(|| panic!("not a JSON unsigned integer: {v}"));
    assert!(n <= max, "{n} > {max}");
    n
}

fn kind_name_ok(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.:-".contains(&b))
}

/// The document checked field by field against CALCULUS.md §1.1 with plain serde_json.
struct Checked {
    kinds: Vec<String>,
    actors: Vec<String>,
    /// `(event_id, actor_index, kind_index, units)`
    events: Vec<[u64; 4]>,
}

fn check_inputs(raw: &[u8], epoch: &str) -> Checked {
    let doc: Value = serde_json::from_slice(raw).expect("inputs are JSON");
    let obj = doc.as_object().expect("top level is an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["actors", "epoch", "events", "kinds", "pool_minor", "schema"]);
    assert_eq!(obj["schema"], "rewarder.inputs.v1");
    assert_eq!(obj["epoch"], epoch);
    assert!(is_valid_epoch(obj["epoch"].as_str().unwrap()));
    assert_eq!(decimal(&obj["pool_minor"]), POOL_MINOR);

    let kinds: Vec<String> =
        obj["kinds"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
    assert!((1..=256).contains(&kinds.len()));
    assert!(kinds.iter().all(|k| kind_name_ok(k)));
    assert_eq!(kinds.iter().collect::<HashSet<_>>().len(), kinds.len(), "kinds unique");

    let actors: Vec<String> =
        obj["actors"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect();
    for a in &actors {
        assert!((1..=128).contains(&a.len()), "actor length {a:?}");
        assert!(a.bytes().all(|b| (0x21..=0x7E).contains(&b)), "actor bytes {a:?}");
    }
    assert_eq!(actors.iter().collect::<HashSet<_>>().len(), actors.len(), "actors unique");

    let mut seen = HashSet::new();
    let events: Vec<[u64; 4]> = obj["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let e = e.as_array().expect("event is an array");
            assert_eq!(e.len(), 4);
            let ev = [
                int(&e[0], MAX_SAFE),
                int(&e[1], actors.len() as u64 - 1),
                int(&e[2], kinds.len() as u64 - 1),
                int(&e[3], MAX_SAFE),
            ];
            assert!(seen.insert(ev[0]), "duplicate event id {}", ev[0]);
            ev
        })
        .collect();
    Checked { kinds, actors, events }
}

fn check_policy(raw: &[u8]) {
    let doc: Value = serde_json::from_slice(raw).expect("policy is JSON");
    let obj = doc.as_object().unwrap();
    for k in obj.keys() {
        assert!(
            ["schema", "policy_id", "weights", "caps", "actor_cap_bps", "min_payout_minor", "max_pool_minor"]
                .contains(&k.as_str()),
            "unknown field {k}"
        );
    }
    assert_eq!(obj["schema"], "rewarder.policy.v1");
    let id = obj["policy_id"].as_str().unwrap();
    assert!(
        (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    );
    let weights = obj["weights"].as_object().unwrap();
    assert!((1..=256).contains(&weights.len()));
    for (k, w) in weights {
        assert!(kind_name_ok(k));
        int(w, 1_000_000);
    }
    for k in &KINDS {
        assert_eq!(weights[k.name], k.weight, "weight of {}", k.name);
    }
    assert!(weights.contains_key(UNUSED_KIND));
    assert!(!KINDS.iter().any(|k| k.name == UNUSED_KIND));
    let caps = obj["caps"].as_object().unwrap();
    assert_eq!(caps.len(), 2);
    for (k, c) in caps {
        assert!(kind_name_ok(k));
        int(c, MAX_SAFE);
    }
    assert_eq!(int(&obj["actor_cap_bps"], 10_000), 200);
    assert_eq!(decimal(&obj["min_payout_minor"]), 100);
    let max_pool = decimal(&obj["max_pool_minor"]);
    assert!(max_pool < POOL_MINOR);
}

#[test]
fn scale_parse_display_counts() {
    for s in Scale::ALL {
        assert_eq!(s.to_string().parse::<Scale>(), Ok(s));
        assert_eq!(s.to_string().to_lowercase().parse::<Scale>(), Ok(s));
        assert_eq!(s.events(), s.actors() * 10);
    }
    assert_eq!((Scale::S.actors(), Scale::S.events()), (1_000, 10_000));
    assert_eq!((Scale::M.actors(), Scale::M.events()), (10_000, 100_000));
    assert_eq!((Scale::L.actors(), Scale::L.events()), (50_000, 500_000));
    let err = "X".parse::<Scale>().unwrap_err();
    assert!(err.to_string().contains("expected S, M or L"));
    assert!("".parse::<Scale>().is_err());
    assert!("SM".parse::<Scale>().is_err());
}

#[test]
fn epoch_labels() {
    assert!(is_valid_epoch("demo"));
    assert!(is_valid_epoch("2026-11-29"));
    assert!(is_valid_epoch("a.b_c:d-E9"));
    assert!(is_valid_epoch(&"x".repeat(128)));
    assert!(!is_valid_epoch(""));
    assert!(!is_valid_epoch(&"x".repeat(129)));
    assert!(!is_valid_epoch("with space"));
    assert!(!is_valid_epoch("slash/no"));
    assert!(!is_valid_epoch("é"));
}

#[test]
#[should_panic(expected = "invalid epoch label")]
fn generate_rejects_a_bad_epoch() {
    let _ = generate(Scale::S, "bad epoch", 0);
}

#[test]
fn deterministic_for_the_same_arguments() {
    assert_eq!(generate(Scale::S, "demo", 0), generate(Scale::S, "demo", 0));
    assert_eq!(generate(Scale::M, "2026-11-29", 42), generate(Scale::M, "2026-11-29", 42));
}

#[test]
fn seed_and_epoch_change_the_inputs_not_the_policy() {
    let (a, pa) = generate(Scale::S, "demo", 0);
    let (b, pb) = generate(Scale::S, "demo", 1);
    let (c, pc) = generate(Scale::S, "demo2", 0);
    assert_ne!(a, b);
    assert_ne!(a, c);
    assert_eq!(pa, pb);
    assert_eq!(pa, pc);
}

/// Golden digest of the bytes: fails if the output ever changes (a new format needs a new
/// generator version, not a silent change).
#[test]
fn output_is_pinned() {
    fn fnv(b: &[u8]) -> u64 {
        b.iter().fold(0xCBF2_9CE4_8422_2325, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x100_0000_01B3))
    }
    let (inputs, policy) = generate(Scale::S, "demo", 0);
    assert_eq!(
        policy,
        br#"{"schema":"rewarder.policy.v1","policy_id":"perf-v1","weights":{"bytes_served":1,"uptime_s":10000,"storage_gb_h":20000,"requests":1000,"egress_bytes":1,"relay_ms":200,"gpu_s":10000},"caps":{"uptime_s":86400,"storage_gb_h":10000},"actor_cap_bps":200,"min_payout_minor":"100","max_pool_minor":"4800000000000"}"#
    );
    assert_eq!((inputs.len(), fnv(&inputs)), (296_710, 16_843_555_908_589_073_340));
}

#[test]
fn valid_documents_with_exact_counts() {
    for (scale, epoch, seed) in [(Scale::S, "demo", 0), (Scale::S, "e:1", 9), (Scale::M, "2026-11-29", 3)] {
        let (inputs, policy) = generate(scale, epoch, seed);
        let doc = check_inputs(&inputs, epoch);
        assert_eq!(doc.actors.len(), scale.actors());
        assert_eq!(doc.events.len(), scale.events());
        assert_eq!(doc.kinds, KINDS.iter().map(|k| k.name).collect::<Vec<_>>());
        check_policy(&policy);
    }
}

#[test]
fn large_scale_counts_and_size() {
    let (inputs, _) = generate(Scale::L, "demo", 0);
    assert!((12_000_000..=20_000_000).contains(&inputs.len()), "L size {}", inputs.len());
    let doc = check_inputs(&inputs, "demo");
    assert_eq!(doc.actors.len(), 50_000);
    assert_eq!(doc.events.len(), 500_000);
}

#[test]
fn compact_single_line_json() {
    let (inputs, policy) = generate(Scale::S, "demo", 5);
    for doc in [&inputs, &policy] {
        assert!(!doc.iter().any(|b| b.is_ascii_whitespace()));
    }
}

#[test]
fn realistic_shape() {
    let (inputs, _) = generate(Scale::M, "demo", 11);
    let doc = check_inputs(&inputs, "demo");

    // Event ids are not in ascending order, and every kind and a few zero-unit events occur.
    assert!(doc.events.windows(2).filter(|w| w[0][0] < w[1][0]).count() < doc.events.len() * 3 / 5);
    let mut per_kind = [0usize; KINDS.len()];
    for e in &doc.events {
        per_kind[e[2] as usize] += 1;
    }
    assert!(per_kind.iter().all(|&n| n > 0));
    assert!(doc.events.iter().any(|e| e[3] == 0));

    // Skew: the top 1% of actors get 20–45% of the events.
    let mut per_actor = vec![0usize; doc.actors.len()];
    for e in &doc.events {
        per_actor[e[1] as usize] += 1;
    }
    let mut sorted = per_actor.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let top: usize = sorted[..doc.actors.len() / 100].iter().sum();
    let share = top * 100 / doc.events.len();
    assert!((20..=45).contains(&share), "top 1% share {share}%");
    // The heavy actors are not bunched at the start of the array.
    let heaviest = (0..per_actor.len()).max_by_key(|&i| per_actor[i]).unwrap();
    assert_ne!(heaviest, 0);

    // The actors array is in no particular order.
    let ascending = doc.actors.windows(2).filter(|w| w[0] < w[1]).count();
    assert!((30..=70).contains(&(ascending * 100 / doc.actors.len())), "{ascending}");

    // Several id shapes, none too long.
    for prefix in ["acct:", "node:", "did:key:z6Mk", "user/", "org:"] {
        assert!(doc.actors.iter().any(|a| a.starts_with(prefix)), "{prefix}");
    }
    assert!(doc.actors.iter().any(|a| a.contains('@')));
    assert!(doc.actors.iter().any(|a| a.len() > 90));
}

#[test]
fn caps_and_actor_cap_bind_for_heavy_actors() {
    for scale in Scale::ALL {
        let (inputs, _) = generate(scale, "demo", 0);
        let doc = check_inputs(&inputs, "demo");
        let mut usage: HashMap<(u64, u64), u128> = HashMap::new();
        for e in &doc.events {
            *usage.entry((e[1], e[2])).or_default() += u128::from(e[3]);
        }
        let mut score = vec![0u128; doc.actors.len()];
        let mut capped = [0usize; KINDS.len()];
        for (&(a, k), &u) in &usage {
            let spec = KINDS[k as usize];
            let c = match spec.cap {
                Some(cap) if u > u128::from(cap) => {
                    capped[k as usize] += 1;
                    u128::from(cap)
                }
                _ => u,
            };
            score[a as usize] += u128::from(spec.weight) * c;
        }
        for (k, spec) in KINDS.iter().enumerate() {
            if spec.cap.is_some() {
                assert!(capped[k] > 0, "{scale}: cap on {} never binds", spec.name);
            }
        }
        let total: u128 = score.iter().sum();
        let over = score.iter().filter(|&&s| s * 10_000 > total * u128::from(ACTOR_CAP_BPS)).count();
        assert!(over >= 1, "{scale}: actor cap never binds");
        assert!(over * 10 < doc.actors.len(), "{scale}: actor cap binds for too many ({over})");
    }
}
