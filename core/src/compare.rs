//! Policy what-if: one sealed epoch under two policies, side by side. Both runs with their
//! manifests and digests, one row per actor (amount under A and under B, the delta, whether
//! the per-actor ceiling bound it and whether its allocation was dust on either side), and
//! summary figures for each side: payees, payout total, residual, the Gini coefficient, the
//! top-1 % and top-10 % shares, and how many actors the limits bound (API.md §1.3).
//!
//! Every figure is read off the two runs themselves: their payees, and the [`Bounds`] that the
//! allocation pass which made each run recorded. Nothing is recomputed by a second method that
//! could disagree with the runs, and everything is exact: integers, and ratios kept as
//! fractions until they are rendered (six decimals, rounded half to even).
//!
//! [`json`] renders the body the CLI prints and the HTTP route answers; [`html`] the
//! self-contained report. Neither computes anything of its own.

use std::cmp::Reverse;
use std::fmt;
use std::sync::Arc;

use ethnum::U256;

use crate::calculus::Bounds;
use crate::error::{Code, Error};
use crate::inputs::Inputs;
use crate::policy::Policy;
use crate::run::Run;

pub mod html;
pub mod json;

/// Rows listed when a request names no `top`.
pub const TOP_DEFAULT: usize = 100;
/// The most rows a comparison lists (`top`); the summaries always cover every actor.
pub const TOP_MAX: usize = 10_000;
const _: () = assert!(TOP_DEFAULT <= TOP_MAX);

/// Decimal places of a rendered [`Ratio`].
const DECIMALS: u32 = 6;

/// A non-negative exact fraction, rendered with six decimals rounded half to even.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    num: u128,
    den: u128,
}

impl Ratio {
    /// `num / den` in lowest terms; `0` when `den` is 0 (a share of nothing, the Gini of no
    /// payout: the definitions say 0).
    pub fn new(num: u128, den: u128) -> Ratio {
        if den == 0 || num == 0 {
            return Ratio { num: 0, den: 1 };
        }
        let g = gcd(num, den);
        Ratio { num: num / g, den: den / g }
    }

    /// The numerator, in lowest terms.
    pub fn num(&self) -> u128 {
        self.num
    }

    /// The denominator, in lowest terms (at least 1).
    pub fn den(&self) -> u128 {
        self.den
    }

    /// `other − self`, exact, rendered like a ratio with a sign: `+0.012345`, `-0.5`… or
    /// `0.000000` when it rounds to zero.
    pub fn change_to(&self, other: &Ratio) -> String {
        let before = U256::from(self.num) * U256::from(other.den);
        let after = U256::from(other.num) * U256::from(self.den);
        let den = U256::from(self.den) * U256::from(other.den);
        let (negative, num) = if after >= before { (false, after - before) } else { (true, before - after) };
        let text = decimal(num, den);
        if text.bytes().all(|b| b == b'0' || b == b'.') {
            text
        } else if negative {
            format!("-{text}")
        } else {
            format!("+{text}")
        }
    }
}

impl fmt::Display for Ratio {
    /// Six decimals, rounded half to even: `1/15` is `0.066667`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&decimal(U256::from(self.num), U256::from(self.den)))
    }
}

