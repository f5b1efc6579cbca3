//! Property tests of rewarder-core against `spec/CALCULUS.md`, through the public API only.
//!
//! 1. A spec-literal reference of §2 — its own JSON reader and document rules, the naive
//!    repeat-until-`X`-empty water-filling over the set `A`, a full sort for the largest
//!    remainder, exact 256-bit arithmetic — computed from the raw bytes agrees with
//!    `Run::compute` on every payee, total and residual; the §4 commitments (content ids,
//!    Merkle root, run id, manifest digest) are recomputed independently as well.
//! 2. The invariants of §3 hold on every run.
//! 3. Permuting `actors` (indices remapped), `events` (and `kinds`), or re-spacing and
//!    re-escaping the document changes nothing but `inputs_cid` and what derives from it.
//! 4. Every payee's Merkle proof verifies against the manifest root and fails once tampered
//!    (amount ±1, another id — also one grown past 128 bytes —, any bit of any sibling hash,
//!    a side swapped, a step dropped); a non-payee is `unknown_actor`.
//! 5. Ed25519 and ML-DSA-65 signatures verify and fail after a one-bit change of the digest,
//!    the signature or the key (positions sampled: a debug-build verification takes 20–30 ms).
//! 6. The parsers never panic on arbitrary or mutated bytes, refuse with 400 or 422 only, and
//!    accept exactly what the reference reading of §1 accepts (400 exactly when it is not JSON).
//!
//! Generated documents are valid by construction: 0–40 actors (printable ASCII, `"` and `\`
//! included, clustered around shared prefixes), 1–6 kinds, 0–200 events (random, shared
//! "profiles" that tie scores, or geometric spreads that make the water-filling take many
//! rounds), pools and amounts at 0, 1, small and near 2^64−1, units near 2^53−1, field order,
//! whitespace and string escapes varied.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use ethnum::U256;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use rewarder_core::{Code, Error, Inputs, Limits, Policy, Run, SigningKeys, merkle, sign};
use rewarder_gen::rng::SplitMix64;

const TENANT: &str = "default";
const INT_MAX: u64 = (1 << 53) - 1;
const JSON_DEPTH_MAX: usize = 128;

/// `cases` per property, times `REWARDER_PROPERTIES_SCALE` when set (for a longer hunt).
fn config(cases: u32) -> ProptestConfig {
    let scale =
        std::env::var("REWARDER_PROPERTIES_SCALE").ok().and_then(|s| s.parse::<u32>().ok()).unwrap_or(1);
    // No regression file (this file is all the suite may add): failing cases found are
    // pinned as plain tests instead.
    ProptestConfig {
        cases: cases.saturating_mul(scale.max(1)),
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

// ======================================================================================
// Reference: an independent JSON reader (RFC 8259; strings decoded, numbers kept as text)
// ======================================================================================

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    /// The number exactly as written.
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    /// Members in document order, repeated keys kept.
    Obj(Vec<(String, Json)>),
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    /// A value; `depth` containers are open around it.
    fn value(&mut self, depth: usize) -> Option<Json> {
        self.ws();
        match self.peek()? {
            b'{' => {
                if depth == JSON_DEPTH_MAX {
                    return None;
                }
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.eat(b'}') {
                    return Some(Json::Obj(members));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    if !self.eat(b':') {
                        return None;
                    }
                    members.push((key, self.value(depth + 1)?));
                    self.ws();
                    if self.eat(b'}') {
                        return Some(Json::Obj(members));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'[' => {
                if depth == JSON_DEPTH_MAX {
                    return None;
                }
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat(b']') {
                    return Some(Json::Arr(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat(b']') {
                        return Some(Json::Arr(items));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'"' => self.string().map(Json::Str),
            b't' => self.literal(b"true", Json::Bool(true)),
            b'f' => self.literal(b"false", Json::Bool(false)),
            b'n' => self.literal(b"null", Json::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], v: Json) -> Option<Json> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Some(v)
        } else {
            None
        }
    }

    fn number(&mut self) -> Option<Json> {
        let start = self.i;
        self.eat(b'-');
        if !self.eat(b'0') {
            if !matches!(self.peek(), Some(b'1'..=b'9')) {
                return None;
            }
            self.digits();
        }
        if self.eat(b'.') && self.digits() == 0 {
            return None;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(Json::Num(String::from_utf8(self.b[start..self.i].to_vec()).ok()?))
    }

    fn hex4(&mut self) -> Option<u32> {
        let s = self.b.get(self.i..self.i + 4)?;
        let mut v = 0;
        for &h in s {
            v = v * 16 + char::from(h).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }

    fn string(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out = Vec::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0C),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = match hi {
                                0xD800..=0xDBFF => {
                                    if !(self.eat(b'\\') && self.eat(b'u')) {
                                        return None;
                                    }
                                    let lo = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&lo) {
                                        return None;
                                    }
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                }
                                0xDC00..=0xDFFF => return None,
                                _ => hi,
                            };
                            out.extend_from_slice(char::from_u32(code)?.encode_utf8(&mut [0; 4]).as_bytes());
                        }
                        _ => return None,
                    }
                }
                0x00..=0x1F => return None,
                _ => out.push(c),
            }
        }
    }
}

/// The one JSON value of `raw` (UTF-8, whitespace around it allowed), or `None`.
fn parse_json(raw: &[u8]) -> Option<Json> {
    std::str::from_utf8(raw).ok()?;
    let mut r = Reader { b: raw, i: 0 };
    let v = r.value(0)?;
    r.ws();
    (r.i == raw.len()).then_some(v)
}

// ======================================================================================
// Reference: the document rules of §1.1 and §1.2
// ======================================================================================

#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// Not JSON: the core must answer 400 `malformed_json`.
    NotJson,
    /// JSON that breaks a rule (named): the core must answer 422.
    Invalid(String),
}

fn invalid(what: &str) -> Refusal {
    Refusal::Invalid(what.to_owned())
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RefInputs {
    epoch: String,
    pool: u64,
    kinds: Vec<String>,
    actors: Vec<String>,
    /// `[event_id, actor_index, kind_index, units]`.
    events: Vec<[u64; 4]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RefPolicy {
    policy_id: String,
    weights: BTreeMap<String, u64>,
    caps: BTreeMap<String, u64>,
    actor_cap_bps: Option<u64>,
    min_payout: u64,
    max_pool: Option<u64>,
}

/// The members of a top-level object: each key known, none twice, every required one present.
fn members<'a>(
    doc: &'a Json,
    required: &[&str],
    optional: &[&str],
) -> Result<BTreeMap<&'a str, &'a Json>, Refusal> {
    let Json::Obj(ms) = doc else { return Err(invalid("top level not an object")) };
    let mut out = BTreeMap::new();
    for (k, v) in ms {
        if !required.contains(&k.as_str()) && !optional.contains(&k.as_str()) {
            return Err(invalid("unknown field"));
        }
        if out.insert(k.as_str(), v).is_some() {
            return Err(invalid("field given twice"));
        }
    }
    if required.iter().any(|r| !out.contains_key(r)) {
        return Err(invalid("required field missing"));
    }
    Ok(out)
}

/// A JSON integer (no sign, fraction or exponent) in `0..=max`.
fn json_uint(v: &Json, max: u64) -> Option<u64> {
    match v {
        Json::Num(s) if s.bytes().all(|b| b.is_ascii_digit()) => s.parse::<u64>().ok().filter(|&x| x <= max),
        _ => None,
    }
}

/// A decimal-string amount: `"0"` or digits without a leading zero, at most 2^64−1.
fn json_amount(v: &Json) -> Option<u64> {
    match v {
        Json::Str(s)
            if !s.is_empty()
                && s.bytes().all(|b| b.is_ascii_digit())
                && (s == "0" || !s.starts_with('0')) =>
        {
            s.parse::<u64>().ok()
        }
        _ => None,
    }
}

fn json_label(v: &Json, len_max: usize) -> Option<String> {
    match v {
        Json::Str(s)
            if (1..=len_max).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b)) =>
        {
            Some(s.clone())
        }
        _ => None,
    }
}

fn is_kind_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.:-".contains(&b))
}

