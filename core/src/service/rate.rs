//! The per-tenant clamp of API.md §5 (`TENANT_RPS_MAX`): one token bucket per tenant, refilled
//! at the knob's rate, holding at most one second's worth (burst = rate).
//!
//! Tokens are counted in millionths, so refill is exact integer arithmetic on the host's
//! monotonic clock (no floats, no drift). The buckets live in a bounded LRU map: a tenant
//! unseen for a while loses its bucket, which only ever gives it a full one back. The clamp
//! applies to authenticated tenants; it does not meter requests refused before a tenant is
//! known (401), which the host's connection bounds cover.

use std::time::Duration;

use super::lru::Lru;

/// Most tenants whose buckets are remembered at once.
pub const TENANT_BUCKETS_MAX: usize = 4096;

/// Millionths of a token per token.
const MICRO: u64 = 1_000_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Millionths of a token available.
    micro_tokens: u64,
    /// When it was last refilled.
    refilled: Duration,
}

/// Token buckets of the tenants seen recently.
pub(crate) struct TenantBuckets {
    buckets: Lru<String, Bucket>,
}

impl TenantBuckets {
    /// No tenant seen yet.
    pub(crate) fn new() -> Self {
        TenantBuckets { buckets: Lru::new(TENANT_BUCKETS_MAX, usize::MAX) }
    }

    /// Takes one token from `tenant`'s bucket at `now` under a rate of `rate_per_s` (burst the
    /// same). `Err(seconds)` when the bucket is empty: how long until a token is back (≥ 1).
    /// A rate of 0 admits nothing.
    pub(crate) fn admit(&mut self, tenant: &str, now: Duration, rate_per_s: u32) -> Result<(), u32> {
        let rate = u64::from(rate_per_s);
        let capacity = rate.saturating_mul(MICRO);
        if self.buckets.get(tenant).is_none() {
            let full = Bucket { micro_tokens: capacity, refilled: now };
            self.buckets.insert(tenant.to_owned(), full, 1);
        }
        let Some(bucket) = self.buckets.get(tenant) else {
            // Just inserted; only reachable if the map could hold nothing, which `Lru` forbids.
            return Ok(());
        };
        let elapsed_us = u64::try_from(now.saturating_sub(bucket.refilled).as_micros()).unwrap_or(u64::MAX);
        // `rate` tokens per second is `rate` millionths per microsecond.
        let refill = elapsed_us.saturating_mul(rate);
        bucket.micro_tokens = bucket.micro_tokens.saturating_add(refill).min(capacity);
        bucket.refilled = bucket.refilled.max(now);
        if bucket.micro_tokens >= MICRO {
            bucket.micro_tokens -= MICRO;
            return Ok(());
        }
        if rate == 0 {
            return Err(1);
        }
        let deficit = MICRO - bucket.micro_tokens;
        let wait_us = deficit.div_ceil(rate);
        let wait_s = wait_us.div_ceil(1_000_000).max(1);
        Err(u32::try_from(wait_s).unwrap_or(u32::MAX))
    }

    /// Number of tenants remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::from_secs(100);

    #[test]
    fn burst_equals_rate_then_refills_over_time() {
        let mut b = TenantBuckets::new();
        for _ in 0..5 {
            assert_eq!(b.admit("t", T0, 5), Ok(()));
        }
        assert_eq!(b.admit("t", T0, 5), Err(1));
        // 200 ms at 5/s is exactly one token.
        assert_eq!(b.admit("t", T0 + Duration::from_millis(199), 5), Err(1));
        assert_eq!(b.admit("t", T0 + Duration::from_millis(200), 5), Ok(()));
        // A long pause refills only up to the burst.
        let later = T0 + Duration::from_secs(3600);
        for _ in 0..5 {
            assert_eq!(b.admit("t", later, 5), Ok(()));
        }
        assert!(b.admit("t", later, 5).is_err());
    }

    #[test]
    fn tenants_do_not_share_buckets() {
        let mut b = TenantBuckets::new();
        assert_eq!(b.admit("a", T0, 1), Ok(()));
        assert_eq!(b.admit("a", T0, 1), Err(1));
        assert_eq!(b.admit("b", T0, 1), Ok(()));
    }

    #[test]
    fn zero_rate_admits_nothing_and_a_clock_going_back_is_harmless() {
        let mut b = TenantBuckets::new();
        assert_eq!(b.admit("z", T0, 0), Err(1));
        assert_eq!(b.admit("y", T0, 1), Ok(()));
        assert_eq!(b.admit("y", Duration::ZERO, 1), Err(1));
    }

    #[test]
    fn the_map_of_tenants_is_bounded() {
        let mut b = TenantBuckets::new();
        for i in 0..TENANT_BUCKETS_MAX + 10 {
            let _ = b.admit(&format!("t{i}"), T0, 1);
        }
        assert_eq!(b.len(), TENANT_BUCKETS_MAX);
    }
}