/// `num / den` (`den > 0`) with [`DECIMALS`] decimals, rounded half to even. U256 holds every
/// product here: numerators stay below 2^193 (a difference of two cross products of 96-bit
/// terms), and 10^6 < 2^20.
fn decimal(num: U256, den: U256) -> String {
    let scale = U256::from(10u32.pow(DECIMALS));
    let scaled = num * scale;
    let (mut q, r) = (scaled / den, scaled % den);
    let twice = r * U256::from(2u8);
    if twice > den || (twice == den && q % U256::from(2u8) == U256::ONE) {
        q += U256::ONE;
    }
    let (int, frac) = (q / scale, q % scale);
    format!("{int}.{frac:0width$}", width = DECIMALS as usize)
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The figures of one side of a comparison, over the whole population (every actor of the
/// inputs, zero payouts included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Actors paid (allocation above 0 after dust).
    pub payees: u64,
    /// `Σ amount`.
    pub payout_total_minor: u64,
    /// `P − Σ amount`.
    pub residual_minor: u64,
    /// The Gini coefficient `Σ_i Σ_j |x_i − x_j| / (2 n Σx)`; 0 when `n = 0` or all equal.
    pub gini: Ratio,
    /// The share of the `⌈n/100⌉` largest payouts in the payout total.
    pub top1_share: Ratio,
    /// The share of the `⌈n/10⌉` largest payouts in the payout total.
    pub top10_share: Ratio,
    /// Actors the per-actor ceiling (`actor_cap_bps`) bound.
    pub capped: u64,
    /// Actors whose score a kind cap lowered.
    pub kind_capped: u64,
    /// Actors whose allocation was under the dust threshold (and so not paid).
    pub dust: u64,
}

/// One side of a comparison: its run, what the policy's limits bound in it, its figures.
#[derive(Debug, Clone)]
pub struct Side {
    run: Run,
    bounds: Bounds,
    summary: Summary,
    /// Every payee's amount, ascending (the non-payees are zeros below them).
    ascending: Vec<u64>,
}

impl Side {
    fn new(run: Run, bounds: Bounds) -> Side {
        let mut ascending: Vec<u64> = run.outcome().payees.iter().map(|p| p.amount).collect();
        ascending.sort_unstable();
        let population = run.inputs().actor_count() as u128;
        let total = u128::from(run.outcome().payout_total_minor);
        let top_share = |k: u128| {
            let k = usize::try_from(k).unwrap_or(usize::MAX).min(ascending.len());
            Ratio::new(ascending[ascending.len() - k..].iter().map(|&x| u128::from(x)).sum(), total)
        };
        let summary = Summary {
            payees: ascending.len() as u64,
            payout_total_minor: run.outcome().payout_total_minor,
            residual_minor: run.outcome().residual_minor,
            gini: gini(population, &ascending, total),
            top1_share: top_share(population.div_ceil(100)),
            top10_share: top_share(population.div_ceil(10)),
            capped: bounds.ceiling.len() as u64,
            kind_capped: bounds.kind_capped.len() as u64,
            dust: bounds.dust.len() as u64,
        };
        Side { run, bounds, summary, ascending }
    }

    /// The run, exactly as a compute of the same documents and tenant makes it.
    pub fn run(&self) -> &Run {
        &self.run
    }

    /// Which actors the policy's limits bound in the run.
    pub fn bounds(&self) -> &Bounds {
        &self.bounds
    }

    /// The figures.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Every payee's amount, ascending; the other actors of the population are paid 0.
    pub fn payouts_ascending(&self) -> &[u64] {
        &self.ascending
    }
}

/// `Σ_i Σ_j |x_i − x_j| / (2 n Σx)` over a population of `n` whose non-zero amounts are
/// `ascending` (the `z = n − len` zeros sort first). With the amounts in ascending order,
/// `Σ_i Σ_j |x_i − x_j| = 2 Σ_i (2i − n − 1) x_(i)` (1-based `i`), so the coefficient is
/// `(2 Σ_i i·x_(i) − (n+1) Σx) / (n Σx)`: one pass, no pair. `Σ_i i·x_(i) ≤ n Σx < 2^32·2^64`,
/// so u128 holds every term.
fn gini(population: u128, ascending: &[u64], total: u128) -> Ratio {
    let zeros = population - ascending.len() as u128;
    let weighted: u128 = ascending.iter().zip(zeros + 1..).map(|(&x, i)| i * u128::from(x)).sum();
    // Half the sum of |x_i − x_j|: never negative, so the subtraction cannot wrap.
    let num = 2 * weighted - (population + 1) * total;
    Ratio::new(num, population * total)
}

/// One actor under both policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row<'a> {
    /// The actor id (attacker-controlled text: escape it wherever it is shown).
    pub actor: &'a str,
    /// Its payout under policy A.
    pub amount_a: u64,
    /// Its payout under policy B.
    pub amount_b: u64,
    /// The per-actor ceiling bound it under A.
    pub capped_a: bool,
    /// The per-actor ceiling bound it under B.
    pub capped_b: bool,
    /// Its allocation under A was dust (not paid).
    pub dust_a: bool,
    /// Its allocation under B was dust (not paid).
    pub dust_b: bool,
}

impl Row<'_> {
    /// `amount_b − amount_a`.
    pub fn delta(&self) -> i128 {
        i128::from(self.amount_b) - i128::from(self.amount_a)
    }
}

