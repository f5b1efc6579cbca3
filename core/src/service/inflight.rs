//! The `MAX_INFLIGHT` limit of API.md §5: computes in flight on this node, beyond which a
//! compute is refused with `503 overloaded` instead of queueing without bound.
//!
//! It counts; it does not wait or queue (the transport's compute workers own the work queue,
//! `micronode/src/http/workers.rs`, for every profile).

use std::sync::atomic::{AtomicU32, Ordering};

/// Computes currently in flight.
#[derive(Debug, Default)]
pub(crate) struct InflightLimit {
    count: AtomicU32,
}

/// One admitted compute; it leaves the count when dropped, even on an early return.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    limit: &'a InflightLimit,
}

impl InflightLimit {
    /// Admits one more compute when fewer than `max` are in flight.
    pub(crate) fn enter(&self, max: u32) -> Option<Permit<'_>> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| if n < max { Some(n + 1) } else { None })
            .ok()
            .map(|_| Permit { limit: self })
    }

    /// Computes in flight now (the `inflight` gauge).
    pub(crate) fn current(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.limit.count.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_max_and_releases_on_drop() {
        let limit = InflightLimit::default();
        let a = limit.enter(2).unwrap();
        let b = limit.enter(2).unwrap();
        assert!(limit.enter(2).is_none());
        assert_eq!(limit.current(), 2);
        drop(a);
        let _c = limit.enter(2).unwrap();
        drop(b);
        assert_eq!(limit.current(), 1);
        assert!(limit.enter(0).is_none());
    }
}
