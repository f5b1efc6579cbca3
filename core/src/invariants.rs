//! The invariants of CALCULUS.md §3, checked on every run before anything leaves the process.
//! A failure is a defect, never a user error: it becomes `500 invariant_violation`.

use crate::calculus::Outcome;
use crate::error::{Code, Error};
use crate::inputs::Inputs;

fn violated(invariant: &'static str, what: String) -> Error {
    Error::new(Code::InvariantViolation, format!("invariant {invariant} violated: {what}"))
        .with_detail("invariant", invariant)
}

/// Checks I-1 (conservation), I-2 (bounds) and I-3 (order); I-4 (overflow) is enforced by the
/// checked arithmetic of the calculus itself.
pub fn check(inputs: &Inputs, outcome: &Outcome) -> Result<(), Error> {
    let sum: u128 = outcome.payees.iter().map(|p| u128::from(p.amount)).sum();
    let (pool, dist) = (u128::from(outcome.pool_minor), u128::from(outcome.distributable_minor));
    if sum != u128::from(outcome.payout_total_minor)
        || sum + u128::from(outcome.residual_minor) != pool
        || sum > dist
        || dist > pool
    {
        return Err(violated(
            "I-1",
            format!("sum {sum} + residual {} vs pool {pool}, distributable {dist}", outcome.residual_minor),
        ));
    }
    let floor = outcome.min_payout_minor.max(1);
    for p in &outcome.payees {
        if p.amount < floor || outcome.ceiling_minor.is_some_and(|m| p.amount > m) {
            return Err(violated("I-2", format!("payee #{} amount {} out of bounds", p.actor, p.amount)));
        }
    }
    for w in outcome.payees.windows(2) {
        if inputs.actor(w[0].actor as usize).as_bytes() >= inputs.actor(w[1].actor as usize).as_bytes() {
            return Err(violated("I-3", format!("payees #{} and #{} out of order", w[0].actor, w[1].actor)));
        }
    }
    Ok(())
}