const CAPPED_A: u8 = 1;
const CAPPED_B: u8 = 2;
const DUST_A: u8 = 4;
const DUST_B: u8 = 8;

/// One epoch under two policies: both sides and every actor's row.
#[derive(Debug, Clone)]
pub struct Comparison {
    a: Side,
    b: Side,
    /// Per actor, in [`Inputs::actor`] order: payout under A, under B, and the flags above.
    amount_a: Vec<u64>,
    amount_b: Vec<u64>,
    flags: Vec<u8>,
    gainers: usize,
    losers: usize,
}

impl Comparison {
    /// Computes `inputs` under `policy_a` and under `policy_b` for `tenant`, each through
    /// [`Run::compute_with_bounds`], and compares the two runs.
    pub fn compute(
        inputs: &Arc<Inputs>,
        policy_a: &Policy,
        policy_b: &Policy,
        tenant: &str,
    ) -> Result<Comparison, Error> {
        let a = Run::compute_with_bounds(inputs, policy_a, tenant)?;
        let b = Run::compute_with_bounds(inputs, policy_b, tenant)?;
        Comparison::new(a, b)
    }

    /// Compares two runs (each with the bounds its own allocation recorded), for a host that
    /// computes them itself (a node times and counts each run).
    ///
    /// Runs of different inputs or tenants cannot be compared: `Code::Internal` (a caller's
    /// defect, never a user's).
    pub fn new(a: (Run, Bounds), b: (Run, Bounds)) -> Result<Comparison, Error> {
        let (ra, rb) = (a.0.inputs(), b.0.inputs());
        if !(Arc::ptr_eq(ra, rb) || ra.cid() == rb.cid()) || a.0.manifest().tenant != b.0.manifest().tenant {
            return Err(Error::new(Code::Internal, "compared runs must share their inputs and tenant"));
        }
        let population = ra.actor_count();
        let dense = |run: &Run| {
            let mut amount = vec![0u64; population];
            for p in &run.outcome().payees {
                amount[p.actor as usize] = p.amount;
            }
            amount
        };
        let (amount_a, amount_b) = (dense(&a.0), dense(&b.0));
        let mut flags = vec![0u8; population];
        for (list, flag) in
            [(&a.1.ceiling, CAPPED_A), (&b.1.ceiling, CAPPED_B), (&a.1.dust, DUST_A), (&b.1.dust, DUST_B)]
        {
            for &i in list {
                flags[i as usize] |= flag;
            }
        }
        let gainers = amount_a.iter().zip(&amount_b).filter(|(a, b)| b > a).count();
        let losers = amount_a.iter().zip(&amount_b).filter(|(a, b)| b < a).count();
        Ok(Comparison {
            a: Side::new(a.0, a.1),
            b: Side::new(b.0, b.1),
            amount_a,
            amount_b,
            flags,
            gainers,
            losers,
        })
    }

    /// Side A (the first policy).
    pub fn a(&self) -> &Side {
        &self.a
    }

    /// Side B (the second policy).
    pub fn b(&self) -> &Side {
        &self.b
    }

    /// The inputs both runs were computed from.
    pub fn inputs(&self) -> &Arc<Inputs> {
        self.a.run.inputs()
    }

    /// Every actor of the inputs, paid or not.
    pub fn population(&self) -> usize {
        self.amount_a.len()
    }

    /// Actors paid more under B than under A.
    pub fn gainers(&self) -> usize {
        self.gainers
    }

    /// Actors paid less under B than under A.
    pub fn losers(&self) -> usize {
        self.losers
    }

    /// `payout_total_B − payout_total_A`, which is also the sum of every row's delta.
    pub fn payout_delta(&self) -> i128 {
        i128::from(self.b.summary.payout_total_minor) - i128::from(self.a.summary.payout_total_minor)
    }

