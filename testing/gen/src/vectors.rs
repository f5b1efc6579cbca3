//! Deterministic, realistically skewed inputs and policy documents (CALCULUS.md §1.1, §1.2)
//! at three fixed scales, written straight into byte buffers as compact JSON.
//!
//! The shape of what [`generate`] writes:
//!
//! - **kinds**: six, each with its own unit range ([`KINDS`]); the policy also weights one
//!   kind the inputs never use ([`UNUSED_KIND`]).
//! - **actors**: mixed realistic ids (`acct:0001234`, `node:<16 hex>`, `did:key:z6Mk…`,
//!   `name+N@domain`, `user/word-word-N`, and a few long `org:…` paths up to ~110 bytes), all
//!   printable ASCII without spaces, unique by construction, in shuffled order.
//! - **events**: each picks its actor by a power law (rank `⌊N·u⁴⌋` for uniform `u`: the top
//!   1% of actors get about 32% of the events, the single heaviest about `N^-¼` of them), a
//!   kind by fixed frequencies, and units from that kind's range (about 1 in 512 is `0`).
//!   Event ids are unique 13-digit integers, increasing by random gaps of 1–4, then shuffled.
//! - **policy** (`perf-v1`): weights for every kind plus the unused one, caps on `uptime_s`
//!   and `storage_gb_h` that bind for heavy actors, `actor_cap_bps` 200 (binding, so
//!   water-filling runs), `min_payout_minor` 100 and `max_pool_minor` below the pool.
//!
//! Only integer arithmetic and the crate's own [`SplitMix64`] are used,
//! so the bytes are identical across runs, machines and dependency upgrades.

use std::fmt;
use std::str::FromStr;

use crate::rng::{SplitMix64, mix64};

/// The epoch used when none is given.
pub const DEFAULT_EPOCH: &str = "demo";

/// `pool_minor` of every generated inputs document.
pub const POOL_MINOR: u64 = 5_000_000_000_000;

/// `max_pool_minor` of the generated policy (below [`POOL_MINOR`], so it binds).
pub const MAX_POOL_MINOR: u64 = 4_800_000_000_000;

/// `min_payout_minor` of the generated policy.
pub const MIN_PAYOUT_MINOR: u64 = 100;

/// `actor_cap_bps` of the generated policy (2% of the distributable pool).
pub const ACTOR_CAP_BPS: u16 = 200;

/// `policy_id` of the generated policy.
pub const POLICY_ID: &str = "perf-v1";

/// A kind the policy weights but no generated inputs document uses.
pub const UNUSED_KIND: &str = "gpu_s";

/// How the units of one kind's events are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    /// Uniform in `lo..=hi`.
    Uniform(u64, u64),
    /// Log-uniform in `2^lo..2^hi`: an exponent `e` in `lo..hi`, then uniform in `2^e..2^(e+1)`.
    Log2(u32, u32),
}

/// One kind of usage: its name, how often it occurs, its units, and its policy terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindSpec {
    /// The kind name as it appears in `kinds`, `weights` and `caps`.
    pub name: &'static str,
    /// Share of events, in per mille (the shares of [`KINDS`] add up to 1000).
    pub per_mille: u64,
    /// How the units of an event are drawn.
    pub units: Units,
    /// The policy weight.
    pub weight: u32,
    /// The policy cap on units per actor per epoch, if any.
    pub cap: Option<u64>,
}

/// The kinds of every generated inputs document, in `kinds` order.
pub const KINDS: [KindSpec; 6] = [
    KindSpec { name: "bytes_served", per_mille: 250, units: Units::Log2(10, 27), weight: 1, cap: None },
    KindSpec {
        name: "uptime_s",
        per_mille: 120,
        units: Units::Uniform(60, 3600),
        weight: 10_000,
        cap: Some(86_400),
    },
    KindSpec {
        name: "storage_gb_h",
        per_mille: 60,
        units: Units::Uniform(1, 1000),
        weight: 20_000,
        cap: Some(10_000),
    },
    KindSpec { name: "requests", per_mille: 300, units: Units::Log2(0, 14), weight: 1_000, cap: None },
    KindSpec { name: "egress_bytes", per_mille: 150, units: Units::Log2(10, 24), weight: 1, cap: None },
    KindSpec { name: "relay_ms", per_mille: 120, units: Units::Uniform(1, 60_000), weight: 200, cap: None },
];

