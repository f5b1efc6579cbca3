//! The compute threads and the bounded work queue between them and the I/O thread
//! (`WORK_QUEUE_MAX`, API.md §5): the I/O thread queues a request whose body it has read, or
//! answers `503 overloaded` at once when `WORK_QUEUE_MAX` requests already wait; a compute
//! thread takes it, decodes the body, runs the service's body phase, renders the answer's head,
//! and hands both back to the I/O thread, which it wakes.
//!
//! The queue is one `VecDeque` under a mutex: its length is the `queue_depth` gauge, exact.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;

use mio::{Token, Waker};
use rewarder_core::Code;
use rewarder_core::service::{Admitted, Response, Service, Shared};

use super::framing;
use crate::wire::{self, Encoding};

/// A request whose body has been read, waiting for a compute thread.
pub(crate) struct Job {
    /// The connection it came on.
    pub(crate) token: Token,
    /// What the head phase decided.
    pub(crate) admitted: Admitted,
    /// The body as received (gzip still compressed).
    pub(crate) body: Vec<u8>,
    /// How the body is encoded.
    pub(crate) encoding: Encoding,
    /// The correlation id.
    pub(crate) corr_id: String,
    /// Whether the answer ends the connection.
    pub(crate) close: bool,
    /// A `HEAD` request: the answer's head only.
    pub(crate) head_only: bool,
}

/// An answer for the I/O thread to write.
pub(crate) struct Done {
    /// The connection to write it to.
    pub(crate) token: Token,
    /// The head, ready to send.
    pub(crate) head: Vec<u8>,
    /// The body (around the shared bytes, when there are).
    pub(crate) body: Vec<u8>,
    /// Bytes of the body kept by the service (a run's `allocations`), written from there.
    pub(crate) shared: Option<Shared>,
    /// Whether the connection ends after it.
    pub(crate) close: bool,
    /// The bytes of request body the job held (given back to the held-bytes budget).
    pub(crate) held: usize,
}

/// The queue the I/O thread fills and the compute threads empty.
#[derive(Default)]
pub(crate) struct WorkQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
}

impl WorkQueue {
    /// Queues `job` unless `max` jobs already wait; gives it back when full.
    pub(crate) fn offer(&self, job: Job, max: usize) -> Result<usize, Box<Job>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.jobs.len() >= max {
            return Err(Box::new(job));
        }
        state.jobs.push_back(job);
        let depth = state.jobs.len();
        drop(state);
        self.ready.notify_one();
        Ok(depth)
    }

    /// Requests waiting now.
    pub(crate) fn depth(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).jobs.len()
    }

    /// Lets the compute threads finish what is queued, then exit.
    pub(crate) fn close(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
        self.ready.notify_all();
    }

    /// The next job and the depth after taking it; `None` once closed and empty.
    fn take(&self) -> Option<(Job, usize)> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some((job, state.jobs.len()));
            }
            if state.closed {
                return None;
            }
            state = self.ready.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// What each compute thread needs.
pub(crate) struct Pool {
    pub(crate) queue: Arc<WorkQueue>,
    pub(crate) service: Arc<Service>,
    pub(crate) done: Sender<Done>,
    pub(crate) waker: Arc<Waker>,
    pub(crate) decomp_ratio_max: u32,
}

impl Pool {
    /// Starts `n` compute threads (at least one).
    pub(crate) fn spawn(self, n: usize) -> std::io::Result<Vec<thread::JoinHandle<()>>> {
        let pool = Arc::new(self);
        let mut threads = Vec::with_capacity(n.max(1));
        for i in 0..n.max(1) {
            let pool = Arc::clone(&pool);
            let spawned =
                thread::Builder::new().name(format!("rewarder-compute-{i}")).spawn(move || pool.work());
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) if !threads.is_empty() => {
                    tracing::error!(error = %e, "cannot start compute thread {i}; serving with fewer");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(threads)
    }

    fn work(&self) {
        while let Some((job, depth)) = self.queue.take() {
            self.service.metrics().set_queue_depth(depth as u64);
            let done = self.run(job);
            if self.done.send(done).is_err() {
                return;
            }
            if let Err(e) = self.waker.wake() {
                tracing::error!(error = %e, "cannot wake the I/O thread");
            }
        }
    }

    /// Decodes and answers one job; a panic in the handler is `500 internal`.
    fn run(&self, job: Job) -> Done {
        let Job { token, admitted, body, encoding, corr_id, close, head_only } = job;
        let held = body.len();
        let service = &self.service;
        // The traced request (crate::trace): core's phases open their spans under it.
        let span = crate::trace::request_span(&corr_id, admitted.route());
        let _request = span.enter();
        let response = match decode(body, encoding, admitted.body_max(), self.decomp_ratio_max) {
            Err(error) => {
                service.record_http(admitted.route(), error.status());
                tracing::info!(corr_id, code = %error.code(), "body refused");
                Response::error(&error, &corr_id)
            }
            Ok(body) => answer_guarded(service, &admitted, &body, &corr_id),
        };
        span.record("status", response.status);
        tracing::debug!(corr_id, route = admitted.route(), status = response.status, "answered");
        let head = framing::response_head(&response, &corr_id, close);
        let (body, shared) = if head_only { (Vec::new(), None) } else { (response.body, response.shared) };
        Done { token, head, body, shared, close, held }
    }
}

/// The service's body phase, where a panic becomes `500 internal` instead of taking the
/// thread down (a compute thread, or the I/O thread for a probe).
pub(crate) fn answer_guarded(service: &Service, admitted: &Admitted, body: &[u8], corr_id: &str) -> Response {
    catch_unwind(AssertUnwindSafe(|| service.answer(admitted, body, corr_id))).unwrap_or_else(|_| {
        tracing::error!(corr_id, route = admitted.route(), "the handler panicked");
        service.record_http(admitted.route(), 500);
        wire::error_response(Code::Internal, "internal error", corr_id)
    })
}

/// The body as the handler takes it: gzip inflated under both caps.
fn decode(
    raw: Vec<u8>,
    encoding: Encoding,
    body_max: usize,
    ratio_max: u32,
) -> Result<Vec<u8>, rewarder_core::Error> {
    match encoding {
        Encoding::Identity => Ok(raw),
        Encoding::Gzip if raw.is_empty() => Ok(raw),
        Encoding::Gzip => wire::inflate_gzip(&raw, body_max, ratio_max),
    }
}
