//! The policy what-if (`rewarder_core::compare`, API.md §1.3) through the public API: its
//! properties over generated epochs and policy pairs, the golden comparisons of
//! `testing/compare/` (hand-checked summaries), and the HTML report's inertness with hostile
//! actor ids.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use rewarder_core::compare::{self, Comparison, Ratio};
use rewarder_core::{Inputs, Limits, Policy, Run};
use serde_json::Value;

use rewarder_gen::golden;

const TENANT: &str = "default";

fn inputs(raw: &str) -> Arc<Inputs> {
    Arc::new(Inputs::parse(raw.as_bytes(), &Limits::UNBOUNDED).unwrap())
}

fn policy(raw: &str) -> Policy {
    Policy::parse(raw.as_bytes()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Generated epochs and policies

/// An epoch of `actors` (ids of printable ASCII, markup characters included) with `events`
/// `(actor, kind, units)` over two kinds.
fn epoch_document(pool: u64, actors: &[String], events: &[(usize, usize, u64)]) -> String {
    let events: Vec<String> =
        events.iter().enumerate().map(|(i, (a, k, u))| format!("[{i},{a},{k},{u}]")).collect();
    format!(
        r#"{{"schema":"rewarder.inputs.v1","epoch":"e","pool_minor":"{pool}","kinds":["k","j"],"actors":{},"events":[{}]}}"#,
        serde_json::to_string(actors).unwrap(),
        events.join(",")
    )
}

fn policy_document(
    id: &str,
    weights: (u32, u32),
    cap: Option<u64>,
    bps: Option<u16>,
    min_payout: u64,
    max_pool: Option<u64>,
) -> String {
    let mut text = format!(
        r#"{{"schema":"rewarder.policy.v1","policy_id":"{id}","weights":{{"k":{},"j":{}}},"min_payout_minor":"{min_payout}""#,
        weights.0, weights.1
    );
    if let Some(cap) = cap {
        text.push_str(&format!(r#","caps":{{"k":{cap}}}"#));
    }
    if let Some(bps) = bps {
        text.push_str(&format!(r#","actor_cap_bps":{bps}"#));
    }
    if let Some(max) = max_pool {
        text.push_str(&format!(r#","max_pool_minor":"{max}""#));
    }
    text.push('}');
    text
}

fn actor_ids() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::btree_set("[!-~]{1,6}", 0..24).prop_map(|set| set.into_iter().collect())
}

prop_compose! {
    fn epoch()(actors in actor_ids(), pool in prop_oneof![Just(0u64), 1u64..1000, 1u64..=u64::MAX])
        (events in proptest::collection::vec((0..actors.len().max(1), 0usize..2, 0u64..5000), 0..60),
         actors in Just(actors), pool in Just(pool)) -> String {
        let events: Vec<_> = if actors.is_empty() { Vec::new() } else { events };
        epoch_document(pool, &actors, &events)
    }
}

prop_compose! {
    fn a_policy(id: &'static str)(
        weights in (0u32..5, 0u32..1_000_000),
        cap in proptest::option::of(0u64..3000),
        bps in proptest::option::of(1u16..=10_000),
        min_payout in prop_oneof![Just(0u64), 0u64..100, 0u64..10_000_000],
        max_pool in proptest::option::of(0u64..=u64::MAX),
    ) -> String {
        policy_document(id, weights, cap, bps, min_payout, max_pool)
    }
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

/// `Σ_i Σ_j |x_i − x_j| / (2 n Σx)` by the definition, pair by pair: the oracle of the
/// one-pass computation.
fn gini_by_pairs(amounts: &[u64]) -> Ratio {
    let n = amounts.len() as u128;
    let total: u128 = amounts.iter().map(|&x| u128::from(x)).sum();
    let pairs: u128 =
        amounts.iter().flat_map(|&x| amounts.iter().map(move |&y| u128::from(x.abs_diff(y)))).sum();
    Ratio::new(pairs, 2 * n * total)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_policy_compared_with_itself_moves_nobody(e in epoch(), p in a_policy("p")) {
        let (inputs, policy) = (inputs(&e), policy(&p));
        let c = Comparison::compute(&inputs, &policy, &policy, TENANT).unwrap();
        prop_assert!(c.movers(compare::TOP_MAX).is_empty());
        prop_assert_eq!((c.gainers(), c.losers(), c.payout_delta()), (0, 0, 0));
        prop_assert!(c.rows().all(|r| r.delta() == 0 && r.capped_a == r.capped_b && r.dust_a == r.dust_b));
        prop_assert_eq!(c.a().summary(), c.b().summary());
        prop_assert_eq!(c.a().run().manifest_digest(), c.b().run().manifest_digest());
        let body: Value = serde_json::from_slice(&compare::json::render(&c, 100)).unwrap();
        prop_assert_eq!(&body["movers"], &Value::Array(Vec::new()));
        prop_assert_eq!(&body["change"]["gini"], "0.000000");
    }

    #[test]
    fn deltas_sum_to_the_change_of_the_payout_total(e in epoch(), pa in a_policy("a"), pb in a_policy("b")) {
        let inputs = inputs(&e);
        let c = Comparison::compute(&inputs, &policy(&pa), &policy(&pb), TENANT).unwrap();
        let sum: i128 = c.rows().map(|r| r.delta()).sum();
        let totals = |s: &compare::Side| i128::from(s.summary().payout_total_minor);
        prop_assert_eq!(sum, totals(c.b()) - totals(c.a()));
        prop_assert_eq!(sum, c.payout_delta());
        let movers: i128 = c.movers(compare::TOP_MAX).iter().map(|r| r.delta()).sum();
        prop_assert_eq!(movers, sum);
        prop_assert_eq!(c.rows().len(), inputs.actor_count());
    }

    #[test]
    fn each_side_is_the_run_a_plain_compute_makes(e in epoch(), pa in a_policy("a"), pb in a_policy("b")) {
        let inputs = inputs(&e);
        let (a, b) = (policy(&pa), policy(&pb));
        let c = Comparison::compute(&inputs, &a, &b, TENANT).unwrap();
        for (side, policy) in [(c.a(), &a), (c.b(), &b)] {
            let plain = Run::compute(&inputs, policy, TENANT).unwrap();
            prop_assert_eq!(side.run().manifest(), plain.manifest());
            prop_assert_eq!(side.run().manifest_digest(), plain.manifest_digest());
            prop_assert!(side.run().allocations().eq(plain.allocations()));
            prop_assert_eq!(side.summary().payees, plain.manifest().payees);
        }
    }

    #[test]
    fn summaries_follow_their_definitions(e in epoch(), pa in a_policy("a"), pb in a_policy("b")) {
        let inputs = inputs(&e);
        let (a, b) = (policy(&pa), policy(&pb));
        let c = Comparison::compute(&inputs, &a, &b, TENANT).unwrap();
        let n = inputs.actor_count();
        for (side, policy, amount) in [
            (c.a(), &a, (|r: &compare::Row| r.amount_a) as fn(&compare::Row) -> u64),
            (c.b(), &b, |r: &compare::Row| r.amount_b),
        ] {
            let mut population: Vec<u64> = c.rows().map(|r| amount(&r)).collect();
            population.sort_unstable();
            let s = side.summary();
            prop_assert_eq!(s.gini, gini_by_pairs(&population));
            prop_assert!(s.gini.num() < s.gini.den() || s.gini.num() == 0);
            let total: u128 = population.iter().map(|&x| u128::from(x)).sum();
            let top = |k: usize| Ratio::new(population[n - k.min(n)..].iter().map(|&x| u128::from(x)).sum(), total);
            prop_assert_eq!(s.top1_share, top(n.div_ceil(100)));
            prop_assert_eq!(s.top10_share, top(n.div_ceil(10)));
            // The ceiling allocates exactly M to those it bound (then paid, or dust when M is
            // under the threshold); dust is under the threshold, unpaid.
            let ceiling = side.run().outcome().ceiling_minor;
            for i in &side.bounds().ceiling {
                let paid = population_amount(&c, side, *i as usize);
                let dust = side.bounds().dust.contains(i);
                prop_assert!(Some(paid) == ceiling || (paid == 0 && (dust || ceiling == Some(0))));
            }
            for i in &side.bounds().dust {
                prop_assert_eq!(population_amount(&c, side, *i as usize), 0);
                prop_assert!(policy.min_payout_minor() > 1);
            }
            prop_assert_eq!(s.capped, side.bounds().ceiling.len() as u64);
            // Kind-capped: more units than a weighed kind's cap (from the inputs' own usage).
            let kinds = inputs.kinds();
            let lowered: Vec<u32> = (0..n)
                .filter(|&a| {
                    inputs.usage(a).iter().any(|u| {
                        let kind = &kinds[usize::from(u.kind)];
                        policy.cap(kind).is_some_and(|cap| u.units > u128::from(cap)) && policy.weight(kind) > 0
                    })
                })
                .map(|a| a as u32)
                .collect();
            prop_assert_eq!(&side.bounds().kind_capped, &lowered);
            prop_assert_eq!(s.kind_capped, lowered.len() as u64);
        }
    }

    #[test]
    fn the_gini_of_equal_payouts_is_zero(n in 1usize..40, units in 1u64..1000, pool in 1u64..1_000_000) {
        // Every actor the same usage: with the pool a multiple of n every payout is equal.
        let actors: Vec<String> = (0..n).map(|i| format!("acct:{i:03}")).collect();
        let events: Vec<_> = (0..n).map(|a| (a, 0, units)).collect();
        let e = epoch_document(pool * n as u64, &actors, &events);
        let p = policy_document("eq", (1, 0), None, None, 0, None);
        let c = Comparison::compute(&inputs(&e), &policy(&p), &policy(&p), TENANT).unwrap();
        prop_assert!(c.rows().all(|r| r.amount_a == pool));
        prop_assert_eq!(c.a().summary().gini, Ratio::new(0, 1));
        prop_assert_eq!(c.a().summary().gini.to_string(), "0.000000");
    }

    #[test]
    fn movers_are_ranked_by_absolute_delta_then_actor_and_bounded_by_top(
        e in epoch(), pa in a_policy("a"), pb in a_policy("b"), top in 0usize..30,
    ) {
        let c = Comparison::compute(&inputs(&e), &policy(&pa), &policy(&pb), TENANT).unwrap();
        let all = c.movers(compare::TOP_MAX);
        prop_assert_eq!(all.len(), c.gainers() + c.losers());
        let key = |r: &compare::Row| (std::cmp::Reverse(r.delta().unsigned_abs()), r.actor.as_bytes().to_vec());
        prop_assert!(all.windows(2).all(|w| key(&w[0]) < key(&w[1])));
        prop_assert_eq!(c.movers(top), all[..top.min(all.len())].to_vec());
        prop_assert!(c.top_gainers(top).iter().all(|r| r.delta() > 0));
        prop_assert!(c.top_losers(top).iter().all(|r| r.delta() < 0));
        for r in c.rows() {
            prop_assert_eq!(c.row(r.actor), Some(r));
        }
    }
}

/// The amount of actor `i` on `side` (a or b) of `c`.
fn population_amount(c: &Comparison, side: &compare::Side, i: usize) -> u64 {
    let row = c.rows().nth(i).unwrap();
    if std::ptr::eq(side, c.a()) { row.amount_a } else { row.amount_b }
}

// ---------------------------------------------------------------------------------------------
// Golden comparisons (testing/compare, hand-checked in its README)

/// `testing/compare/`, beside the golden vectors (it adds nothing to `testing/vectors/`).
fn comparisons() -> PathBuf {
    golden::vectors().join("../compare")
}

fn golden_case(name: &str) -> (Comparison, Value, Value) {
    let vector = golden::vectors().join(name);
    let read = |dir: &Path, file: &str| std::fs::read(dir.join(file)).unwrap();
    let inputs = Arc::new(Inputs::parse(&read(&vector, "inputs.json"), &Limits::UNBOUNDED).unwrap());
    let a = Policy::parse(&read(&vector, "policy.json")).unwrap();
    let b = Policy::parse(&read(&comparisons().join(name), "policy-b.json")).unwrap();
    let c = Comparison::compute(&inputs, &a, &b, TENANT).unwrap();
    let expected = serde_json::from_slice(&read(&comparisons().join(name), "expected.json")).unwrap();
    let vector_expected = serde_json::from_slice(&read(&vector, "expected.json")).unwrap();
    (c, expected, vector_expected)
}

fn check_golden(name: &str) -> Comparison {
    let (c, expected, vector) = golden_case(name);
    let body: Value = serde_json::from_slice(&compare::json::render(&c, compare::TOP_DEFAULT)).unwrap();
    assert_eq!(body, expected, "{name}: the comparison differs from testing/compare/{name}/expected.json");
    assert_eq!(body["a"]["manifest"], vector["default"]["manifest"], "{name}: side A is the vector's run");
    assert_eq!(body["a"]["manifest_digest"], vector["default"]["manifest_digest"]);
    c
}

#[test]
fn golden_waterfill_against_a_wider_ceiling() {
    let c = check_golden("waterfill");
    let (a, b) = (c.a().summary(), c.b().summary());
    assert_eq!((a.payees, a.payout_total_minor, a.residual_minor), (4, 999_944, 56));
    assert_eq!((b.payees, b.payout_total_minor, b.residual_minor), (5, 1_000_000, 0));
    assert_eq!((a.gini, a.gini.to_string().as_str()), (Ratio::new(370_011, 1_249_930), "0.296025"));
    assert_eq!((b.gini, b.gini.to_string().as_str()), (Ratio::new(44_441, 100_000), "0.444410"));
    assert_eq!(a.gini.change_to(&b.gini), "+0.148385");
    assert_eq!((a.top1_share.to_string(), b.top10_share.to_string()), ("0.300017".into(), "0.500000".into()));
    assert_eq!((a.capped, a.dust, b.capped, b.dust), (2, 1, 1, 0));
    let movers: Vec<(&str, i128)> = c.movers(100).iter().map(|r| (r.actor, r.delta())).collect();
    assert_eq!(movers, [("whale", 200_000), ("m1", -77_795), ("m2", -73_312), ("m3", -48_876), ("s1", 39)]);
    let s1 = c.row("s1").unwrap();
    assert!(s1.dust_a && !s1.dust_b && s1.amount_b == 39);
}

#[test]
fn golden_ties_against_a_ceiling_that_binds_everyone() {
    let c = check_golden("ties");
    let (a, b) = (c.a().summary(), c.b().summary());
    assert_eq!((a.gini.to_string(), b.gini.to_string()), ("0.066667".into(), "0.000000".into()));
    assert_eq!(a.gini, Ratio::new(1, 15));
    assert_eq!((a.top1_share.to_string(), b.top1_share.to_string()), ("0.400000".into(), "0.333333".into()));
    assert_eq!((a.capped, b.capped, b.residual_minor), (0, 3, 1));
    let movers: Vec<(&str, i128, bool)> =
        c.movers(100).iter().map(|r| (r.actor, r.delta(), r.capped_b)).collect();
    assert_eq!(movers, [("a", -1, true)]);
    assert_eq!(c.capped(100).len(), 3);
}

#[test]
fn every_golden_vector_compared_with_its_own_policy_moves_nobody() {
    for dir in golden::cases() {
        let read = |file: &str| std::fs::read(dir.join(file)).unwrap();
        let inputs = Arc::new(Inputs::parse(&read("inputs.json"), &Limits::UNBOUNDED).unwrap());
        let p = Policy::parse(&read("policy.json")).unwrap();
        let expected: Value = serde_json::from_slice(&read("expected.json")).unwrap();
        let c = Comparison::compute(&inputs, &p, &p, TENANT).unwrap();
        assert!(c.movers(compare::TOP_MAX).is_empty(), "{}", dir.display());
        assert_eq!(c.a().summary(), c.b().summary(), "{}", dir.display());
        assert_eq!(
            c.b().run().manifest_digest(),
            expected["default"]["manifest_digest"],
            "{}",
            dir.display()
        );
    }
}

#[test]
fn top_bounds_the_movers_listed() {
    let (c, _, _) = golden_case("waterfill");
    let body: Value = serde_json::from_slice(&compare::json::render(&c, 2)).unwrap();
    assert_eq!(body["top"], 2);
    let actors: Vec<&str> =
        body["movers"].as_array().unwrap().iter().map(|m| m["actor"].as_str().unwrap()).collect();
    assert_eq!(actors, ["whale", "m1"]);
    assert_eq!(body["change"]["movers"], 5);
}

// ---------------------------------------------------------------------------------------------
// The HTML report with hostile actor ids

/// Elements the report may contain; anything else (a `<script>`, an `<img>`, a second `<svg>`
/// smuggled in by an id) fails the test.
const ELEMENTS: [&str; 25] = [
    "!DOCTYPE",
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "h1",
    "h2",
    "p",
    "span",
    "code",
    "sub",
    "table",
    "tr",
    "th",
    "td",
    "div",
    "figure",
    "figcaption",
    "svg",
    "rect",
    "line",
    "text",
    "polyline",
];

const HOSTILE: [&str; 6] = [
    "<script>alert(1)</script>",
    "\"onmouseover=alert(1)//",
    "'><img/src=x/onerror=alert(1)>",
    "</svg><svg/onload=alert(1)>",
    "</code></td></tr></table><script>",
    "&lt;already&amp;escaped",
];

/// The tag names of every `<…` in `html`, and every attribute name.
fn tags_and_attributes(html: &str) -> (Vec<String>, Vec<String>) {
    let (mut tags, mut attributes) = (Vec::new(), Vec::new());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let end = rest.find('>').expect("every tag closes");
        let tag = &rest[..end];
        let tag = tag.strip_prefix('/').unwrap_or(tag);
        let name: String = tag.chars().take_while(|c| !c.is_whitespace() && *c != '/').collect();
        tags.push(name);
        // Attribute names: the words before each `=` outside quoted values.
        let mut in_quote = false;
        let mut word = String::new();
        for c in tag.chars() {
            match c {
                '"' => in_quote = !in_quote,
                '=' if !in_quote => attributes.push(std::mem::take(&mut word)),
                c if c.is_whitespace() && !in_quote => word.clear(),
                c if !in_quote => word.push(c),
                _ => {}
            }
        }
        rest = &rest[end + 1..];
    }
    (tags, attributes)
}

#[test]
fn the_report_stays_inert_with_hostile_actor_ids() {
    let actors: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    let events: Vec<_> = (0..actors.len()).map(|a| (a, 0, 10 + 90 * a as u64)).collect();
    let e = epoch_document(1_000_000, &actors, &events);
    let a = policy(&policy_document("before", (1, 0), None, None, 0, None));
    let b = policy(&policy_document("after", (1, 0), None, Some(2500), 0, None));
    let c = Comparison::compute(&inputs(&e), &a, &b, TENANT).unwrap();
    assert_eq!(c.gainers() + c.losers(), HOSTILE.len(), "every hostile id is a mover, in every table");
    let html = compare::html::render(&c, 100);

    for id in HOSTILE {
        assert!(!html.contains(id), "{id:?} appears unescaped");
        assert!(html.contains(&compare::html::escape(id)), "{id:?} is missing");
    }
    let (tags, attributes) = tags_and_attributes(&html);
    for tag in &tags {
        assert!(ELEMENTS.contains(&tag.as_str()), "unexpected element <{tag}>");
    }
    for attribute in &attributes {
        assert!(!attribute.to_ascii_lowercase().starts_with("on"), "event handler attribute {attribute}");
    }
    assert_eq!(tags.iter().filter(|t| *t == "style").count(), 2, "one stylesheet, opened and closed");
    assert!(!html.contains("javascript:") && !html.contains("url("), "nothing to load or run");
    assert!(html.contains(&format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">",
        compare::html::content_security_policy()
    )));
}

#[test]
fn the_report_shows_the_digests_and_every_section() {
    let (c, expected, _) = golden_case("waterfill");
    let html = compare::html::render(&c, 100);
    for digest in [&expected["a"]["manifest_digest"], &expected["b"]["manifest_digest"]] {
        assert!(html.contains(digest.as_str().unwrap()), "{digest} missing");
    }
    for heading in [
        "Summary",
        "Distribution and concentration",
        "Top gainers",
        "Top losers",
        "Capped actors",
        "Manifests",
    ] {
        assert!(html.contains(&format!("<h2>{heading}")), "{heading} missing");
    }
    assert!(html.contains("aria-label=\"Payout distribution under A and B\""));
    assert!(html.contains("aria-label=\"Lorenz curves under A and B\""));
    assert!(html.contains(
        "<td class=\"n\">0.296025</td><td class=\"n\">0.444410</td><td class=\"n\">+0.148385</td>"
    ));
    assert_eq!(html, compare::html::render(&c, 100), "the same comparison renders the same bytes");
}

#[test]
fn an_empty_epoch_renders_without_charts_to_draw() {
    let e = epoch_document(100, &[], &[]);
    let p = policy(&policy_document("p", (1, 1), None, None, 1, None));
    let c = Comparison::compute(&inputs(&e), &p, &p, TENANT).unwrap();
    assert_eq!(c.population(), 0);
    assert_eq!(c.a().summary().gini.to_string(), "0.000000");
    assert_eq!(c.a().summary().top1_share.to_string(), "0.000000");
    let html = compare::html::render(&c, 100);
    assert!(html.contains("Nothing is paid under either policy."));
    assert!(!html.contains("<polyline"));
}
