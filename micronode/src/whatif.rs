//! The offline policy what-if of `rewarder-micronode compare`: one epoch under two policies
//! (rendered by the core as the JSON of API.md §1.3 and, on request, the HTML report), or a
//! sweep: the epoch under a series of policies that differ from a base policy in one weight,
//! one summary line per point.
//!
//! Every figure is the core's ([`Comparison`]); this module reads documents, builds the
//! sweep's policy documents and prints.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rewarder_core::calculus::Bounds;
use rewarder_core::{Code, Comparison, Error, Inputs, Limits, Policy, Run};
use serde::Serialize;
use serde_json::Value;

/// The most points one sweep computes (each point is a compare).
pub const SWEEP_POINTS_MAX: u64 = 100_000;

/// The heaviest weight a policy may give (CALCULUS.md §1.2).
const WEIGHT_MAX: u64 = 1_000_000;

/// Compares `inputs` under `policy_a` and `policy_b` (raw documents) for `tenant`.
pub fn compare(inputs: &[u8], policy_a: &[u8], policy_b: &[u8], tenant: &str) -> Result<Comparison, Error> {
    let inputs = Arc::new(Inputs::parse(inputs, &Limits::UNBOUNDED)?);
    let (a, b) = (Policy::parse(policy_a)?, Policy::parse(policy_b)?);
    Comparison::compute(&inputs, &a, &b, tenant)
}

/// `weight.KIND=LO..HI:STEP`: the weight of `KIND` from `LO` to `HI` (both included when the
/// steps reach it) by `STEP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sweep {
    kind: String,
    lo: u64,
    hi: u64,
    step: u64,
}

impl Sweep {
    /// The weights of the series, `LO`, `LO + STEP`, … up to `HI`.
    pub fn points(&self) -> impl Iterator<Item = u64> + '_ {
        (self.lo..=self.hi).step_by(usize::try_from(self.step).unwrap_or(usize::MAX))
    }

    /// `weight.KIND=VALUE`, naming one point.
    fn label(&self, value: u64) -> String {
        format!("weight.{}={value}", self.kind)
    }
}

/// Why a `--sweep` argument was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepSyntaxError(String);

impl fmt::Display for SweepSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (expected weight.KIND=LO..HI:STEP, e.g. weight.uptime_s=0..1000:10)", self.0)
    }
}

impl std::error::Error for SweepSyntaxError {}

impl FromStr for Sweep {
    type Err = SweepSyntaxError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| SweepSyntaxError(format!("--sweep {text:?}: {why}"));
        let (target, range) = text.split_once('=').ok_or_else(|| bad("no '='"))?;
        let kind = target.strip_prefix("weight.").ok_or_else(|| bad("only weight.KIND can be swept"))?;
        let kind_ok = (1..=64).contains(&kind.len())
            && kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.:-".contains(&b));
        if !kind_ok {
            return Err(bad("KIND is not a kind name (1-64 chars of [a-z0-9_.:-])"));
        }
        let (span, step) = range.split_once(':').ok_or_else(|| bad("no ':STEP'"))?;
        let (lo, hi) = span.split_once("..").ok_or_else(|| bad("no 'LO..HI'"))?;
        let number = |s: &str| {
            s.parse::<u64>()
                .ok()
                .filter(|n| s.bytes().all(|b| b.is_ascii_digit()) && *n <= WEIGHT_MAX)
                .ok_or_else(|| bad(&format!("{s:?} is not a weight (0 to {WEIGHT_MAX})")))
        };
        let (lo, hi, step) = (number(lo)?, number(hi)?, number(step)?);
        if lo > hi || step == 0 {
            return Err(bad("LO must not exceed HI, and STEP must be at least 1"));
        }
        if (hi - lo) / step + 1 > SWEEP_POINTS_MAX {
            return Err(bad(&format!("more than {SWEEP_POINTS_MAX} points")));
        }
        Ok(Sweep { kind: kind.to_owned(), lo, hi, step })
    }
}

