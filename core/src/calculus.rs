//! The reward calculus of CALCULUS.md §2: usage → capped usage → scores → water-filling under
//! the per-actor ceiling → largest remainder → dust → residual. Exact integers throughout.

use crate::error::{Code, Error};
use crate::inputs::Inputs;
use crate::policy::Policy;
use crate::wide;

/// One actor that is paid: an index into the inputs' sorted actors, its amount and score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payee {
    /// Index of the actor in [`Inputs::actor`] order (ascending id).
    pub actor: u32,
    /// Amount paid, in minor units (`≥ max(1, min_payout_minor)`).
    pub amount: u64,
    /// The actor's score `s[a]`.
    pub score: u128,
}

/// What one epoch pays under one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The epoch's pool `P`.
    pub pool_minor: u64,
    /// `D = min(P, max_pool_minor)`.
    pub distributable_minor: u64,
    /// `Σ amount` over payees.
    pub payout_total_minor: u64,
    /// `P − Σ amount`.
    pub residual_minor: u64,
    /// The per-actor ceiling `M`, when the policy sets `actor_cap_bps`.
    pub ceiling_minor: Option<u64>,
    /// The policy's dust threshold.
    pub min_payout_minor: u64,
    /// Payees ascending by actor id.
    pub payees: Vec<Payee>,
}

/// Which actors a policy's limits bound in one run, recorded by the same pass that allocated
/// (a comparison reports them beside the amounts; a plain compute does not ask for them).
/// Every list holds actor indices ([`Inputs::actor`] order), ascending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bounds {
    /// Actors the per-actor ceiling bound: water-filling allocated them exactly `M` (§2.6).
    pub ceiling: Vec<u32>,
    /// Actors whose score a kind cap lowered: more units than `caps[k]` of a kind `k` whose
    /// weight is not 0 (§2.2; a cap on a weightless kind changes no score).
    pub kind_capped: Vec<u32>,
    /// Actors whose allocation was dust: `0 < x < min_payout_minor`, so not paid (§2.8).
    pub dust: Vec<u32>,
}

fn overflow(what: &str) -> Error {
    Error::new(Code::InvariantViolation, format!("invariant I-4 violated: {what} overflowed"))
        .with_detail("invariant", "I-4")
}

/// `s[a]` for every actor (CALCULUS.md §2.1–2.3), in the inputs' actor order.
///
/// u128 cannot overflow for any document that fits in memory: each event adds at most
/// (2^53−1)·10^6 < 2^73, so 2^55 events would be needed. The check stays (I-4).
pub fn scores(inputs: &Inputs, policy: &Policy) -> Result<Vec<u128>, Error> {
    scores_noting(inputs, policy, None)
}

/// [`scores`], noting in `kind_capped` (when asked) the actors a kind cap bound.
fn scores_noting(
    inputs: &Inputs,
    policy: &Policy,
    mut kind_capped: Option<&mut Vec<u32>>,
) -> Result<Vec<u128>, Error> {
    let weights: Vec<u128> = inputs.kinds().iter().map(|k| u128::from(policy.weight(k))).collect();
    let caps: Vec<u128> =
        inputs.kinds().iter().map(|k| policy.cap(k).map_or(u128::MAX, u128::from)).collect();
    let mut out = Vec::with_capacity(inputs.actor_count());
    for a in 0..inputs.actor_count() {
        let mut s: u128 = 0;
        for u in inputs.usage(a) {
            let k = usize::from(u.kind);
            let capped = u.units.min(caps[k]);
            let term = weights[k].checked_mul(capped).ok_or_else(|| overflow("a score term"))?;
            s = s.checked_add(term).ok_or_else(|| overflow("a score"))?;
        }
        // Asked only by a comparison: a plain compute pays nothing for it.
        if let Some(list) = kind_capped.as_deref_mut()
            && inputs
                .usage(a)
                .iter()
                .any(|u| u.units > caps[usize::from(u.kind)] && weights[usize::from(u.kind)] > 0)
        {
            list.push(a as u32);
        }
        out.push(s);
    }
    Ok(out)
}

/// Computes the allocations of CALCULUS.md §2 (invariants are checked by the caller).
pub fn allocate(inputs: &Inputs, policy: &Policy) -> Result<Outcome, Error> {
    allocate_noting(inputs, policy, None)
}

/// [`allocate`], and which actors the policy's limits bound on the way.
pub fn allocate_with_bounds(inputs: &Inputs, policy: &Policy) -> Result<(Outcome, Bounds), Error> {
    let mut bounds = Bounds::default();
    let outcome = allocate_noting(inputs, policy, Some(&mut bounds))?;
    Ok((outcome, bounds))
}