/// Weight of [`UNUSED_KIND`] in the generated policy.
pub const UNUSED_KIND_WEIGHT: u32 = 10_000;

/// A generation size: how many actors and events one inputs document holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scale {
    /// 1,000 actors, 10,000 events.
    S,
    /// 10,000 actors, 100,000 events.
    M,
    /// 50,000 actors, 500,000 events.
    L,
}

impl Scale {
    /// Every scale, smallest first.
    pub const ALL: [Scale; 3] = [Scale::S, Scale::M, Scale::L];

    /// Number of actors in a document of this scale.
    pub fn actors(self) -> usize {
        match self {
            Scale::S => 1_000,
            Scale::M => 10_000,
            Scale::L => 50_000,
        }
    }

    /// Number of events in a document of this scale.
    pub fn events(self) -> usize {
        match self {
            Scale::S => 10_000,
            Scale::M => 100_000,
            Scale::L => 500_000,
        }
    }

    fn tag(self) -> u8 {
        match self {
            Scale::S => b'S',
            Scale::M => b'M',
            Scale::L => b'L',
        }
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scale::S => "S",
            Scale::M => "M",
            Scale::L => "L",
        })
    }
}

/// The error of parsing a [`Scale`] from anything but `S`, `M` or `L` (either case).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseScaleError(String);

impl fmt::Display for ParseScaleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown scale {:?} (expected S, M or L)", self.0)
    }
}

impl std::error::Error for ParseScaleError {}

impl FromStr for Scale {
    type Err = ParseScaleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "S" | "s" => Ok(Scale::S),
            "M" | "m" => Ok(Scale::M),
            "L" | "l" => Ok(Scale::L),
            _ => Err(ParseScaleError(s.to_owned())),
        }
    }
}

/// Whether `epoch` is a valid epoch label: 1–128 chars of `[A-Za-z0-9._:-]` (CALCULUS.md §1.1).
pub fn is_valid_epoch(epoch: &str) -> bool {
    (1..=128).contains(&epoch.len())
        && epoch.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Generates an inputs document and its policy, as compact JSON bytes `(inputs, policy)`.
///
/// The result depends only on `(scale, epoch, seed)`: the epoch is written into the document
/// and also seeds the data, so two epochs get different usage. The policy is the same for
/// every call (see the module docs).
///
/// # Panics
/// If `epoch` is not a valid epoch label (see [`is_valid_epoch`]).
pub fn generate(scale: Scale, epoch: &str, seed: u64) -> (Vec<u8>, Vec<u8>) {
    assert!(is_valid_epoch(epoch), "invalid epoch label {epoch:?}");
    (inputs(scale, epoch, seed), policy())
}

/// Folds the generation parameters into one 64-bit root seed (FNV-1a, then a final mix).
fn root_seed(scale: Scale, epoch: &str, seed: u64) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    let mut fold = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        }
    };
    fold(b"rewarder-testkit.vectors.v1\0");
    fold(&[scale.tag(), 0]);
    fold(epoch.as_bytes());
    fold(&[0]);
    fold(&seed.to_le_bytes());
    mix64(h)
}

/// An independent stream for one aspect of the data, so aspects do not disturb each other.
fn stream(root: u64, aspect: u64) -> SplitMix64 {
    SplitMix64::new(mix64(root ^ aspect.wrapping_mul(0xA076_1D64_78BD_642F)))
}