    /// Every actor's row, in ascending order of actor id.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = Row<'_>> + '_ {
        (0..self.population()).map(|i| self.row_at(i))
    }

    /// The row of `actor`; `None` when the inputs do not list it.
    pub fn row(&self, actor: &str) -> Option<Row<'_>> {
        self.inputs().actor_index(actor).map(|i| self.row_at(i))
    }

    /// The movers (rows whose payout changed), at most `limit`, in mover order: `|delta|`
    /// descending, then actor id ascending (byte order).
    pub fn movers(&self, limit: usize) -> Vec<Row<'_>> {
        self.ranked(limit, |i| self.amount_a[i] != self.amount_b[i])
    }

    /// The rows paid more under B, at most `limit`, in mover order.
    pub fn top_gainers(&self, limit: usize) -> Vec<Row<'_>> {
        self.ranked(limit, |i| self.amount_b[i] > self.amount_a[i])
    }

    /// The rows paid less under B, at most `limit`, in mover order.
    pub fn top_losers(&self, limit: usize) -> Vec<Row<'_>> {
        self.ranked(limit, |i| self.amount_b[i] < self.amount_a[i])
    }

    /// The rows the per-actor ceiling bound under A or B, at most `limit`, in mover order.
    pub fn capped(&self, limit: usize) -> Vec<Row<'_>> {
        self.ranked(limit, |i| self.flags[i] & (CAPPED_A | CAPPED_B) != 0)
    }

    fn row_at(&self, i: usize) -> Row<'_> {
        let flags = self.flags[i];
        Row {
            actor: self.inputs().actor(i),
            amount_a: self.amount_a[i],
            amount_b: self.amount_b[i],
            capped_a: flags & CAPPED_A != 0,
            capped_b: flags & CAPPED_B != 0,
            dust_a: flags & DUST_A != 0,
            dust_b: flags & DUST_B != 0,
        }
    }

    /// The first `limit` actors that `keep` selects, in mover order. Actor indices ascend with
    /// the ids' byte order, so the index breaks ties; only the first `limit` are sorted.
    fn ranked(&self, limit: usize, keep: impl Fn(usize) -> bool) -> Vec<Row<'_>> {
        let order = |i: &usize| (Reverse(self.amount_a[*i].abs_diff(self.amount_b[*i])), *i);
        let mut picked: Vec<usize> = (0..self.population()).filter(|&i| keep(i)).collect();
        if limit < picked.len() {
            picked.select_nth_unstable_by_key(limit, order);
            picked.truncate(limit);
        }
        picked.sort_unstable_by_key(order);
        picked.into_iter().map(|i| self.row_at(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_round_half_to_even_at_six_decimals() {
        let cases: [((u128, u128), &str); 9] = [
            ((1, 15), "0.066667"),
            ((2, 3), "0.666667"),
            ((1, 2_000_000), "0.000000"),
            ((3, 2_000_000), "0.000002"),
            ((5, 2_000_000), "0.000002"),
            ((7, 2_000_000), "0.000004"),
            ((1, 1), "1.000000"),
            ((0, 0), "0.000000"),
            ((u64::MAX as u128, u64::MAX as u128 + 1), "1.000000"),
        ];
        for ((num, den), want) in cases {
            assert_eq!(Ratio::new(num, den).to_string(), want, "{num}/{den}");
        }
        assert_eq!((Ratio::new(6, 4).num(), Ratio::new(6, 4).den()), (3, 2));
    }

    #[test]
    fn changes_carry_a_sign_unless_they_round_to_zero() {
        let third = Ratio::new(1, 3);
        assert_eq!(third.change_to(&Ratio::new(1, 2)), "+0.166667");
        assert_eq!(Ratio::new(1, 2).change_to(&third), "-0.166667");
        assert_eq!(third.change_to(&third), "0.000000");
        assert_eq!(Ratio::new(0, 1).change_to(&Ratio::new(1, 4_000_000)), "0.000000");
    }

    #[test]
    fn gini_of_small_populations() {
        // [0, 0, 0, 4]: Σ|xi−xj| = 2·3·4 = 24, 2nΣx = 32 → 3/4.
        assert_eq!(gini(4, &[4], 4), Ratio::new(3, 4));
        // [3, 3, 4]: Σ|xi−xj| = 4, 2nΣx = 60 → 1/15.
        assert_eq!(gini(3, &[3, 3, 4], 10), Ratio::new(1, 15));
        assert_eq!(gini(3, &[5, 5, 5], 15), Ratio::new(0, 1));
        assert_eq!(gini(0, &[], 0), Ratio::new(0, 1));
        assert_eq!(gini(5, &[], 0), Ratio::new(0, 1));
    }
}