fn is_actor_id(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| (0x21..=0x7E).contains(&b))
}

fn ref_inputs(raw: &[u8]) -> Result<RefInputs, Refusal> {
    let doc = parse_json(raw).ok_or(Refusal::NotJson)?;
    let f = members(&doc, &["schema", "epoch", "pool_minor", "kinds", "actors", "events"], &[])?;
    if *f["schema"] != Json::Str("rewarder.inputs.v1".into()) {
        return Err(invalid("schema"));
    }
    let epoch = json_label(f["epoch"], 128).ok_or_else(|| invalid("epoch"))?;
    let pool = json_amount(f["pool_minor"]).ok_or_else(|| invalid("pool_minor"))?;

    let Json::Arr(ks) = f["kinds"] else { return Err(invalid("kinds")) };
    let mut kinds: Vec<String> = Vec::new();
    for k in ks {
        match k {
            Json::Str(s) if is_kind_name(s) && !kinds.contains(s) => kinds.push(s.clone()),
            _ => return Err(invalid("kinds: bad or repeated name")),
        }
    }
    if kinds.is_empty() || kinds.len() > 256 {
        return Err(invalid("kinds: count"));
    }

    let Json::Arr(xs) = f["actors"] else { return Err(invalid("actors")) };
    let mut actors = Vec::new();
    let mut seen = HashSet::new();
    for a in xs {
        match a {
            Json::Str(s) if is_actor_id(s) => {
                if !seen.insert(s.clone()) {
                    return Err(invalid("duplicate actor"));
                }
                actors.push(s.clone());
            }
            _ => return Err(invalid("bad actor")),
        }
    }

    let Json::Arr(es) = f["events"] else { return Err(invalid("events")) };
    let mut events = Vec::new();
    let mut ids = HashSet::new();
    for e in es {
        let Json::Arr(t) = e else { return Err(invalid("event not an array")) };
        if t.len() != 4 {
            return Err(invalid("event not a 4-tuple"));
        }
        let id = json_uint(&t[0], INT_MAX).ok_or_else(|| invalid("event id"))?;
        let a = json_uint(&t[1], u64::MAX).filter(|&a| a < actors.len() as u64);
        let k = json_uint(&t[2], u64::MAX).filter(|&k| k < kinds.len() as u64);
        let units = json_uint(&t[3], INT_MAX);
        let (Some(a), Some(k), Some(units)) = (a, k, units) else { return Err(invalid("event number")) };
        if !ids.insert(id) {
            return Err(invalid("duplicate event"));
        }
        events.push([id, a, k, units]);
    }
    Ok(RefInputs { epoch, pool, kinds, actors, events })
}

/// A `kind name → integer in 0..=max` map with `1..=entries_max` entries (`0..` for caps).
fn json_kind_map(
    v: &Json,
    max: u64,
    entries: std::ops::RangeInclusive<usize>,
) -> Option<BTreeMap<String, u64>> {
    let Json::Obj(ms) = v else { return None };
    let mut out = BTreeMap::new();
    for (k, x) in ms {
        if !is_kind_name(k) || out.insert(k.clone(), json_uint(x, max)?).is_some() {
            return None;
        }
    }
    entries.contains(&out.len()).then_some(out)
}

fn ref_policy(raw: &[u8]) -> Result<RefPolicy, Refusal> {
    let doc = parse_json(raw).ok_or(Refusal::NotJson)?;
    let f = members(
        &doc,
        &["schema", "policy_id", "weights"],
        &["caps", "actor_cap_bps", "min_payout_minor", "max_pool_minor"],
    )?;
    if *f["schema"] != Json::Str("rewarder.policy.v1".into()) {
        return Err(invalid("schema"));
    }
    let policy_id = json_label(f["policy_id"], 64).ok_or_else(|| invalid("policy_id"))?;
    let weights = json_kind_map(f["weights"], 1_000_000, 1..=256).ok_or_else(|| invalid("weights"))?;
    let caps = match f.get("caps") {
        Some(v) => json_kind_map(v, INT_MAX, 0..=usize::MAX).ok_or_else(|| invalid("caps"))?,
        None => BTreeMap::new(),
    };
    let actor_cap_bps = match f.get("actor_cap_bps") {
        Some(v) => Some(json_uint(v, 10_000).filter(|&b| b >= 1).ok_or_else(|| invalid("actor_cap_bps"))?),
        None => None,
    };
    let min_payout = match f.get("min_payout_minor") {
        Some(v) => json_amount(v).ok_or_else(|| invalid("min_payout_minor"))?,
        None => 1,
    };
    let max_pool = match f.get("max_pool_minor") {
        Some(v) => Some(json_amount(v).ok_or_else(|| invalid("max_pool_minor"))?),
        None => None,
    };
    Ok(RefPolicy { policy_id, weights, caps, actor_cap_bps, min_payout, max_pool })
}

// ======================================================================================
// Reference: the calculus of §2, literally
// ======================================================================================

/// What a run pays: the same shape for the reference and for the core.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Paid {
    pool: u64,
    distributable: u64,
    ceiling: Option<u64>,
    /// `(actor, amount, score)`, ascending by actor id bytes.
    payees: Vec<(String, u64, u128)>,
    total: u64,
    residual: u64,
}

fn sum(xs: impl IntoIterator<Item = U256>) -> U256 {
    xs.into_iter().fold(U256::ZERO, |a, b| a + b)
}

fn narrow64(x: U256) -> u64 {
    assert!(x <= U256::from(u64::MAX), "reference value {x} does not fit 64 bits");
    x.as_u64()
}

fn ref_allocate(i: &RefInputs, p: &RefPolicy) -> Paid {
    let n = i.actors.len();
    // 1. Usage: U[a][k] = Σ units over the events of actor a and kind k.
    let mut usage = vec![vec![U256::ZERO; i.kinds.len()]; n];
    for &[_, a, k, units] in &i.events {
        usage[a as usize][k as usize] += U256::from(units);
    }
    // 2–3. Capped usage and scores: s[a] = Σ_k weights[k] × min(U[a][k], caps[k]).
    let score: Vec<U256> = usage
        .iter()
        .map(|row| {
            sum(i.kinds.iter().zip(row).map(|(name, &u)| {
                let c = p.caps.get(name).map_or(u, |&cap| u.min(U256::from(cap)));
                U256::from(p.weights.get(name).copied().unwrap_or(0)) * c
            }))
        })
        .collect();
    // 4. Distributable pool.
    let pool = U256::from(i.pool);
    let d = p.max_pool.map_or(pool, |m| pool.min(U256::from(m)));
    // 5. Per-actor ceiling.
    let ceiling = p.actor_cap_bps.map(|bps| d * U256::from(bps) / U256::from(10_000u32));

    let mut alloc = vec![U256::ZERO; n];
    let mut a_set: BTreeSet<usize> = (0..n).filter(|&a| score[a] > U256::ZERO).collect();
    let mut r = d;
    // 6. Water-filling: repeat until X is empty (or A is).
    if let Some(m) = ceiling {
        while !a_set.is_empty() {
            let s = sum(a_set.iter().map(|&a| score[a]));
            let x: Vec<usize> = a_set.iter().copied().filter(|&a| r * score[a] > m * s).collect();
            if x.is_empty() {
                break;
            }
            for a in &x {
                alloc[*a] = m;
                a_set.remove(a);
            }
            r -= m * U256::from(x.len() as u64);
        }
    }
    // 7. Largest remainder over what is left.
    if !a_set.is_empty() {
        let s = sum(a_set.iter().map(|&a| score[a]));
        let mut rows: Vec<(usize, U256, U256)> =
            a_set.iter().map(|&a| (a, r * score[a] / s, r * score[a] % s)).collect();
        let l = r - sum(rows.iter().map(|row| row.1));
        rows.sort_by(|x, y| {
            y.2.cmp(&x.2).then_with(|| i.actors[x.0].as_bytes().cmp(i.actors[y.0].as_bytes()))
        });
        for (j, &(a, base, _)) in rows.iter().enumerate() {
            alloc[a] = if U256::from(j as u64) < l { base + U256::ONE } else { base };
        }
    }
    // 8. Dust.
    let min = U256::from(p.min_payout);
    for x in &mut alloc {
        if *x > U256::ZERO && *x < min {
            *x = U256::ZERO;
        }
    }
    // 9. Residual; payees ascending by actor id bytes.
    let total = sum(alloc.iter().copied());
    let residual = pool.checked_sub(total).expect("reference: Σ allocations exceeds the pool");
    let mut order: Vec<usize> = (0..n).filter(|&a| alloc[a] > U256::ZERO).collect();
    order.sort_by(|&x, &y| i.actors[x].as_bytes().cmp(i.actors[y].as_bytes()));
    Paid {
        pool: i.pool,
        distributable: narrow64(d),
        ceiling: ceiling.map(narrow64),
        payees: order
            .into_iter()
            .map(|a| {
                assert!(score[a] <= U256::from(u128::MAX));
                (i.actors[a].clone(), narrow64(alloc[a]), score[a].as_u128())
            })
            .collect(),
        total: narrow64(total),
        residual: narrow64(residual),
    }
}

