//! Exact wide arithmetic for the calculus: products of a pool (≤ 2^64) and a score (< 2^128)
//! need up to 192 bits, so comparisons and divisions go through 256-bit integers.

use ethnum::U256;

/// `a × b` exactly.
#[inline]
pub fn mul(a: u128, b: u128) -> U256 {
    match a.checked_mul(b) {
        Some(p) => U256::from(p),
        None => U256::from(a) * U256::from(b),
    }
}

/// `(floor(a × b / d), (a × b) mod d)`, exact for all inputs; `None` when `d = 0` or the
/// quotient does not fit u128 (a defect in the caller: the calculus guarantees `b ≤ d`).
#[inline]
pub fn mul_div_rem(a: u128, b: u128, d: u128) -> Option<(u128, u128)> {
    if d == 0 {
        return None;
    }
    if let Some(p) = a.checked_mul(b) {
        return Some((p / d, p % d));
    }
    let p = U256::from(a) * U256::from(b);
    let d = U256::from(d);
    let q = p / d;
    let r = p % d;
    Some((u128::try_from(q).ok()?, r.as_u128()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mul_div_rem_beyond_128_bits() {
        let a = u64::MAX as u128;
        let b = u128::MAX / 3;
        let (q, r) = mul_div_rem(a, b, b + 1).unwrap();
        // a·b/(b+1) = a − a/(b+1): just below a.
        assert_eq!(q, a - 1);
        assert_eq!(U256::from(q) * U256::from(b + 1) + U256::from(r), U256::from(a) * U256::from(b));
    }

    #[test]
    fn division_by_zero_and_overflowing_quotient_are_refused() {
        assert_eq!(mul_div_rem(1, 1, 0), None);
        assert_eq!(mul_div_rem(u128::MAX, u128::MAX, 1), None);
    }

    proptest! {
        #[test]
        fn mul_div_rem_reconstructs_the_product(a in any::<u64>(), b in any::<u128>(), d in 1u128..) {
            if let Some((q, r)) = mul_div_rem(a as u128, b, d) {
                prop_assert!(r < d);
                prop_assert_eq!(U256::from(q) * U256::from(d) + U256::from(r), mul(a as u128, b));
            } else {
                prop_assert!(mul(a as u128, b) / U256::from(d) > U256::from(u128::MAX));
            }
        }
    }
}
