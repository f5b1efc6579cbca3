//! The host's second thread for [`Overlap`]: a post-quantum signature is made beside the rest
//! of the answer, and a large run's Merkle leaves are hashed in two halves.

use rewarder_core::service::Overlap;

/// One long-lived side thread per process, shared by every request thread, on which `side`
/// runs while the calling thread runs `main`.
///
/// Why not a scoped thread per call: a fresh thread faults in a fresh stack, and ML-DSA-65
/// signing uses a large one, so spawning one per answer measured about 130 µs of CPU on top
/// of a 190 µs signature (and more wall time than signing inline); a parked thread woken
/// for the job costs about 20 µs. One thread keeps the count at rest within
/// `workers + 3` (main, I/O, the request threads, this one). With several request threads
/// (the macronode) a side job may wait for another's to finish: the pool already keeps the
/// cores busy there, so that costs latency only when both ask at once.
#[derive(Debug)]
pub struct SideThread {
    pool: rayon_core::ThreadPool,
}

impl SideThread {
    /// Starts the thread, named `rewarder-side` (as `ps -L` and `/proc/PID/task` show it).
    pub fn start() -> std::io::Result<Self> {
        let pool = rayon_core::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "rewarder-side".into())
            .build()
            .map_err(std::io::Error::other)?;
        Ok(SideThread { pool })
    }
}

impl Overlap for SideThread {
    fn both(&self, side: &mut (dyn FnMut() + Send), main: &mut dyn FnMut()) {
        // `in_place_scope` runs `main` here and returns only once the spawned `side` is done;
        // a panic in either is carried back to this thread, as a scoped thread's would be.
        self.pool.in_place_scope(|scope| {
            scope.spawn(|_| side());
            main();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::thread::ThreadId;

    fn side_thread_of(overlap: &SideThread) -> ThreadId {
        let side_thread = Mutex::new(None::<ThreadId>);
        let mut main_ran = false;
        overlap.both(&mut || *side_thread.lock().unwrap() = Some(std::thread::current().id()), &mut || {
            main_ran = true
        });
        assert!(main_ran);
        side_thread.into_inner().unwrap().expect("side ran")
    }

    #[test]
    fn both_run_and_side_runs_elsewhere_on_one_thread_kept_between_calls() {
        let overlap = SideThread::start().unwrap();
        let first = side_thread_of(&overlap);
        assert_ne!(first, std::thread::current().id());
        assert_eq!(side_thread_of(&overlap), first, "the side thread is kept, not spawned per call");
    }

    #[test]
    fn callers_on_several_threads_share_it() {
        let overlap = SideThread::start().unwrap();
        let sides: Vec<ThreadId> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4).map(|_| s.spawn(|| side_thread_of(&overlap))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(sides.windows(2).all(|w| w[0] == w[1]), "{sides:?}");
    }
}