// ======================================================================================
// Reference: the commitments of §4
// ======================================================================================

fn b3(digest: &[u8; 32]) -> String {
    format!("b3:{}", hex::encode(digest))
}

fn unb3(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.strip_prefix("b3:").expect("b3: prefix"), &mut out).expect("32 hex bytes");
    out
}

fn frame(fields: &[&[u8]]) -> [u8; 32] {
    let mut buf = Vec::new();
    for f in fields {
        buf.extend_from_slice(&(f.len() as u32).to_be_bytes());
        buf.extend_from_slice(f);
    }
    *blake3::hash(&buf).as_bytes()
}

fn ref_leaf(actor: &str, amount: u64) -> [u8; 32] {
    let key = *blake3::hash(b"rewarder.merkle.leaf.v1").as_bytes();
    let mut msg = Vec::new();
    msg.extend_from_slice(&(actor.len() as u16).to_be_bytes());
    msg.extend_from_slice(actor.as_bytes());
    msg.extend_from_slice(&amount.to_be_bytes());
    *blake3::keyed_hash(&key, &msg).as_bytes()
}

fn ref_node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let key = *blake3::hash(b"rewarder.merkle.node.v1").as_bytes();
    let mut msg = [0u8; 64];
    msg[..32].copy_from_slice(left);
    msg[32..].copy_from_slice(right);
    *blake3::keyed_hash(&key, &msg).as_bytes()
}

/// Every level of the tree, leaves first.
fn ref_levels(payees: &[(String, u64, u128)]) -> Vec<Vec<[u8; 32]>> {
    let mut levels = vec![payees.iter().map(|(a, x, _)| ref_leaf(a, *x)).collect::<Vec<_>>()];
    while levels.last().is_some_and(|l| l.len() > 1) {
        let next = levels
            .last()
            .map(|l| l.chunks(2).map(|p| if p.len() == 2 { ref_node(&p[0], &p[1]) } else { p[0] }).collect());
        levels.extend(next);
    }
    levels
}

fn ref_root(levels: &[Vec<[u8; 32]>]) -> [u8; 32] {
    match levels.last().and_then(|l| l.first()) {
        Some(root) => *root,
        None => *blake3::hash(b"rewarder.merkle.empty.v1").as_bytes(),
    }
}

/// `(sibling on the left, sibling hash)` bottom-up.
fn ref_proof(levels: &[Vec<[u8; 32]>], mut index: usize) -> Vec<(bool, [u8; 32])> {
    let mut steps = Vec::new();
    for level in &levels[..levels.len() - 1] {
        let sibling = index ^ 1;
        if sibling < level.len() {
            steps.push((sibling < index, level[sibling]));
        }
        index /= 2;
    }
    steps
}

// ======================================================================================
// Generators: a model of a valid pair of documents, and its rendering as JSON text
// ======================================================================================

#[derive(Debug, Clone)]
struct Model {
    epoch: String,
    pool: u64,
    kinds: Vec<String>,
    actors: Vec<String>,
    events: Vec<[u64; 4]>,
    policy_id: String,
    weights: Vec<(String, u64)>,
    caps: Option<Vec<(String, u64)>>,
    actor_cap_bps: Option<u64>,
    min_payout: Option<u64>,
    max_pool: Option<u64>,
    /// Seeds the rendering: field order, whitespace, escapes.
    style: u64,
}

fn dedupe(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items.into_iter().filter(|s| !s.is_empty() && seen.insert(s.clone())).collect()
}

fn units() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        2 => Just(0u64),
        3 => 1u64..10,
        2 => 0u64..100_000,
        2 => (INT_MAX - 16)..=INT_MAX,
        1 => (0u32..53).prop_map(|k| 1u64 << k),
        2 => 0..=INT_MAX,
    ]
}

fn near_max_u64() -> impl Strategy<Value = u64> + Clone {
    (u64::MAX - 1000)..=u64::MAX
}

fn pool() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0u64),
        1 => Just(1u64),
        2 => 0u64..100,
        3 => 0u64..1_000_000_000,
        3 => near_max_u64(),
        3 => any::<u64>(),
    ]
}

fn weight() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![1 => Just(0u64), 1 => Just(1u64), 2 => 1u64..10, 1 => Just(1_000_000u64), 2 => 0u64..=1_000_000]
}

fn cap_value() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![Just(0u64), 0u64..10, 0u64..100_000, Just(INT_MAX), 0..=INT_MAX]
}

fn actor_cap_bps() -> impl Strategy<Value = u64> {
    prop_oneof![1u64..=10, 1u64..=100, 200u64..=600, 1u64..=10_000, Just(10_000u64)]
}

fn min_payout() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => Just(0u64),
        2 => Just(1u64),
        3 => 0u64..100,
        2 => 0u64..1_000_000_000,
        1 => any::<u64>(),
        1 => Just(u64::MAX),
    ]
}

fn max_pool() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(1u64), 0u64..1000, 0u64..1_000_000_000, any::<u64>(), Just(u64::MAX)]
}

fn kind_name() -> impl Strategy<Value = String> + Clone {
    prop_oneof![4 => "[a-z0-9_.:-]{1,12}", 1 => "[a-z0-9_.:-]{1,64}"]
}

/// 0..=`max` unique actor ids; `"` and `\` included; some share long prefixes, some are
/// prefixes of others, some differ only around bytes 16–24 past the shared prefix.
fn actor_ids(max: usize) -> impl Strategy<Value = Vec<String>> {
    let random = prop::collection::vec("[!-~]{1,128}", 0..=max);
    let short = prop::collection::vec("[!-~]{1,3}", 0..=max);
    let clustered = (
        "[!-~]{0,110}",
        prop::collection::vec(prop_oneof!["[!-~]{0,3}", "[!-~]{14,24}", "[\"\\\\]{1,4}"], 0..=max),
    )
        .prop_map(|(prefix, suffixes)| {
            suffixes
                .into_iter()
                .map(|s| {
                    let mut id = format!("{prefix}{s}");
                    id.truncate(128);
                    id
                })
                .collect()
        });
    prop_oneof![random, short, clustered].prop_map(dedupe)
}