fn inputs(scale: Scale, epoch: &str, seed: u64) -> Vec<u8> {
    let (n_actors, n_events) = (scale.actors(), scale.events());
    let root = root_seed(scale, epoch, seed);
    let mut out = Vec::with_capacity(n_actors * 28 + n_events * 34 + 512);

    out.extend_from_slice(b"{\"schema\":\"rewarder.inputs.v1\",\"epoch\":\"");
    out.extend_from_slice(epoch.as_bytes());
    out.extend_from_slice(b"\",\"pool_minor\":\"");
    push_u64(&mut out, POOL_MINOR);
    out.extend_from_slice(b"\",\"kinds\":[");
    for (i, k) in KINDS.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(&mut out, k.name);
    }

    // Actor ids, made in index order (each embeds its index, which keeps them unique), then
    // shuffled so the array is in no particular order.
    let mut rng = stream(root, 1);
    let mut actors: Vec<String> = (0..n_actors as u64)
        .map(|i| {
            let mut id = String::with_capacity(32);
            actor_id(&mut rng, root, i, &mut id);
            debug_assert!(id.len() <= 128 && id.bytes().all(|b| (0x21..=0x7E).contains(&b)));
            debug_assert!(!id.contains(['"', '\\']));
            id
        })
        .collect();
    rng.shuffle(&mut actors);
    out.extend_from_slice(b"],\"actors\":[");
    for (i, id) in actors.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(&mut out, id);
    }
    drop(actors);

    // Popularity rank -> position in `actors`: the heavy actors sit anywhere in the array.
    let mut by_rank: Vec<u32> = (0..n_actors as u32).collect();
    stream(root, 2).shuffle(&mut by_rank);

    // Unique event ids: increasing by gaps of 1..=4 from a seeded 13-digit base, then shuffled.
    let mut rng = stream(root, 3);
    let mut next_id = 1_000_000_000_000 + rng.below(1 << 40);
    let mut ids: Vec<u64> = Vec::with_capacity(n_events);
    for _ in 0..n_events {
        ids.push(next_id);
        next_id += 1 + rng.below(4);
    }
    rng.shuffle(&mut ids);

    out.extend_from_slice(b"],\"events\":[");
    let mut rng = stream(root, 4);
    for (j, &event_id) in ids.iter().enumerate() {
        if j > 0 {
            out.push(b',');
        }
        let actor = by_rank[power_law_rank(&mut rng, n_actors as u64) as usize];
        let kind = pick_kind(&mut rng);
        let units = draw_units(&mut rng, KINDS[kind].units);
        out.push(b'[');
        push_u64(&mut out, event_id);
        out.push(b',');
        push_u64(&mut out, u64::from(actor));
        out.push(b',');
        push_u64(&mut out, kind as u64);
        out.push(b',');
        push_u64(&mut out, units);
        out.push(b']');
    }
    out.extend_from_slice(b"]}");
    out
}

fn policy() -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"schema\":\"rewarder.policy.v1\",\"policy_id\":");
    push_str(&mut out, POLICY_ID);
    out.extend_from_slice(b",\"weights\":{");
    for k in &KINDS {
        push_str(&mut out, k.name);
        out.push(b':');
        push_u64(&mut out, u64::from(k.weight));
        out.push(b',');
    }
    push_str(&mut out, UNUSED_KIND);
    out.push(b':');
    push_u64(&mut out, u64::from(UNUSED_KIND_WEIGHT));
    out.extend_from_slice(b"},\"caps\":{");
    let mut first = true;
    for k in &KINDS {
        if let Some(cap) = k.cap {
            if !first {
                out.push(b',');
            }
            first = false;
            push_str(&mut out, k.name);
            out.push(b':');
            push_u64(&mut out, cap);
        }
    }
    out.extend_from_slice(b"},\"actor_cap_bps\":");
    push_u64(&mut out, u64::from(ACTOR_CAP_BPS));
    out.extend_from_slice(b",\"min_payout_minor\":\"");
    push_u64(&mut out, MIN_PAYOUT_MINOR);
    out.extend_from_slice(b"\",\"max_pool_minor\":\"");
    push_u64(&mut out, MAX_POOL_MINOR);
    out.extend_from_slice(b"\"}");
    out
}

