//! The work queue of API.md §5 (`WORK_QUEUE_MAX`): requests the gate has handed to tiny_http
//! that no request thread has picked up yet.
//!
//! tiny_http keeps its own unbounded FIFO between its connection threads and
//! `recv_timeout`; this module bounds it without replacing it. Two counters, each moved by an
//! RAII guard so no path can leak a count:
//! - `forwarded`: requests the gate sent to tiny_http and has no answer for yet (the gate's
//!   [`Entry`], taken before forwarding, dropped when the answer is back or the exchange failed);
//! - `picked`: requests a request thread took and has not answered yet (the thread's
//!   [`Picked`], dropped just *before* it writes the answer).
//!
//! Queued = `forwarded − picked`. An entry is admitted by compare-and-swap on `forwarded`, and a
//! pick is uncounted before its answer can reach the gate. So the difference never under-counts
//! and the bound holds strictly. At worst, a request already answered is still counted for the
//! few microseconds until the gate reads the answer; the gauge is clamped to the bound for
//! that reason (see `Shared::publish_queue_depth`).
//!
//! It does not wait: a request beyond the bound is refused at once (`503 overloaded`,
//! `rejected_total{reason="queue_full"}`) by the gate, which reads the bound from the
//! service's hot knobs for every request, so a reload applies to the next one.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The counters of one server.
#[derive(Debug, Default)]
pub(crate) struct WorkQueue {
    forwarded: AtomicUsize,
    picked: AtomicUsize,
}

/// One request admitted into the queue by the gate; leaves when dropped.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    queue: &'a WorkQueue,
}

/// One request a request thread took out of the queue; uncounted when dropped.
#[derive(Debug)]
pub(crate) struct Picked<'a> {
    queue: &'a WorkQueue,
}

impl WorkQueue {
    /// Admits one more request when fewer than `max` wait; `None` = the queue is full.
    pub(crate) fn enter(&self, max: usize) -> Option<Entry<'_>> {
        // Counted only once admitted: a refused request of a burst never shows in the gauge
        // nor crowds out a request racing it for the last slot.
        let mut forwarded = self.forwarded.load(Ordering::Acquire);
        loop {
            if forwarded.saturating_sub(self.picked.load(Ordering::Acquire)) >= max {
                return None;
            }
            match self.forwarded.compare_exchange_weak(
                forwarded,
                forwarded + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(Entry { queue: self }),
                Err(now) => forwarded = now,
            }
        }
    }

    /// A request thread took a request.
    pub(crate) fn pick(&self) -> Picked<'_> {
        self.picked.fetch_add(1, Ordering::AcqRel);
        Picked { queue: self }
    }

    /// Requests waiting now (the `queue_depth` gauge).
    pub(crate) fn depth(&self) -> usize {
        // `picked` first: a pick between the two loads then only over-counts.
        let picked = self.picked.load(Ordering::Acquire);
        self.forwarded.load(Ordering::Acquire).saturating_sub(picked)
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        self.queue.forwarded.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Picked<'_> {
    fn drop(&mut self) {
        self.queue.picked.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_max_waiting_and_forgets_answered_requests() {
        let q = WorkQueue::default();
        let a = q.enter(2).unwrap();
        let b = q.enter(2).unwrap();
        assert!(q.enter(2).is_none(), "a third waiting request is refused");
        assert_eq!(q.depth(), 2, "a refused entry leaves no trace");
        let working = q.pick();
        assert_eq!(q.depth(), 1, "a picked request no longer waits");
        let c = q.enter(2).unwrap();
        assert!(q.enter(2).is_none());
        drop(working);
        assert_eq!(q.depth(), 3, "answered but not yet back at the gate: still counted (conservative)");
        drop(a);
        assert_eq!(q.depth(), 2);
        drop((b, c));
        assert_eq!(q.depth(), 0);
    }

    #[test]
    fn a_zero_bound_admits_nothing() {
        let q = WorkQueue::default();
        assert!(q.enter(0).is_none());
        assert_eq!(q.depth(), 0);
    }
}