/// Events over `n` actors and `k` kinds.
fn events(n: usize, k: usize, max: usize) -> BoxedStrategy<Vec<[u64; 4]>> {
    if n == 0 {
        return Just(Vec::new()).boxed();
    }
    let id = prop_oneof![0u64..1000, (INT_MAX - 1000)..=INT_MAX, 0..=INT_MAX];
    // Anything: ids deduplicated (first kept).
    let random = prop::collection::vec((id, 0..n, 0..k, units()), 0..=max).prop_map(|evs| {
        let mut seen = HashSet::new();
        evs.into_iter()
            .filter(|e| seen.insert(e.0))
            .map(|(id, a, k, u)| [id, a as u64, k as u64, u])
            .collect()
    });
    // Ties: every actor follows one of a few profiles, so many scores are equal.
    let profiles = (
        prop::collection::vec(prop::collection::vec((0..k, units()), 1..=3), 1..=3),
        prop::collection::vec(prop::option::weighted(0.8, any::<Index>()), n),
        0..=(INT_MAX - 10_000),
    )
        .prop_map(move |(profiles, assign, base)| {
            let mut out = Vec::new();
            for (a, pick) in assign.iter().enumerate() {
                let Some(pick) = pick else { continue };
                for &(kind, u) in &profiles[pick.index(profiles.len())] {
                    if out.len() < max {
                        out.push([base + out.len() as u64, a as u64, kind as u64, u]);
                    }
                }
            }
            out
        });
    // Spread: units grow geometrically with the actor, so the water-filling takes many rounds.
    let geometric =
        (0u32..4, 0..k, any::<bool>(), 0u64..1000).prop_map(move |(shape, kind, reverse, base)| {
            (0..n.min(max))
                .map(|a| {
                    let x = if reverse { (n - 1 - a) as u32 } else { a as u32 };
                    let u = match shape {
                        0 => 2u128.saturating_pow(x),
                        1 => 3u128.saturating_pow(x),
                        2 => u128::from(x) + 1,
                        _ => (u128::from(x) + 1).pow(2),
                    };
                    [base + a as u64, a as u64, kind as u64, u.min(u128::from(INT_MAX)) as u64]
                })
                .collect()
        });
    prop_oneof![3 => random, 2 => profiles, 1 => geometric].boxed()
}

type PolicyParts = (Vec<(String, u64)>, Option<Vec<(String, u64)>>, Option<u64>, Option<u64>, Option<u64>);

fn policy_parts(kinds: Vec<String>) -> impl Strategy<Value = PolicyParts> {
    let k = kinds.len();
    (
        prop::collection::vec(prop::option::weighted(0.85, weight()), k),
        prop::collection::vec((kind_name(), weight()), 0..=2),
        prop::option::weighted(
            0.5,
            (
                prop::collection::vec(prop::option::weighted(0.5, cap_value()), k),
                prop::collection::vec((kind_name(), cap_value()), 0..=1),
            ),
        ),
        prop::option::weighted(0.6, actor_cap_bps()),
        prop::option::weighted(0.4, min_payout()),
        prop::option::weighted(0.3, max_pool()),
    )
        .prop_map(move |(ws, extra_ws, caps, bps, min, max)| {
            let named = |own: Vec<Option<u64>>, extra: Vec<(String, u64)>| {
                let mut out: Vec<(String, u64)> =
                    kinds.iter().zip(own).filter_map(|(name, v)| v.map(|v| (name.clone(), v))).collect();
                for (name, v) in extra {
                    if !out.iter().any(|(n, _)| *n == name) && !kinds.contains(&name) {
                        out.push((name, v));
                    }
                }
                out
            };
            let mut weights = named(ws, extra_ws);
            if weights.is_empty() {
                weights.push((kinds[0].clone(), 1));
            }
            let caps = caps.map(|(own, extra)| named(own, extra));
            (weights, caps, bps, min, max)
        })
}

fn model_with(actors: BoxedStrategy<Vec<String>>, max_events: usize) -> impl Strategy<Value = Model> {
    (
        "[A-Za-z0-9._:-]{1,128}",
        pool(),
        prop::collection::vec(kind_name(), 1..=6).prop_map(dedupe),
        actors,
        "[A-Za-z0-9._:-]{1,64}",
        any::<u64>(),
    )
        .prop_flat_map(move |(epoch, pool, kinds, actors, policy_id, style)| {
            let evs = events(actors.len(), kinds.len(), max_events);
            let parts = policy_parts(kinds.clone());
            (Just((epoch, pool, kinds, actors, policy_id, style)), evs, parts)
        })
        .prop_map(|((epoch, pool, kinds, actors, policy_id, style), events, parts)| {
            let (weights, caps, actor_cap_bps, min_payout, max_pool) = parts;
            Model {
                epoch,
                pool,
                kinds,
                actors,
                events,
                policy_id,
                weights,
                caps,
                actor_cap_bps,
                min_payout,
                max_pool,
                style,
            }
        })
}

/// The documents of the brief: 0–40 actors, 1–6 kinds, 0–200 events.
fn model() -> impl Strategy<Value = Model> {
    model_with(actor_ids(40).boxed(), 200)
}

/// Many actors: more actor × kind cells than the parser's dense matrix takes, so its grouped
/// (counting-sort) aggregation is the one exercised.
fn wide_model() -> impl Strategy<Value = Model> {
    let actors = prop::collection::vec("[!-~]{1,10}", 900..=1500).prop_map(dedupe).boxed();
    model_with(actors, 600).prop_filter("needs more cells than the dense bound", |m| {
        m.actors.len() * m.kinds.len() * 16 > 1 << 16
    })
}

/// Writes JSON text with choices drawn from a seed.
struct Writer {
    out: String,
    rng: SplitMix64,
    /// 0 compact, 1 a space after `:` and `,`, 2 random whitespace around every token.
    spacing: usize,
    /// 0: only the required escapes; n: about one character in n escaped (`\uXXXX`, `\/`).
    escapes: usize,
}

impl Writer {
    fn new(seed: u64) -> Writer {
        let mut rng = SplitMix64::new(seed);
        let spacing = rng.index(3);
        let escapes = [0, 0, 24, 3][rng.index(4)];
        Writer { out: String::new(), rng, spacing, escapes }
    }

    fn gap(&mut self) {
        const GAPS: [&str; 6] = ["", " ", "\n", "\t", "\r\n    ", "  "];
        if self.spacing == 2 {
            let g = GAPS[self.rng.index(GAPS.len())];
            self.out.push_str(g);
        }
    }

    fn punct(&mut self, c: char) {
        self.gap();
        self.out.push(c);
        if self.spacing == 1 && matches!(c, ',' | ':') {
            self.out.push(' ');
        }
        self.gap();
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            let escape = self.escapes > 0 && self.rng.one_in(self.escapes);
            match (c, escape) {
                ('"', false) => self.out.push_str("\\\""),
                ('\\', false) => self.out.push_str("\\\\"),
                ('/', true) if self.rng.one_in(2) => self.out.push_str("\\/"),
                (c, true) => {
                    let u = c as u32;
                    let _ = if self.rng.one_in(2) {
                        write!(self.out, "\\u{u:04x}")
                    } else {
                        write!(self.out, "\\u{u:04X}")
                    };
                }
                (c, false) => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    fn uint(&mut self, v: u64) {
        let _ = write!(self.out, "{v}");
    }

    fn key(&mut self, k: &str) {
        self.string(k);
        self.punct(':');
    }

    fn list<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        self.punct('[');
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                self.punct(',');
            }
            item(self, x);
        }
        self.punct(']');
    }

    fn map(&mut self, entries: &[(String, u64)]) {
        self.punct('{');
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                self.punct(',');
            }
            self.key(k);
            self.uint(*v);
        }
        self.punct('}');
    }

    /// An object of the named fields, in document order or shuffled.
    fn object(&mut self, mut fields: Vec<&'static str>, mut field: impl FnMut(&mut Self, &str)) {
        if self.rng.one_in(2) {
            self.rng.shuffle(&mut fields);
        }
        self.punct('{');
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                self.punct(',');
            }
            self.key(f);
            field(self, f);
        }
        self.punct('}');
    }
}