/// A popularity rank in `0..n` with `P(rank < k) = (k/n)^¼`: `⌊n·u⁴⌋`, `u` a 32-bit fraction.
fn power_law_rank(rng: &mut SplitMix64, n: u64) -> u64 {
    let u = rng.next_u64() >> 32;
    let u2 = (u * u) >> 32;
    let u4 = (u2 * u2) >> 32;
    (u4 * n) >> 32
}

fn pick_kind(rng: &mut SplitMix64) -> usize {
    let mut x = rng.below(1000);
    for (i, k) in KINDS.iter().enumerate() {
        if x < k.per_mille {
            return i;
        }
        x -= k.per_mille;
    }
    unreachable!("KINDS per-mille shares add up to 1000")
}

fn draw_units(rng: &mut SplitMix64, units: Units) -> u64 {
    if rng.below(512) == 0 {
        return 0;
    }
    match units {
        Units::Uniform(lo, hi) => rng.range(lo, hi),
        Units::Log2(lo, hi) => {
            let e = rng.range(u64::from(lo), u64::from(hi) - 1);
            (1 << e) + rng.below(1 << e)
        }
    }
}

const WORDS: [&str; 32] = [
    "amber", "birch", "cobalt", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper",
    "kestrel", "lumen", "maple", "nimbus", "onyx", "pebble", "quartz", "raven", "sable", "tundra", "umber",
    "vesper", "willow", "xenon", "yarrow", "zephyr", "alder", "basalt", "cedar", "dune", "falcon", "granite",
];

const DOMAINS: [&str; 8] = [
    "example.org",
    "example.net",
    "mail.example.com",
    "corp.example",
    "edge.example.io",
    "co.example.uk",
    "ops.example.dev",
    "x.example",
];

const BASE58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes actor `i`'s id. Every form carries a component unique to `i` (and the forms have
/// distinct shapes), so ids never collide.
fn actor_id(rng: &mut SplitMix64, root: u64, i: u64, id: &mut String) {
    use std::fmt::Write as _;
    let form = rng.below(100);
    // A bijection of the index: unique per actor, but not sequential.
    let tag = mix64(i ^ root);
    let word = |rng: &mut SplitMix64| WORDS[rng.below(WORDS.len() as u64) as usize];
    match form {
        // acct:0001234 — sparse account numbers, 7 digits.
        0..45 => {
            let _ = write!(id, "acct:{:07}", i * 7 + rng.below(7));
        }
        // node:<16 hex>
        45..65 => {
            let _ = write!(id, "node:{tag:016x}");
        }
        // did:key:z6Mk<11 base58 of the tag><33 random base58>
        65..75 => {
            id.push_str("did:key:z6Mk");
            let mut t = tag;
            for _ in 0..11 {
                id.push(BASE58[(t % 58) as usize] as char);
                t /= 58;
            }
            for _ in 0..33 {
                id.push(BASE58[rng.below(58) as usize] as char);
            }
        }
        // name+N@domain
        75..88 => {
            let w = word(rng);
            let d = DOMAINS[rng.below(DOMAINS.len() as u64) as usize];
            let _ = write!(id, "{w}+{i}@{d}");
        }
        // user/word-word-N
        88..97 => {
            let (a, b) = (word(rng), word(rng));
            let _ = write!(id, "user/{a}-{b}-{i}");
        }
        // org:<domain>/region-<word>/cluster-NN/<32..64 hex>#N — long ids, at most ~120 bytes.
        _ => {
            let d = DOMAINS[rng.below(DOMAINS.len() as u64) as usize];
            let r = word(rng);
            let c = rng.below(100);
            let _ = write!(id, "org:{d}/region-{r}/cluster-{c:02}/");
            for _ in 0..rng.range(32, 64) {
                id.push(HEX[rng.below(16) as usize] as char);
            }
            let _ = write!(id, "#{i}");
        }
    }
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    // Every string written here is plain printable ASCII without `"` or `\`: no escaping needed.
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests;