/// One point of a sweep: the epoch under the base policy with one weight changed, compared
/// with the base.
#[derive(Serialize)]
struct Point<'a> {
    point: String,
    policy_hash: &'a str,
    manifest_digest: String,
    payees: u64,
    payout_total_minor: String,
    payout_min_minor: String,
    payout_max_minor: String,
    gini: String,
    gini_change: String,
    top10_share: String,
    movers: usize,
    gainers: usize,
    losers: usize,
}

/// Runs `sweep` over `inputs` from the base `policy` for `tenant`: one JSON line per point,
/// each comparing the point's policy with the base. The base run is computed once.
///
/// A point's policy is the base document with `weights[KIND]` set (the kind added when the
/// base does not weigh it), re-serialised: its own sealed document with its own hash.
pub fn sweep(inputs: &[u8], policy: &[u8], sweep: &Sweep, tenant: &str) -> Result<Vec<u8>, Error> {
    let inputs = Arc::new(Inputs::parse(inputs, &Limits::UNBOUNDED)?);
    let base = Run::compute_with_bounds(&inputs, &Policy::parse(policy)?, tenant)?;
    let mut document: Value = serde_json::from_slice(policy)
        .map_err(|_| Error::new(Code::MalformedJson, "the policy is not JSON"))?;
    let mut out = Vec::new();
    for value in sweep.points() {
        // A parsed policy always has a `weights` object.
        if let Some(weights) = document.get_mut("weights").and_then(Value::as_object_mut) {
            weights.insert(sweep.kind.clone(), value.into());
        }
        let raw = serde_json::to_vec(&document).map_err(|e| Error::new(Code::Internal, e.to_string()))?;
        let point = Run::compute_with_bounds(&inputs, &Policy::parse(&raw)?, tenant)?;
        let comparison = Comparison::new(clone_side(&base), point)?;
        let side = comparison.b();
        let summary = side.summary();
        let payouts = side.payouts_ascending();
        let row = Point {
            point: sweep.label(value),
            policy_hash: &side.run().manifest().policy_hash,
            manifest_digest: side.run().manifest_digest(),
            payees: summary.payees,
            payout_total_minor: summary.payout_total_minor.to_string(),
            payout_min_minor: payouts.first().copied().unwrap_or(0).to_string(),
            payout_max_minor: payouts.last().copied().unwrap_or(0).to_string(),
            gini: summary.gini.to_string(),
            gini_change: comparison.a().summary().gini.change_to(&summary.gini),
            top10_share: summary.top10_share.to_string(),
            movers: comparison.gainers() + comparison.losers(),
            gainers: comparison.gainers(),
            losers: comparison.losers(),
        };
        serde_json::to_writer(&mut out, &row).map_err(|e| Error::new(Code::Internal, e.to_string()))?;
        out.push(b'\n');
    }
    // The caller adds the last newline.
    out.pop();
    Ok(out)
}

fn clone_side(side: &(Run, Bounds)) -> (Run, Bounds) {
    (side.0.clone(), side.1.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_specs() {
        let s: Sweep = "weight.uptime_s=0..10:5".parse().unwrap();
        assert_eq!(s.points().collect::<Vec<_>>(), vec![0, 5, 10]);
        assert_eq!(s.label(5), "weight.uptime_s=5");
        let s: Sweep = "weight.k=3..3:1".parse().unwrap();
        assert_eq!(s.points().collect::<Vec<_>>(), vec![3]);
        assert_eq!("weight.k=1..10:4".parse::<Sweep>().unwrap().points().last(), Some(9));
        for bad in [
            "k=0..1:1",
            "cap.k=0..1:1",
            "weight.K=0..1:1",
            "weight.=0..1:1",
            "weight.k=0..1",
            "weight.k=0-1:1",
            "weight.k=2..1:1",
            "weight.k=0..1:0",
            "weight.k=0..1000001:1",
            "weight.k=+1..2:1",
            "weight.k=0..1000000:1",
        ] {
            assert!(bad.parse::<Sweep>().is_err(), "{bad}");
        }
    }
}