fn render_inputs(m: &Model, seed: u64) -> Vec<u8> {
    let mut w = Writer::new(seed);
    let fields = vec!["schema", "epoch", "pool_minor", "kinds", "actors", "events"];
    w.object(fields, |w, f| match f {
        "schema" => w.string("rewarder.inputs.v1"),
        "epoch" => w.string(&m.epoch),
        "pool_minor" => w.string(&m.pool.to_string()),
        "kinds" => w.list(&m.kinds, |w, k| w.string(k)),
        "actors" => w.list(&m.actors, |w, a| w.string(a)),
        _ => w.list(&m.events, |w, e| w.list(e, |w, x| w.uint(*x))),
    });
    w.out.into_bytes()
}

fn render_policy(m: &Model, seed: u64) -> Vec<u8> {
    let mut w = Writer::new(seed);
    let mut fields = vec!["schema", "policy_id", "weights"];
    let optional = [
        ("caps", m.caps.is_some()),
        ("actor_cap_bps", m.actor_cap_bps.is_some()),
        ("min_payout_minor", m.min_payout.is_some()),
        ("max_pool_minor", m.max_pool.is_some()),
    ];
    fields.extend(optional.iter().filter(|(_, present)| *present).map(|(f, _)| *f));
    w.object(fields, |w, f| match f {
        "schema" => w.string("rewarder.policy.v1"),
        "policy_id" => w.string(&m.policy_id),
        "weights" => w.map(&m.weights),
        "caps" => w.map(m.caps.as_deref().unwrap_or_default()),
        "actor_cap_bps" => w.uint(m.actor_cap_bps.unwrap_or_default()),
        "min_payout_minor" => w.string(&m.min_payout.unwrap_or_default().to_string()),
        _ => w.string(&m.max_pool.unwrap_or_default().to_string()),
    });
    w.out.into_bytes()
}

fn docs(m: &Model) -> (Vec<u8>, Vec<u8>) {
    (render_inputs(m, m.style), render_policy(m, m.style.rotate_left(17)))
}

// ======================================================================================
// Running the core
// ======================================================================================

fn compute(inputs: &[u8], policy: &[u8]) -> Result<Run, Error> {
    let inputs = Arc::new(Inputs::parse(inputs, &Limits::UNBOUNDED)?);
    let policy = Policy::parse(policy)?;
    Run::compute(&inputs, &policy, TENANT)
}

fn must_compute(inputs: &[u8], policy: &[u8]) -> Result<Run, TestCaseError> {
    compute(inputs, policy).map_err(|e| {
        TestCaseError::fail(format!(
            "valid documents refused: {e} {:?}\ninputs: {}\npolicy: {}",
            e.details(),
            String::from_utf8_lossy(inputs),
            String::from_utf8_lossy(policy)
        ))
    })
}

fn paid(run: &Run) -> Paid {
    let o = run.outcome();
    Paid {
        pool: o.pool_minor,
        distributable: o.distributable_minor,
        ceiling: o.ceiling_minor,
        payees: run.allocations().map(|a| (a.actor.to_owned(), a.amount, a.score)).collect(),
        total: o.payout_total_minor,
        residual: o.residual_minor,
    }
}

fn reference(inputs: &[u8], policy: &[u8]) -> Result<Paid, TestCaseError> {
    let i =
        ref_inputs(inputs).map_err(|r| TestCaseError::fail(format!("reference refused inputs: {r:?}")))?;
    let p =
        ref_policy(policy).map_err(|r| TestCaseError::fail(format!("reference refused policy: {r:?}")))?;
    Ok(ref_allocate(&i, &p))
}

/// Every commitment of §4 recomputed from the raw bytes and the reference outcome.
fn check_commitments(run: &Run, inputs: &[u8], policy: &[u8], expected: &Paid) -> Result<(), TestCaseError> {
    let man = run.manifest();
    let (i, p) = (ref_inputs(inputs).unwrap(), ref_policy(policy).unwrap());
    let inputs_cid = b3(blake3::hash(inputs).as_bytes());
    let policy_hash = b3(blake3::hash(policy).as_bytes());
    prop_assert_eq!(run.inputs().cid(), inputs_cid.as_str());
    prop_assert_eq!(&man.inputs_cid, &inputs_cid);
    prop_assert_eq!(&man.policy_hash, &policy_hash);
    let run_id = b3(&frame(&[
        b"rewarder.run.v1",
        TENANT.as_bytes(),
        i.epoch.as_bytes(),
        inputs_cid.as_bytes(),
        policy_hash.as_bytes(),
    ]));
    prop_assert_eq!(run.run_id(), run_id.as_str());
    let root = b3(&ref_root(&ref_levels(&expected.payees)));
    let fields: [String; 13] = [
        "rewarder.manifest.v1".into(),
        TENANT.into(),
        i.epoch.clone(),
        run_id,
        inputs_cid,
        p.policy_id.clone(),
        policy_hash,
        expected.pool.to_string(),
        expected.distributable.to_string(),
        expected.total.to_string(),
        expected.residual.to_string(),
        expected.payees.len().to_string(),
        root,
    ];
    let got: [String; 13] = [
        man.schema.clone(),
        man.tenant.clone(),
        man.epoch.clone(),
        man.run_id.clone(),
        man.inputs_cid.clone(),
        man.policy_id.clone(),
        man.policy_hash.clone(),
        man.pool_minor.clone(),
        man.distributable_minor.clone(),
        man.payout_total_minor.clone(),
        man.residual_minor.clone(),
        man.payees.to_string(),
        man.allocations_root.clone(),
    ];
    prop_assert_eq!(&got, &fields);
    let digest = frame(&fields.iter().map(|f| f.as_bytes()).collect::<Vec<_>>());
    prop_assert_eq!(run.digest_bytes(), &digest);
    prop_assert_eq!(run.manifest_digest(), b3(&digest));
    prop_assert_eq!(man.digest(), b3(&digest));
    Ok(())
}

/// I-1 to I-3, from the core's own numbers and the policy of the model.
fn check_invariants(run: &Run, m: &Model) -> Result<(), TestCaseError> {
    let o = run.outcome();
    let amounts: Vec<u64> = run.allocations().map(|a| a.amount).collect();
    let total: u128 = amounts.iter().map(|&x| u128::from(x)).sum();
    prop_assert_eq!(o.pool_minor, m.pool);
    prop_assert_eq!(o.distributable_minor, m.max_pool.map_or(m.pool, |x| x.min(m.pool)));
    prop_assert_eq!(total, u128::from(o.payout_total_minor));
    prop_assert_eq!(total + u128::from(o.residual_minor), u128::from(m.pool), "I-1 conservation");
    prop_assert!(total <= u128::from(o.distributable_minor) && o.distributable_minor <= o.pool_minor, "I-1");
    let floor = m.min_payout.unwrap_or(1).max(1);
    let ceiling =
        m.actor_cap_bps.map(|bps| (u128::from(o.distributable_minor) * u128::from(bps) / 10_000) as u64);
    prop_assert_eq!(o.ceiling_minor, ceiling);
    for a in run.allocations() {
        prop_assert!(a.amount >= floor, "I-2: {} < max(1, min_payout) = {floor}", a.amount);
        if let Some(c) = ceiling {
            prop_assert!(a.amount <= c, "I-2: {} > ceiling {c}", a.amount);
        }
    }
    let ids: Vec<&str> = run.allocations().map(|a| a.actor).collect();
    prop_assert!(ids.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()), "I-3 order: {ids:?}");
    let man = run.manifest();
    prop_assert_eq!(man.payees as usize, amounts.len());
    prop_assert_eq!(&man.payout_total_minor, &o.payout_total_minor.to_string());
    prop_assert_eq!(&man.residual_minor, &o.residual_minor.to_string());
    Ok(())
}

