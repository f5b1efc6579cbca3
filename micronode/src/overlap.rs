//! The host's second thread for [`Overlap`]: a post-quantum signature is made beside the rest
//! of the answer instead of before it.

use rewarder_core::service::Overlap;

/// Runs `side` on a scoped thread while the calling thread runs `main`. Spawning costs tens
/// of microseconds against the millisecond of an ML-DSA-65 signature, and only runs that
/// still need one come here; no thread outlives the answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScopedThread;

impl Overlap for ScopedThread {
    fn both(&self, side: &mut (dyn FnMut() + Send), main: &mut dyn FnMut()) {
        std::thread::scope(|scope| {
            scope.spawn(side);
            main();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::thread::ThreadId;

    #[test]
    fn both_run_and_side_runs_elsewhere() {
        let side_thread = Mutex::new(None::<ThreadId>);
        let mut main_ran = false;
        ScopedThread
            .both(&mut || *side_thread.lock().unwrap() = Some(std::thread::current().id()), &mut || {
                main_ran = true
            });
        assert!(main_ran);
        let side = side_thread.lock().unwrap().expect("side ran");
        assert_ne!(side, std::thread::current().id());
    }
}
