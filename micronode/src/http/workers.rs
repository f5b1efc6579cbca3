//! The compute threads and the bounded work queue between them and the I/O thread
//! (`WORK_QUEUE_MAX`, API.md §5): the I/O thread queues a request whose body it has read, or
//! answers `503 overloaded` at once when `WORK_QUEUE_MAX` requests already wait; a compute
//! thread takes it, decodes the body, runs the service's body phase, renders the answer's head,
//! and hands both back to the I/O thread, which it wakes. A new run's full answer goes back in
//! parts while its rows are rendered (chunked framing), so that it moves while it is made.
//!
//! The queue is one `VecDeque` under a mutex: its length is the `queue_depth` gauge, exact.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;

use mio::{Token, Waker};
use rewarder_core::Code;
use rewarder_core::service::{Admitted, Response, Service, Shared, Stream};

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
    /// The answer may be sent while it is made, with chunked framing (HTTP/1.1, not `HEAD`).
    pub(crate) streams: bool,
}

/// What a compute thread hands the I/O thread: a whole answer, or the parts of one sent
/// while it is made (a new run's full answer: `Start`, a `Piece` per piece of its rows, then
/// `End`, or `Abort` when the handler panicked after `Start`).
pub(crate) enum Reply {
    Whole(Done),
    Start { token: Token, head: Vec<u8>, before_rows: Vec<u8> },
    Piece { token: Token, piece: Arc<Vec<u8>> },
    End { token: Token, after_rows: Vec<u8>, close: bool, held: usize },
    Abort { token: Token, held: usize },
}

impl Reply {
    /// The connection it is for.
    pub(crate) fn token(&self) -> Token {
        match self {
            Reply::Whole(done) => done.token,
            Reply::Start { token, .. }
            | Reply::Piece { token, .. }
            | Reply::End { token, .. }
            | Reply::Abort { token, .. } => *token,
        }
    }

    /// The request-body bytes it gives back to the held-bytes budget (with the answer's last
    /// part).
    pub(crate) fn held(&self) -> usize {
        match self {
            Reply::Whole(done) => done.held,
            Reply::End { held, .. } | Reply::Abort { held, .. } => *held,
            Reply::Start { .. } | Reply::Piece { .. } => 0,
        }
    }
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
    pub(crate) done: Sender<Reply>,
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
            let reply = self.run(job);
            if !self.send(reply) {
                return;
            }
        }
    }

    /// Hands `reply` to the I/O thread and wakes it; `false` once the I/O thread is gone.
    fn send(&self, reply: Reply) -> bool {
        if self.done.send(reply).is_err() {
            return false;
        }
        if let Err(e) = self.waker.wake() {
            tracing::error!(error = %e, "cannot wake the I/O thread");
        }
        true
    }

    /// Decodes and answers one job; a panic in the handler is `500 internal`.
    fn run(&self, job: Job) -> Reply {
        let Job { token, admitted, body, encoding, corr_id, close, head_only, streams } = job;
        let held = body.len();
        let service = &self.service;
        // The traced request (crate::trace): core's phases open their spans under it.
        let span = crate::trace::request_span(&corr_id, admitted.route());
        let _request = span.enter();
        let mut sink = Sink { pool: self, token, corr_id: &corr_id, close, started: false };
        let response = match decode(body, encoding, admitted.body_max(), self.decomp_ratio_max) {
            Err(error) => {
                service.record_http(admitted.route(), error.status());
                tracing::info!(corr_id, code = %error.code(), "body refused");
                Response::error(&error, &corr_id)
            }
            Ok(body) => {
                let stream = streams.then_some(&mut sink as &mut dyn Stream);
                answer_guarded(service, &admitted, &body, &corr_id, stream)
            }
        };
        span.record("status", response.status);
        tracing::debug!(corr_id, route = admitted.route(), status = response.status, "answered");
        if sink.started {
            return match response.shared {
                Some(Shared { at, .. }) => {
                    let mut body = response.body;
                    Reply::End { token, after_rows: body.split_off(at), close, held }
                }
                // Only a panic after the start answers without the rows.
                None => Reply::Abort { token, held },
            };
        }
        let head = framing::response_head(&response, &corr_id, close);
        let (body, shared) = if head_only { (Vec::new(), None) } else { (response.body, response.shared) };
        Reply::Whole(Done { token, head, body, shared, close, held })
    }
}

/// A compute thread's [`Stream`]: each part of the answer goes to the I/O thread at once.
struct Sink<'a> {
    pool: &'a Pool,
    token: Token,
    corr_id: &'a str,
    close: bool,
    started: bool,
}

impl Stream for Sink<'_> {
    fn start(&mut self, status: u16, before_rows: &[u8]) {
        self.started = true;
        let head = framing::streamed_head(status, self.corr_id, self.close);
        self.pool.send(Reply::Start { token: self.token, head, before_rows: before_rows.to_vec() });
    }

    fn piece(&mut self, piece: &Arc<Vec<u8>>) {
        self.pool.send(Reply::Piece { token: self.token, piece: Arc::clone(piece) });
    }
}

/// The service's body phase, where a panic becomes `500 internal` instead of taking the
/// thread down (a compute thread, or the I/O thread for a probe). With a `stream`, a new
/// run's full answer may go out through it while it is made.
pub(crate) fn answer_guarded(
    service: &Service,
    admitted: &Admitted,
    body: &[u8],
    corr_id: &str,
    stream: Option<&mut dyn Stream>,
) -> Response {
    let answered = catch_unwind(AssertUnwindSafe(|| match stream {
        Some(stream) => service.answer_streaming(admitted, body, corr_id, stream),
        None => service.answer(admitted, body, corr_id),
    }));
    answered.unwrap_or_else(|_| {
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