// ======================================================================================
// 1–3. The calculus: reference, invariants, permutations
// ======================================================================================

proptest! {
    #![proptest_config(config(256))]

    /// 1. The spec-literal reference, from the raw bytes, agrees with `Run::compute`.
    #[test]
    fn p1_reference_calculus_agrees_with_run_compute(m in model()) {
        let (inputs, policy) = docs(&m);
        // The test's own check: the reference reads back the model that was rendered.
        let ri = ref_inputs(&inputs).expect("a generated inputs document is valid");
        prop_assert_eq!((&ri.actors, &ri.kinds, &ri.events), (&m.actors, &m.kinds, &m.events));
        prop_assert!(serde_json::from_slice::<serde_json::Value>(&inputs).is_ok());
        prop_assert!(serde_json::from_slice::<serde_json::Value>(&policy).is_ok());

        let run = must_compute(&inputs, &policy)?;
        let expected = reference(&inputs, &policy)?;
        prop_assert_eq!(paid(&run), expected.clone());
        check_commitments(&run, &inputs, &policy, &expected)?;
    }

    /// 2. The invariants of §3 on every run.
    #[test]
    fn p2_invariants_hold(m in model()) {
        let (inputs, policy) = docs(&m);
        let run = must_compute(&inputs, &policy)?;
        check_invariants(&run, &m)?;
    }

    /// 3. Shuffling actors (indices remapped), events and kinds, or re-spacing and
    ///    re-escaping, changes only the content id and what derives from it.
    #[test]
    fn p3_permutations_change_only_the_content_id(m in model(), seed in any::<u64>()) {
        let (inputs, policy) = docs(&m);
        let base = must_compute(&inputs, &policy)?;
        let mut rng = SplitMix64::new(seed);

        let mut shuffled = m.clone();
        let mut actor_order: Vec<usize> = (0..m.actors.len()).collect();
        rng.shuffle(&mut actor_order);
        let mut kind_order: Vec<usize> = (0..m.kinds.len()).collect();
        let shuffle_kinds = rng.one_in(2);
        if shuffle_kinds {
            rng.shuffle(&mut kind_order);
        }
        let (mut actor_at, mut kind_at) = (vec![0u64; m.actors.len()], vec![0u64; m.kinds.len()]);
        for (new, &old) in actor_order.iter().enumerate() {
            actor_at[old] = new as u64;
        }
        for (new, &old) in kind_order.iter().enumerate() {
            kind_at[old] = new as u64;
        }
        shuffled.actors = actor_order.iter().map(|&a| m.actors[a].clone()).collect();
        shuffled.kinds = kind_order.iter().map(|&k| m.kinds[k].clone()).collect();
        for e in &mut shuffled.events {
            e[1] = actor_at[e[1] as usize];
            e[2] = kind_at[e[2] as usize];
        }
        rng.shuffle(&mut shuffled.events);

        let variants = [
            ("permuted", render_inputs(&shuffled, m.style)),
            ("restyled", render_inputs(&m, seed)),
            ("permuted and restyled", render_inputs(&shuffled, seed ^ 0x5555)),
        ];
        for (what, bytes) in variants {
            let run = must_compute(&bytes, &policy)?;
            prop_assert_eq!(paid(&run), paid(&base), "{}", what);
            prop_assert_eq!(&run.manifest().allocations_root, &base.manifest().allocations_root, "{}", what);
            let differ = bytes != inputs;
            prop_assert_eq!(run.inputs().cid() != base.inputs().cid(), differ, "{}", what);
            prop_assert_eq!(run.run_id() != base.run_id(), differ, "{}", what);
            prop_assert_eq!(run.manifest_digest() != base.manifest_digest(), differ, "{}", what);
        }
    }
}

proptest! {
    #![proptest_config(config(16))]

    /// 1 (and 2) with 900–1500 actors: the parser's grouped aggregation instead of its dense one.
    #[test]
    fn p1_reference_agrees_on_wide_documents(m in wide_model()) {
        let (inputs, policy) = docs(&m);
        let run = must_compute(&inputs, &policy)?;
        let expected = reference(&inputs, &policy)?;
        prop_assert_eq!(paid(&run), expected.clone());
        check_commitments(&run, &inputs, &policy, &expected)?;
        check_invariants(&run, &m)?;
    }
}

// ======================================================================================
// 4. Merkle proofs
// ======================================================================================

fn flip(bytes: &mut [u8], bit: usize) {
    bytes[bit / 8] ^= 1 << (bit % 8);
}

/// Bits worth flipping in a `len`-byte value: all of them, or the ends and a few at random.
fn bits(len: usize, all: bool, rng: &mut SplitMix64) -> Vec<usize> {
    let n = len * 8;
    if all {
        return (0..n).collect();
    }
    let mut out = vec![0, 7, n - 8, n - 1];
    out.extend((0..6).map(|_| rng.index(n)));
    out
}

