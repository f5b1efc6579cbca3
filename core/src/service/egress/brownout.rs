//! Brownout detection (API.md §4.3): the latencies of the last window and the failures in a
//! row that put a node in quarantine-only mode, and the probes that take it out.

use std::collections::VecDeque;
use std::time::Duration;

use super::{EgressConfig, SAMPLES_MAX};

/// Brownout detection: latencies of the last window and consecutive failures.
#[derive(Debug)]
pub(crate) struct Brownout {
    /// The window, the budget and the thresholds.
    config: EgressConfig,
    /// `(when, latency)` of ledger requests, oldest first.
    samples: VecDeque<(Duration, Duration)>,
    /// Requests failed in a row (out of brownout).
    failures: u32,
    degraded: bool,
    /// In brownout: when the current run of answered probes began (`None` until one answers).
    clean_since: Option<Duration>,
}

impl Brownout {
    /// Whether the node is in brownout (quarantine-only).
    pub(super) fn degraded(&self) -> bool {
        self.degraded
    }

    pub(super) fn new(config: EgressConfig) -> Self {
        Brownout { config, samples: VecDeque::new(), failures: 0, degraded: false, clean_since: None }
    }

    fn push(&mut self, now: Duration, latency: Duration) {
        if self.samples.len() == SAMPLES_MAX {
            self.samples.pop_front();
        }
        self.samples.push_back((now, latency));
        while self.samples.front().is_some_and(|(at, _)| now.saturating_sub(*at) > self.config.window) {
            self.samples.pop_front();
        }
    }

    /// The p95 (nearest rank) of the samples kept.
    fn p95(&self) -> Option<Duration> {
        let mut l: Vec<Duration> = self.samples.iter().map(|(_, l)| *l).collect();
        if l.is_empty() {
            return None;
        }
        l.sort_unstable();
        let rank = (l.len() * 95).div_ceil(100).max(1);
        Some(l[rank - 1])
    }

    /// Records a request made outside brownout; `Some(true)` when it puts the node in brownout.
    pub(super) fn record(&mut self, now: Duration, latency: Duration, ok: bool) -> Option<bool> {
        if self.degraded {
            return None;
        }
        self.push(now, latency);
        self.failures = if ok { 0 } else { self.failures.saturating_add(1) };
        let slow = self.samples.len() >= self.config.samples_min.max(1)
            && self.p95().is_some_and(|p| p > self.config.p95_budget);
        if slow || self.failures >= self.config.failures_to_degrade.max(1) {
            self.degraded = true;
            self.samples.clear();
            self.failures = 0;
            self.clean_since = None;
            return Some(true);
        }
        None
    }

    /// Records a health probe made in brownout; `Some(false)` when the node leaves brownout:
    /// probes have answered for a whole window with their p95 within budget.
    pub(super) fn probe(&mut self, now: Duration, latency: Duration, ok: bool) -> Option<bool> {
        if !self.degraded {
            return None;
        }
        if !ok {
            self.samples.clear();
            self.clean_since = None;
            return None;
        }
        self.push(now, latency);
        let since = *self.clean_since.get_or_insert(now);
        let whole_window = now.saturating_sub(since) >= self.config.window;
        if whole_window && self.p95().is_some_and(|p| p <= self.config.p95_budget) {
            self.degraded = false;
            self.failures = 0;
            return Some(false);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn brownout_needs_enough_samples_and_a_failed_probe_restarts_the_window() {
        let c = EgressConfig {
            window: Duration::from_secs(10),
            ..EgressConfig::new(2, 1000, 100 * MS, Duration::from_secs(600), 100_000)
        };
        let mut b = Brownout::new(c);
        let t = |s: u64| Duration::from_secs(s);
        for i in 0..4 {
            assert_eq!(b.record(t(i), 500 * MS, true), None, "fewer than samples_min");
        }
        // Old samples leave the window: 4 slow ones long ago do not count with fast ones now.
        for i in 0..19 {
            assert_eq!(b.record(t(100) + i * 10 * MS, MS, true), None);
        }
        // One slow request in 20 is the 5 % a p95 forgives (nearest rank: the 19th of 20).
        assert_eq!(b.record(t(101), 500 * MS, true), None);
        assert_eq!(b.p95(), Some(MS));
        // A second one is not.
        assert_eq!(b.record(t(102), 500 * MS, true), Some(true));
        assert!(b.degraded && b.samples.is_empty());
        let mut b = Brownout::new(c);
        assert_eq!(b.record(t(0), MS, false), None);
        assert_eq!(b.record(t(1), MS, false), None);
        assert_eq!(b.record(t(2), MS, false), Some(true), "max_retries + 1 failures in a row");
        assert_eq!(b.record(t(3), MS, true), None, "in brownout only probes count");
        assert_eq!(b.probe(t(4), MS, true), None);
        assert_eq!(b.probe(t(13), MS, false), None, "a failed probe restarts the window");
        assert_eq!(b.probe(t(14), MS, true), None);
        assert_eq!(b.probe(t(23), MS, true), None);
        assert_eq!(b.probe(t(24), MS, true), Some(false));
        assert_eq!(b.probe(t(25), MS, true), None, "out of brownout probes are ignored");
    }
}
