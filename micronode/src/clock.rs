//! The host's time for the service: a monotonic clock from process start and the wall clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rewarder_core::service::Clock;

/// `std`'s clocks.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> Self {
        SystemClock { origin: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn unix_seconds(&self) -> u64 {
        // A wall clock before 1970 is a broken host; 0 makes every token look expired.
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_grows_and_wall_clock_is_recent() {
        let c = SystemClock::new();
        let a = c.monotonic();
        std::thread::sleep(Duration::from_millis(2));
        assert!(c.monotonic() > a);
        assert!(c.unix_seconds() > 1_700_000_000);
    }
}