proptest! {
    #![proptest_config(config(96))]

    /// 4. Every payee's proof verifies against the manifest root and fails once tampered.
    #[test]
    fn p4_proofs_verify_and_fail_when_tampered(m in model(), seed in any::<u64>()) {
        let (inputs, policy) = docs(&m);
        let run = must_compute(&inputs, &policy)?;
        let root = unb3(&run.manifest().allocations_root);
        let payees = paid(&run).payees;
        let levels = ref_levels(&payees);
        let mut rng = SplitMix64::new(seed);
        // One payee per case gets every bit of every sibling flipped; the others a sample.
        let exhaustive = if payees.is_empty() { usize::MAX } else { rng.index(payees.len()) };

        for (index, (actor, amount, _)) in payees.iter().enumerate() {
            let proof = run.proof(actor).map_err(|e| TestCaseError::fail(format!("no proof for {actor:?}: {e}")))?;
            prop_assert_eq!(proof.index, index);
            prop_assert_eq!(proof.amount, *amount);
            let steps: Vec<(bool, [u8; 32])> = proof.steps.iter().map(|s| (s.left, s.hash)).collect();
            prop_assert_eq!(&steps, &ref_proof(&levels, index));
            for s in &proof.steps {
                prop_assert_eq!(s.side(), if s.left { "L" } else { "R" });
            }
            prop_assert!(merkle::verify(&root, actor, *amount, &proof.steps));

            prop_assert!(!merkle::verify(&root, actor, amount.wrapping_add(1), &proof.steps));
            prop_assert!(!merkle::verify(&root, actor, amount.wrapping_sub(1), &proof.steps));

            // Other ids: a few other actors of the document, and valid ids one edit away (ids
            // grown past 128 bytes are `p4_proof_fails_for_an_actor_id_grown_past_128_bytes`).
            let mut others: Vec<String> =
                (0..8).map(|_| m.actors[rng.index(m.actors.len())].clone()).filter(|a| a != actor).collect();
            if actor.len() < 128 {
                others.push(format!("{actor}x"));
            }
            if actor.len() > 1 {
                others.push(actor[..actor.len() - 1].to_owned());
            }
            for at in [0, actor.len() - 1, rng.index(actor.len())] {
                let mut changed = actor.clone().into_bytes();
                changed[at] = if changed[at] == b'!' { b'~' } else { changed[at] - 1 };
                others.push(String::from_utf8(changed).unwrap());
            }
            for other in &others {
                prop_assert!(!merkle::verify(&root, other, *amount, &proof.steps), "verified as {other:?}");
            }

            for s in 0..proof.steps.len() {
                for bit in bits(32, index == exhaustive, &mut rng) {
                    let mut bad = proof.steps.clone();
                    flip(&mut bad[s].hash, bit);
                    prop_assert!(!merkle::verify(&root, actor, *amount, &bad), "step {s} bit {bit}");
                }
                let mut bad = proof.steps.clone();
                bad[s].left = !bad[s].left;
                prop_assert!(!merkle::verify(&root, actor, *amount, &bad), "step {s} side swapped");
            }
            if !proof.steps.is_empty() {
                let short = &proof.steps[..proof.steps.len() - 1];
                prop_assert!(!merkle::verify(&root, actor, *amount, short), "a step dropped");
            }
        }

        let paid_ids: HashSet<&str> = payees.iter().map(|p| p.0.as_str()).collect();
        let mut strangers: Vec<String> = m.actors.iter().filter(|a| !paid_ids.contains(a.as_str())).cloned().collect();
        strangers.extend(["", "acct:\u{e9}", "x".repeat(129).as_str()].map(str::to_owned));
        strangers.extend(m.actors.first().map(|a| format!("{a}\u{1}")));
        for s in strangers.iter().filter(|s| !paid_ids.contains(s.as_str())) {
            match run.proof(s) {
                Err(e) => prop_assert_eq!(e.code(), Code::UnknownActor, "{:?}", s),
                Ok(p) => prop_assert!(false, "a proof for the non-payee {s:?}: {p:?}"),
            }
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// 4. A proof does not verify for an id that merely extends the payee's, also when the
    ///    payee's id is 128 bytes long: such an id is no valid actor id, but `merkle::verify`
    ///    takes any string, and the leaf of §4 hashes `u16_be(len) ‖ every byte`.
    #[test]
    fn p4_proof_fails_for_an_actor_id_grown_past_128_bytes(
        m in model_with(prop::collection::vec("[!-~]{126,128}", 1..=8).prop_map(dedupe).boxed(), 24),
        suffix in "[!-~]{1,8}",
    ) {
        let (inputs, policy) = docs(&m);
        let run = must_compute(&inputs, &policy)?;
        let root = unb3(&run.manifest().allocations_root);
        for a in run.allocations() {
            let proof = run.proof(a.actor).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(merkle::verify(&root, a.actor, a.amount, &proof.steps));
            let longer = format!("{}{suffix}", a.actor);
            prop_assert!(
                !merkle::verify(&root, &longer, a.amount, &proof.steps),
                "the proof of the {}-byte payee {:?} verifies for the {}-byte id {:?}",
                a.actor.len(), a.actor, longer.len(), longer
            );
        }
    }
}

/// The minimal failing case of `p4_proof_fails_for_an_actor_id_grown_past_128_bytes`.
#[test]
fn merkle_verify_refuses_a_129_byte_id_with_the_proof_of_its_128_byte_prefix() {
    let actor = "a".repeat(128);
    let inputs = format!(
        r#"{{"schema":"rewarder.inputs.v1","epoch":"e","pool_minor":"1","kinds":["k"],"actors":["{actor}"],"events":[[0,0,0,1]]}}"#
    );
    let policy = r#"{"schema":"rewarder.policy.v1","policy_id":"p","weights":{"k":1}}"#;
    let run = compute(inputs.as_bytes(), policy.as_bytes()).unwrap();
    let root = unb3(&run.manifest().allocations_root);
    let proof = run.proof(&actor).unwrap();
    assert!(merkle::verify(&root, &actor, 1, &proof.steps));
    let longer = format!("{actor}b");
    assert_eq!(
        merkle::leaf(&longer, 1),
        ref_leaf(&longer, 1),
        "merkle::leaf differs from §4 for a 129-byte id"
    );
    assert!(
        !merkle::verify(&root, &longer, 1, &proof.steps),
        "a 129-byte id verifies with its prefix's proof"
    );
}

// ======================================================================================
// 5. Signatures
// ======================================================================================

fn with_bit_flipped(hex_value: &str, bit: usize) -> String {
    let mut bytes = hex::decode(hex_value).unwrap();
    flip(&mut bytes, bit);
    hex::encode(bytes)
}

/// Verifies, then checks that one flipped bit of the digest, the signature or the key (at
/// the positions given) is never accepted.
fn check_signature(
    algorithm: &str,
    sig: &sign::Signature,
    digest: &[u8; 32],
    digest_bits: &[usize],
    sig_bits: &[usize],
    key_bits: &[usize],
) -> Result<(), TestCaseError> {
    let ok = sign::verify(algorithm, &sig.public_key, digest, &sig.signature);
    prop_assert!(matches!(ok, Ok(true)), "{algorithm}: own signature refused: {ok:?}");
    for &bit in digest_bits {
        let mut d = *digest;
        flip(&mut d, bit);
        let r = sign::verify(algorithm, &sig.public_key, &d, &sig.signature);
        prop_assert!(matches!(r, Ok(false)), "{algorithm}: digest bit {bit}: {r:?}");
    }
    for &bit in sig_bits {
        let r = sign::verify(algorithm, &sig.public_key, digest, &with_bit_flipped(&sig.signature, bit));
        prop_assert!(matches!(r, Ok(false)), "{algorithm}: signature bit {bit}: {r:?}");
    }
    for &bit in key_bits {
        let r = sign::verify(algorithm, &with_bit_flipped(&sig.public_key, bit), digest, &sig.signature);
        prop_assert!(!matches!(r, Ok(true)), "{algorithm}: public key bit {bit} accepted");
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(64))]

    /// 5. Ed25519: bits of the digest, the signature and the key, for random seeds.
    #[test]
    fn p5_ed25519_verifies_and_refuses_flipped_bits(
        seed in any::<[u8; 32]>(),
        digest in any::<[u8; 32]>(),
        sample in any::<u64>(),
    ) {
        let keys = SigningKeys::from_seeds(&seed, None);
        let sigs = keys.sign(&digest);
        prop_assert!(sigs.ml_dsa_65.is_none());
        prop_assert_eq!(sigs.ed25519.public_key.as_str(), keys.ed25519_public_hex());
        prop_assert_eq!((sigs.ed25519.public_key.len(), sigs.ed25519.signature.len()), (64, 128));
        // A verification costs ~20 ms in a debug build: each case flips a few bits (the
        // signature's R half, its S half and anywhere), 64 cases cover ~200 distinct ones.
        let mut rng = SplitMix64::new(sample);
        check_signature(
            sign::ED25519,
            &sigs.ed25519,
            &digest,
            &[rng.index(256), rng.index(256)],
            &[rng.index(256), 256 + rng.index(256), rng.index(512)],
            &[rng.index(256), rng.index(256)],
        )?;
    }
}

proptest! {
    #![proptest_config(config(10))]

    /// 5. ML-DSA-65 (slow in debug builds: few cases, sampled bits in every region of the
    ///    digest, the signature (c̃, z, hints) and the key (ρ, t1)), with Ed25519 beside it.
    #[test]
    fn p5_ml_dsa_65_verifies_and_refuses_flipped_bits(
        ed in any::<[u8; 32]>(),
        ml in any::<[u8; 32]>(),
        digest in any::<[u8; 32]>(),
        sample in any::<u64>(),
    ) {
        let keys = SigningKeys::from_seeds(&ed, Some(&ml));
        let sigs = keys.sign(&digest);
        let pq = sigs.ml_dsa_65.clone().expect("an ML-DSA-65 signature when its seed is given");
        prop_assert_eq!(Some(pq.public_key.as_str()), keys.ml_dsa_65_public_hex());
        prop_assert_eq!((pq.public_key.len(), pq.signature.len()), (2 * 1952, 2 * 3309));
        prop_assert_eq!(&keys.sign(&digest), &sigs, "signing is deterministic");
        let mut rng = SplitMix64::new(sample);
        // c̃ is bytes 0..48, z 48..3248, the hints 3248..3309; ρ is bytes 0..32 of the key.
        let sig_bits = [0, 48 * 8 - 1, 48 * 8 + rng.index(3200 * 8), 3248 * 8 + rng.index(61 * 8), 3309 * 8 - 1];
        let key_bits = [rng.index(256), 256 + rng.index(1920 * 8), 1952 * 8 - 1];
        let digest_bits = [0, rng.index(256), 255];
        check_signature(sign::ML_DSA_65, &pq, &digest, &digest_bits, &sig_bits, &key_bits)?;
        check_signature(sign::ED25519, &sigs.ed25519, &digest, &digest_bits, &[0, 511], &[0, 255])?;
    }
}

// ======================================================================================
// 6. Parsers on hostile bytes
// ======================================================================================

/// Bytes that matter to a JSON scanner.
const INTERESTING: &[u8] = b"{}[]\",:-+.eE0123456789\\u/ \t\n\r\x00\x1f\x7f\x80\xbf\xc3\xe2\xf0\xffabfnrtx";

/// Fragments worth inserting.
const FRAGMENTS: &[&str] = &[
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "\\udc00",
    "\\ud83d\\ude00",
    "\\u00e9",
    "0",
    "-",
    "-0",
    "1e3",
    "1.0",
    ".5",
    "99999999999999999999",
    "9007199254740992",
    "9007199254740991",
    "18446744073709551616",
    "18446744073709551615",
    "null",
    "true",
    "false",
    "[]",
    "{}",
    ",",
    ":",
    " ",
    "\u{e9}",
    "\u{feff}",
    "\"x\":1,",
    "[0,0,0,0],",
    "[1,0,0,1]",
    "\"schema\":",
    "\"caps\":{},",
    "\"\":0",
    "[[[[[[[[",
    "]]]]]]]]",
    "\"weights\":{\"a\":1},",
    "\"actors\":[\"a\"],",
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, Index),
    Insert(Index, Index),
    Fragment(Index, Index),
    Delete(Index, usize),
    Duplicate(Index, usize),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, c)| Mutation::Set(i, c)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, c)| Mutation::Insert(i, c)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, f)| Mutation::Fragment(i, f)),
        3 => (any::<Index>(), 1usize..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        2 => (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        let at = |i: &Index| if len == 0 { 0 } else { i.index(len) };
        match m {
            Mutation::Flip(i, bit) if len > 0 => bytes[at(i)] ^= 1 << bit,
            Mutation::Set(i, c) if len > 0 => bytes[at(i)] = INTERESTING[c.index(INTERESTING.len())],
            Mutation::Insert(i, c) => bytes.insert(at(i), INTERESTING[c.index(INTERESTING.len())]),
            Mutation::Fragment(i, f) => {
                let at = at(i);
                let frag = FRAGMENTS[f.index(FRAGMENTS.len())].as_bytes();
                bytes.splice(at..at, frag.iter().copied());
            }
            Mutation::Delete(i, n) if len > 0 => {
                let at = at(i);
                bytes.drain(at..(at + n).min(len));
            }
            Mutation::Duplicate(i, n) if len > 0 => {
                let at = at(i);
                let piece = bytes[at..(at + n).min(len)].to_vec();
                bytes.splice(at..at, piece);
            }
            Mutation::Truncate(i) => bytes.truncate(at(i)),
            _ => {}
        }
    }
    bytes
}