/// The one allocation pass; `bounds`, when given, collects what [`Bounds`] describes. Noting
/// is optional so that a plain compute (the hot path) allocates nothing for it.
fn allocate_noting(
    inputs: &Inputs,
    policy: &Policy,
    mut bounds: Option<&mut Bounds>,
) -> Result<Outcome, Error> {
    let score = scores_noting(inputs, policy, bounds.as_deref_mut().map(|b| &mut b.kind_capped))?;
    let pool = inputs.pool_minor();
    let distributable = policy.max_pool_minor().map_or(pool, |m| m.min(pool));
    let ceiling =
        policy.actor_cap_bps().map(|bps| (u128::from(distributable) * u128::from(bps) / 10_000) as u64);

    let mut amount = vec![0u64; score.len()];
    // Actors still sharing the remainder, and what is left to share.
    let mut active: Vec<u32> = (0..score.len() as u32).filter(|&a| score[a as usize] > 0).collect();
    let mut rest = u128::from(distributable);
    let mut total: u128 = active.iter().map(|&a| score[a as usize]).sum();

    if let Some(m) = ceiling {
        // X = {a : R·s[a] > M·S} is always the head of the actors by score descending, so a
        // moving cut over them replaces the spec's repeated scans (never quadratic). Summing
        // the condition over X gives R·Σs > |X|·M·S with Σs ≤ S, so fewer than R/M ≤ D/M
        // actors are ever capped: only that many of the heaviest need ordering, found by one
        // selection, not a sort of every actor.
        let head = match distributable.checked_div(m) {
            Some(k) => usize::try_from(k).map_or(active.len(), |k| k.saturating_add(1).min(active.len())),
            None => active.len(),
        };
        let by_score_desc = |x: &u32, y: &u32| score[*y as usize].cmp(&score[*x as usize]);
        if head < active.len() {
            active.select_nth_unstable_by(head, by_score_desc);
        }
        active[..head].sort_unstable_by(by_score_desc);
        let mut cut = 0;
        loop {
            let bound = wide::mul(u128::from(m), total);
            let mut end = cut;
            while end < head && wide::mul(rest, score[active[end] as usize]) > bound {
                end += 1;
            }
            if end == cut {
                break;
            }
            for &a in &active[cut..end] {
                amount[a as usize] = m;
                total -= score[a as usize];
            }
            if let Some(b) = bounds.as_deref_mut() {
                b.ceiling.extend_from_slice(&active[cut..end]);
            }
            let paid = u128::from(m) * (end - cut) as u128;
            rest = rest.checked_sub(paid).ok_or_else(|| overflow("the water-filling remainder"))?;
            cut = end;
        }
        active.drain(..cut);
        if let Some(b) = bounds.as_deref_mut() {
            // Capped heaviest first; every list of `Bounds` is ascending.
            b.ceiling.sort_unstable();
        }
    }

    largest_remainder(&active, &score, rest, total, &mut amount)?;

    let min_payout = policy.min_payout_minor();
    // Sized exactly: a stored run keeps this list for as long as it is stored.
    let paid_count = amount.iter().filter(|&&x| x > 0 && x >= min_payout).count();
    let mut payees = Vec::with_capacity(paid_count);
    let mut paid: u64 = 0;
    for (a, &x) in amount.iter().enumerate() {
        if x > 0 && x >= min_payout {
            paid = paid.checked_add(x).ok_or_else(|| overflow("the payout total"))?;
            payees.push(Payee { actor: a as u32, amount: x, score: score[a] });
        } else if x > 0
            && let Some(b) = bounds.as_deref_mut()
        {
            b.dust.push(a as u32);
        }
    }
    Ok(Outcome {
        pool_minor: pool,
        distributable_minor: distributable,
        payout_total_minor: paid,
        residual_minor: pool.checked_sub(paid).ok_or_else(|| overflow("the residual"))?,
        ceiling_minor: ceiling,
        min_payout_minor: min_payout,
        payees,
    })
}

/// Step 7: `floor` shares, then one more unit to the `L` largest remainders (ties: lower id,
/// which is lower actor index). The order of `active` does not matter.
fn largest_remainder(
    active: &[u32],
    score: &[u128],
    rest: u128,
    total: u128,
    amount: &mut [u64],
) -> Result<(), Error> {
    if active.is_empty() || rest == 0 {
        return Ok(());
    }
    let mut remainders: Vec<(u128, u32)> = Vec::with_capacity(active.len());
    let mut given: u128 = 0;
    for &a in active {
        let (q, r) = wide::mul_div_rem(rest, score[a as usize], total).ok_or_else(|| overflow("a share"))?;
        // q ≤ rest ≤ 2^64−1 because score[a] ≤ total.
        amount[a as usize] = u64::try_from(q).map_err(|_| overflow("a share"))?;
        given += q;
        remainders.push((r, a));
    }
    let left = usize::try_from(rest - given).map_err(|_| overflow("the leftover"))?;
    if left == 0 {
        return Ok(());
    }
    // Larger remainder first, then lower index; only the set of the first `left` matters.
    let order = |x: &(u128, u32), y: &(u128, u32)| y.0.cmp(&x.0).then(x.1.cmp(&y.1));
    if left < remainders.len() {
        remainders.select_nth_unstable_by(left - 1, order);
    }
    for &(_, a) in remainders.iter().take(left) {
        amount[a as usize] += 1;
    }
    Ok(())
}