fn status_ok(r: &Result<(), Error>, what: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        prop_assert!(
            matches!(e.status(), 400 | 422),
            "{what}: status {} ({e}) for {:?}",
            e.status(),
            String::from_utf8_lossy(bytes)
        );
    }
    Ok(())
}

/// Both parsers, unbounded and with small limits: Ok or an error of status 400 or 422.
fn check_parsers(bytes: &[u8]) -> Result<(), TestCaseError> {
    for limits in
        [Limits::UNBOUNDED, Limits { actors_max: 1, events_max: 2 }, Limits { actors_max: 0, events_max: 0 }]
    {
        status_ok(&Inputs::parse(bytes, &limits).map(drop), "inputs", bytes)?;
    }
    status_ok(&Policy::parse(bytes).map(drop), "policy", bytes)
}

/// The core and the reference agree on a document: both accept it, or both refuse it with
/// 400 exactly when it is not JSON.
fn agree<T>(
    core: &Result<T, Error>,
    spec: &Result<impl std::fmt::Debug, Refusal>,
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    let doc = String::from_utf8_lossy(bytes);
    match (core, spec) {
        (Ok(_), Ok(_)) => {}
        (Err(e), Err(Refusal::NotJson)) => {
            prop_assert_eq!(e.code(), Code::MalformedJson, "not JSON, yet {}: {}", e, doc);
        }
        (Err(e), Err(Refusal::Invalid(rule))) => {
            prop_assert_eq!(e.status(), 422, "JSON breaking {:?}, yet {}: {}", rule, e, doc);
        }
        (Ok(_), Err(r)) => prop_assert!(false, "the core accepted what the spec refuses ({r:?}): {doc}"),
        (Err(e), Ok(_)) => {
            prop_assert!(false, "the core refused a valid document ({e} {:?}): {doc}", e.details())
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    /// 6. Arbitrary bytes.
    #[test]
    fn p6_parsers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_parsers(&bytes)?;
        agree(&Inputs::parse(&bytes, &Limits::UNBOUNDED), &ref_inputs(&bytes), &bytes)?;
        agree(&Policy::parse(&bytes), &ref_policy(&bytes), &bytes)?;
    }

    /// 6. Soups of JSON tokens, more likely than random bytes to get past the first byte.
    #[test]
    fn p6_parsers_never_panic_on_token_soup(
        tokens in prop::collection::vec(
            prop_oneof![
                any::<Index>().prop_map(|i| FRAGMENTS[i.index(FRAGMENTS.len())].to_owned()),
                prop::sample::select(vec![
                    "{", "}", "[", "]", ",", ":", "\"schema\"", "\"rewarder.inputs.v1\"",
                    "\"rewarder.policy.v1\"", "\"epoch\"", "\"e\"", "\"pool_minor\"", "\"7\"", "\"kinds\"",
                    "\"k\"", "\"actors\"", "\"events\"", "\"policy_id\"", "\"weights\"", "\"actor_cap_bps\"",
                    "\"min_payout_minor\"", "\"max_pool_minor\"", "1", "0", "10000",
                ]).prop_map(str::to_owned),
            ],
            0..48,
        ),
    ) {
        let bytes = tokens.concat().into_bytes();
        check_parsers(&bytes)?;
        agree(&Inputs::parse(&bytes, &Limits::UNBOUNDED), &ref_inputs(&bytes), &bytes)?;
        agree(&Policy::parse(&bytes), &ref_policy(&bytes), &bytes)?;
    }

    /// 6. Valid documents with bytes flipped, set, inserted, deleted, duplicated, truncated:
    ///    no panic, 400/422 only, the same verdict as the reference, and when both documents
    ///    still stand the same payout as the reference.
    #[test]
    fn p6_parsers_never_panic_on_mutated_documents(
        m in model(),
        mutations in prop::collection::vec(mutation(), 1..6),
        policy_side in any::<bool>(),
    ) {
        let (mut inputs, mut policy) = docs(&m);
        if policy_side {
            policy = mutate(policy, &mutations);
        } else {
            inputs = mutate(inputs, &mutations);
        }
        let bytes = if policy_side { &policy } else { &inputs };
        check_parsers(bytes)?;
        let core_inputs = Inputs::parse(&inputs, &Limits::UNBOUNDED);
        let core_policy = Policy::parse(&policy);
        agree(&core_inputs, &ref_inputs(&inputs), &inputs)?;
        agree(&core_policy, &ref_policy(&policy), &policy)?;
        if let (Ok(i), Ok(p)) = (core_inputs, core_policy) {
            let run = Run::compute(&Arc::new(i), &p, TENANT)
                .map_err(|e| TestCaseError::fail(format!("a mutated valid pair refused: {e}")))?;
            let expected = reference(&inputs, &policy)?;
            prop_assert_eq!(paid(&run), expected.clone());
            check_commitments(&run, &inputs, &policy, &expected)?;
        }
    }
}
