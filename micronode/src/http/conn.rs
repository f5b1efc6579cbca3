//! One client connection as a state machine driven by the I/O thread: it reads a head, asks
//! the service's head phase whether the body is wanted, reads the body under its deadline
//! and the held-bytes budget, hands the request to a compute thread (or answers a probe at
//! once), writes the answer, then waits for the next request or closes.
//!
//! Every refusal is the JSON envelope with `X-Corr-ID`. One that leaves unread bytes behind
//! (a body the node will not read, a malformed head) ends with a lingering close: the write
//! side is shut and the input drained and discarded for a bounded time, so a client still
//! sending its body reads the answer instead of a reset.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use mio::Token;
use rewarder_core::service::{Admitted, Head, Rejection, Response, Service};
use rewarder_core::{Code, Error};

use super::framing::{self, ChunkError, Chunked, Framing, RequestHead};
use super::out::Out;
use super::server::TransportLimits;
use super::wire_io::{READ_CHUNK_BYTES, ReadState, WireIo};
use super::workers::{self, Job, Reply, WorkQueue};
use crate::wire::{self, Encoding};

/// The route label of answers given before a request line is known (`http_requests_total`
/// counts them as `unmatched`).
pub(crate) const TRANSPORT_ROUTE: &str = "";
/// Longest a refused connection is drained before it is closed.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes drained from a refused connection before it is closed.
const LINGER_BYTES_MAX: usize = 64 << 20;
/// The idle timeout of a connection in the probe reserve.
const RESERVE_IDLE: Duration = Duration::from_millis(250);
/// Seconds a client refused by a full work queue is told to wait.
const QUEUE_FULL_RETRY_AFTER_S: u32 = 1;
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What the I/O thread lends a connection while driving it.
pub(crate) struct Ctx<'a> {
    pub(crate) service: &'a Service,
    pub(crate) limits: &'a TransportLimits,
    pub(crate) queue: &'a WorkQueue,
    /// Request-body bytes held by every connection and queued job.
    pub(crate) held: &'a mut usize,
    /// Connections open now (for the crowded idle timeout).
    pub(crate) open: usize,
    /// The node is stopping: no new request starts.
    pub(crate) stopping: bool,
    pub(crate) now: Instant,
}

/// Whether a connection lives on after being driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Keep it; it waits for readiness, a compute thread or its deadline.
    Keep,
    /// Close it now.
    Close,
}

/// What one step did.
enum Step {
    /// Changed state: look again.
    Again,
    /// Nothing to do until the socket, a compute thread or the clock says so.
    Wait,
    /// Close the connection.
    Close,
}

/// After an answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// Wait for the next request.
    KeepAlive,
    /// Shut the write side and drain what the client still sends.
    Linger,
}

enum State {
    /// Waiting for the first byte of a request.
    Idle,
    /// Reading a head.
    Head,
    /// Reading a body.
    Body(Box<BodyRead>),
    /// The request is with a compute thread.
    Busy,
    /// Writing the parts of an answer sent while it is made; more are to come.
    Streaming,
    /// Writing an answer.
    Writing(After),
    /// Write side shut; discarding input until EOF or the deadline.
    Lingering,
}

struct BodyRead {
    head: RequestHead,
    admitted: Admitted,
    encoding: Encoding,
    /// `Some` for a chunked body, which decodes into `body`; a `Content-Length` body is read
    /// straight into the connection's buffer instead.
    chunked: Option<(Chunked, Vec<u8>)>,
    length: usize,
}

/// One client connection.
pub(crate) struct Conn {
    token: Token,
    io: WireIo,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
    /// How much of `buf` the head search has looked at.
    searched: usize,
    state: State,
    out: Out,
    /// When the current state times out (every state but idle, whose timeout depends on how
    /// crowded the node is when it is checked).
    deadline: Instant,
    /// When the connection last became idle.
    idle_since: Instant,
    /// Request-body bytes this connection counts in [`Ctx::held`].
    held: usize,
    /// TLS records of an answer not yet taken by the socket.
    tls_backlog: bool,
    /// The client's address.
    source: IpAddr,
    /// Kept beyond the connection caps for one open probe (see the server's probe reserve).
    reserve: bool,
    /// The current request is a `HEAD`: answers leave out their body.
    head_only: bool,
    drained: usize,
}

impl Conn {
    /// A new connection, idle.
    pub(crate) fn new(token: Token, io: WireIo, source: IpAddr, reserve: bool, cx: &Ctx<'_>) -> Conn {
        Conn {
            token,
            io,
            buf: Vec::new(),
            searched: 0,
            state: State::Idle,
            out: Out::default(),
            deadline: cx.now,
            idle_since: cx.now,
            held: 0,
            tls_backlog: false,
            source,
            reserve,
            head_only: false,
            drained: 0,
        }
    }

    /// The client's address.
    pub(crate) fn source(&self) -> IpAddr {
        self.source
    }

    /// Whether the connection is in the probe reserve.
    pub(crate) fn is_reserve(&self) -> bool {
        self.reserve
    }

    /// The socket, to register with the poller.
    pub(crate) fn io(&mut self) -> &mut WireIo {
        &mut self.io
    }

    /// Whether the connection is between requests (closed at once when the node stops).
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle) && self.buf.is_empty()
    }

    /// Gives this connection's held bytes back (it is being closed).
    pub(crate) fn release(&mut self, held: &mut usize) {
        *held -= self.held;
        self.held = 0;
    }

    /// Reads, parses, dispatches and writes as far as possible.
    pub(crate) fn drive(&mut self, cx: &mut Ctx<'_>) -> Next {
        loop {
            if self.out.pending() || self.tls_backlog {
                match self.out.write(&mut self.io) {
                    Err(_) => return Next::Close,
                    Ok(flushed) => self.tls_backlog = !flushed,
                }
                if self.out.pending() || self.tls_backlog {
                    return Next::Keep;
                }
            }
            let step = match self.state {
                State::Writing(After::KeepAlive) => self.next_request(cx),
                State::Writing(After::Linger) => {
                    self.io.shutdown_write();
                    self.state = State::Lingering;
                    self.deadline = cx.now + LINGER;
                    Step::Again
                }
                State::Idle | State::Head => self.read_head(cx),
                State::Body(_) => self.read_body(cx),
                State::Busy | State::Streaming => Step::Wait,
                State::Lingering => self.linger(),
            };
            match step {
                Step::Again => {}
                Step::Wait => return Next::Keep,
                Step::Close => return Next::Close,
            }
        }
    }

    /// Queues a compute thread's answer, or a part of one, for [`Conn::drive`] to write.
    pub(crate) fn deliver(&mut self, reply: Reply, cx: &Ctx<'_>) -> Next {
        let after = |close: bool| if close || cx.stopping { After::Linger } else { After::KeepAlive };
        match reply {
            Reply::Whole(done) => {
                self.out.push_answer(done.head, done.body, done.shared);
                self.state = State::Writing(after(done.close));
            }
            Reply::Start { head, before_rows, .. } => {
                self.out.push(head);
                self.out.push_chunk(before_rows);
                self.state = State::Streaming;
            }
            Reply::Piece { piece, .. } => self.out.push_shared_chunk(piece),
            Reply::End { after_rows, close, .. } => {
                self.out.push_chunk(after_rows);
                self.out.push_last_chunk();
                self.state = State::Writing(after(close));
            }
            // The answer's head is out and its status cannot be taken back: the client sees a
            // body that ends without its last chunk.
            Reply::Abort { .. } => return Next::Close,
        }
        // A slow reader has the write timeout for each part.
        self.deadline = cx.now + cx.limits.write_timeout;
        Next::Keep
    }

    /// What to do when the deadline passed: a late head or body is answered `400`; an idle,
    /// slow-reading or lingering connection is closed. A request with a compute thread has no
    /// deadline here.
    pub(crate) fn expire(&mut self, cx: &mut Ctx<'_>) -> Next {
        if matches!(self.state, State::Idle) {
            // Judged now, not when it became idle: a node that filled up since lets its idle
            // connections go sooner.
            let idle_for = cx.now.saturating_duration_since(self.idle_since);
            return if idle_for >= self.idle_timeout(cx) { Next::Close } else { Next::Keep };
        }
        if cx.now < self.deadline {
            return Next::Keep;
        }
        let late = |what: &str, limit: Duration| {
            Error::new(
                Code::BadRequest,
                format!("the request {what} did not arrive within {} s", limit.as_secs_f32()),
            )
        };
        match &self.state {
            State::Busy => Next::Keep,
            State::Head => {
                let corr_id = framing::corr_id_in(&self.buf);
                self.refuse(cx, TRANSPORT_ROUTE, &corr_id, &late("head", cx.limits.head_timeout));
                self.drive(cx)
            }
            State::Body(read) => {
                let (route, corr_id) = (read.admitted.route(), read.head.corr_id.clone());
                self.refuse(cx, route, &corr_id, &late("body", cx.limits.body_timeout));
                self.drive(cx)
            }
            State::Streaming | State::Writing(_) | State::Lingering => Next::Close,
            // Handled above.
            State::Idle => Next::Keep,
        }
    }

    fn idle_timeout(&self, cx: &Ctx<'_>) -> Duration {
        let limits = cx.limits;
        // A probe sends its request at once: a reserve connection that does not is let go
        // before a flood of idle sockets can hold the reserve.
        if self.reserve {
            return RESERVE_IDLE;
        }
        if cx.open * 4 >= limits.connections_max * 3 {
            limits.idle_timeout.min(limits.idle_timeout_crowded)
        } else {
            limits.idle_timeout
        }
    }

    /// Back to idle after an answer; buffers are let go when nothing is pipelined.
    fn next_request(&mut self, cx: &Ctx<'_>) -> Step {
        if cx.stopping {
            return Step::Close;
        }
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
        self.searched = 0;
        self.state = State::Idle;
        self.idle_since = cx.now;
        Step::Again
    }

    /// Reads until a head is complete, then starts its request.
    fn read_head(&mut self, cx: &mut Ctx<'_>) -> Step {
        // RFC 9112 §2.2: empty lines before a request line are ignored.
        let blank = self.buf.chunks_exact(2).take_while(|pair| *pair == b"\r\n").count();
        if blank > 0 {
            self.buf.drain(..blank * 2);
            self.searched = 0;
        }
        let max = cx.limits.head_bytes_max;
        if let Some(end) = framing::head_end(&self.buf, self.searched) {
            if end > max {
                return self.head_too_big(cx);
            }
            self.head_only = false;
            let parsed = framing::parse_head(&self.buf[..end]);
            self.buf.drain(..end);
            self.searched = 0;
            return match parsed {
                Ok(head) => self.start(cx, head),
                Err(refused) => {
                    self.refuse(cx, TRANSPORT_ROUTE, &refused.corr_id, &refused.error);
                    Step::Again
                }
            };
        }
        // A bare LF would end the head for a lenient reader: refuse it now rather than at the
        // head deadline.
        let from = self.searched.saturating_sub(1);
        if self.buf[from..]
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\n' && (from + i == 0 || self.buf[from + i - 1] != b'\r'))
        {
            let corr_id = framing::corr_id_in(&self.buf);
            let error = Error::new(Code::BadRequest, "bare LF in the request head (CRLF line ends only)");
            self.refuse(cx, TRANSPORT_ROUTE, &corr_id, &error);
            return Step::Again;
        }
        self.searched = self.buf.len();
        if self.buf.len() >= max {
            return self.head_too_big(cx);
        }
        if cx.stopping && self.buf.is_empty() {
            return Step::Close;
        }
        let before = self.buf.len();
        match self.io.read_into(&mut self.buf, max + 1) {
            Err(_) | Ok(ReadState::Eof) => Step::Close,
            Ok(ReadState::Open) if self.buf.len() == before => Step::Wait,
            Ok(ReadState::Open) => {
                if matches!(self.state, State::Idle) {
                    self.state = State::Head;
                    self.deadline = cx.now + cx.limits.head_timeout;
                }
                Step::Again
            }
        }
    }

    fn head_too_big(&mut self, cx: &mut Ctx<'_>) -> Step {
        let corr_id = framing::corr_id_in(&self.buf);
        let error = Error::new(
            Code::BadRequest,
            format!("the request head exceeds {} bytes", cx.limits.head_bytes_max),
        );
        self.refuse(cx, TRANSPORT_ROUTE, &corr_id, &error);
        Step::Again
    }

    /// The head phase: admission, the body's size and headers, then the body (or the answer).
    fn start(&mut self, cx: &mut Ctx<'_>, head: RequestHead) -> Step {
        let service = cx.service;
        self.head_only = head.method == "HEAD";
        let admission = service.admit(&Head {
            method: &head.method,
            url: &head.target,
            authorization: head.authorization.as_deref(),
            corr_id: &head.corr_id,
        });
        let admitted = match admission {
            Ok(admitted) => admitted,
            Err(refused) => {
                tracing::info!(corr_id = head.corr_id, status = refused.status, "refused from the head");
                let keep = head.framing == Framing::None && head.keep_alive;
                self.answer(cx, refused, &head.corr_id, if keep { After::KeepAlive } else { After::Linger });
                return Step::Again;
            }
        };
        let route = admitted.route();
        if self.reserve && !(admitted.is_probe() && head.framing == Framing::None) {
            // Beyond the caps, only a probe is answered; anything else is told to come back.
            service.metrics().reject(Rejection::Connections);
            let error = Error::new(Code::Overloaded, "too many connections; retry shortly")
                .with_detail("reason", Rejection::Connections.as_str());
            self.refuse(cx, route, &head.corr_id, &error);
            return Step::Again;
        }
        let body_max = admitted.body_max();
        if let Framing::Length(n) = head.framing
            && n > body_max as u64
        {
            let error = Error::new(Code::BodyTooLarge, format!("the body exceeds {body_max} bytes"));
            self.refuse(cx, route, &head.corr_id, &error);
            return Step::Again;
        }
        let encoding = if head.framing == Framing::None {
            Ok(Encoding::Identity)
        } else {
            let typed = if matches!(head.method.as_str(), "PUT" | "POST") {
                wire::check_content_type(head.content_type.as_deref())
            } else {
                Ok(())
            };
            typed.and_then(|()| wire::parse_encoding(head.content_encoding.as_deref()))
        };
        let encoding = match encoding {
            Ok(e) => e,
            Err(error) => {
                self.refuse(cx, route, &head.corr_id, &error);
                return Step::Again;
            }
        };
        if head.framing == Framing::None && admitted.is_probe() {
            // Probes are answered here, never queued behind computes: a liveness probe stuck
            // behind a queue of computes would get a loaded node restarted.
            cx.service.metrics().set_queue_depth(cx.queue.depth() as u64);
            let response = workers::answer_guarded(service, &admitted, &[], &head.corr_id, None);
            // A reserve connection answers one probe, then gives its place back.
            let after = if head.keep_alive && !self.reserve { After::KeepAlive } else { After::Linger };
            self.answer(cx, response, &head.corr_id, after);
            return Step::Again;
        }
        if head.expects_continue && self.buf.is_empty() {
            self.out.push(CONTINUE.to_vec());
        }
        let (chunked, length) = match head.framing {
            Framing::None => (None, 0),
            Framing::Length(n) => {
                // n ≤ body_max, a usize.
                let n = n as usize;
                self.buf.reserve_exact(n.saturating_sub(self.buf.len()));
                (None, n)
            }
            Framing::Chunked => (Some((Chunked::new(body_max, cx.limits.head_bytes_max), Vec::new())), 0),
        };
        self.state = State::Body(Box::new(BodyRead { head, admitted, encoding, chunked, length }));
        self.deadline = cx.now + cx.limits.body_timeout;
        Step::Again
    }

    /// Reads the body under the held-bytes budget; queues the request once it is whole.
    fn read_body(&mut self, cx: &mut Ctx<'_>) -> Step {
        let State::Body(read) = &mut self.state else { return Step::Wait };
        let complete = match &mut read.chunked {
            None => self.buf.len() >= read.length,
            Some((decoder, body)) => match decoder.feed(&self.buf, body) {
                Ok(used) => {
                    self.buf.drain(..used);
                    decoder.is_done()
                }
                Err(e) => {
                    let error = match e {
                        ChunkError::TooLarge => Error::new(
                            Code::BodyTooLarge,
                            format!("the body exceeds {} bytes", read.admitted.body_max()),
                        ),
                        ChunkError::Malformed(m) => {
                            Error::new(Code::BadRequest, format!("malformed chunked body: {m}"))
                        }
                    };
                    let (route, corr_id) = (read.admitted.route(), read.head.corr_id.clone());
                    self.refuse(cx, route, &corr_id, &error);
                    return Step::Again;
                }
            },
        };
        if complete {
            let State::Body(read) = std::mem::replace(&mut self.state, State::Busy) else {
                return Step::Wait;
            };
            let read = *read;
            let body = match read.chunked {
                Some((_, body)) => body,
                None if self.buf.len() == read.length => std::mem::take(&mut self.buf),
                None => {
                    let rest = self.buf.split_off(read.length);
                    std::mem::replace(&mut self.buf, rest)
                }
            };
            return self.dispatch(cx, read.head, read.admitted, read.encoding, body);
        }
        let want = match &read.chunked {
            None => read.length,
            Some(_) => self.buf.len() + READ_CHUNK_BYTES,
        };
        let before = self.buf.len();
        let state = self.io.read_into(&mut self.buf, want);
        let holding = self.buf.len() + read.chunked.as_ref().map_or(0, |(_, body)| body.len());
        if holding > self.held {
            let more = holding - self.held;
            if *cx.held + more > cx.limits.held_body_bytes_max {
                let error = Error::new(Code::Overloaded, "too many request bodies in flight; retry shortly");
                let (route, corr_id) = (read.admitted.route(), read.head.corr_id.clone());
                self.refuse(cx, route, &corr_id, &error);
                return Step::Again;
            }
            *cx.held += more;
            self.held = holding;
        }
        match state {
            Err(_) | Ok(ReadState::Eof) => Step::Close,
            Ok(ReadState::Open) if self.buf.len() == before => Step::Wait,
            Ok(ReadState::Open) => Step::Again,
        }
    }

    /// Queues a complete request, or answers `503 overloaded` when the work queue is full.
    fn dispatch(
        &mut self,
        cx: &mut Ctx<'_>,
        head: RequestHead,
        admitted: Admitted,
        encoding: Encoding,
        body: Vec<u8>,
    ) -> Step {
        let service = cx.service;
        let close = !head.keep_alive || cx.stopping;
        // The job holds the body now: its bytes stay counted until its answer comes back.
        *cx.held = *cx.held - self.held + body.len();
        self.held = 0;
        let head_only = head.method == "HEAD";
        let streams = head.http_1_1 && !head_only;
        let corr_id = head.corr_id;
        let job = Job { token: self.token, admitted, body, encoding, corr_id, close, head_only, streams };
        let max = usize::try_from(service.hot().work_queue_max).unwrap_or(usize::MAX);
        match cx.queue.offer(job, max) {
            Ok(depth) => {
                service.metrics().set_queue_depth(depth as u64);
                self.state = State::Busy;
                Step::Wait
            }
            Err(job) => {
                *cx.held -= job.body.len();
                service.metrics().reject(Rejection::QueueFull);
                service.record_http(job.admitted.route(), 503);
                tracing::debug!(
                    corr_id = job.corr_id,
                    work_queue_max = max,
                    "refused: the work queue is full"
                );
                let error = Error::new(Code::Overloaded, "the work queue is full; retry shortly")
                    .with_detail("retry_after", QUEUE_FULL_RETRY_AFTER_S)
                    .with_detail("reason", Rejection::QueueFull.as_str());
                let response = Response::error(&error, &job.corr_id);
                self.answer(cx, response, &job.corr_id, if close { After::Linger } else { After::KeepAlive });
                Step::Again
            }
        }
    }

    /// Answers a refusal (counted under `route`) and closes with a lingering drain.
    fn refuse(&mut self, cx: &mut Ctx<'_>, route: &str, corr_id: &str, error: &Error) {
        let response = Response::error(error, corr_id);
        tracing::info!(corr_id, status = response.status, code = %error.code(), reason = error.message(), "refused by the transport");
        cx.service.record_http(route, response.status);
        *cx.held -= self.held;
        self.held = 0;
        self.answer(cx, response, corr_id, After::Linger);
    }

    /// Queues `response` for writing; the connection then goes on as `after` says.
    fn answer(&mut self, cx: &Ctx<'_>, response: Response, corr_id: &str, after: After) {
        let after = if cx.stopping { After::Linger } else { after };
        let head = framing::response_head(&response, corr_id, after == After::Linger);
        let (body, shared) =
            if self.head_only { (Vec::new(), None) } else { (response.body, response.shared) };
        // After a pending `100 Continue`, if any.
        self.out.push_answer(head, body, shared);
        if after == After::Linger {
            // Nothing more of this connection is read as a request.
            self.buf.clear();
            self.buf.shrink_to(READ_CHUNK_BYTES);
        }
        self.state = State::Writing(after);
        self.deadline = cx.now + cx.limits.write_timeout;
    }

    /// Discards input until EOF, the byte bound, or the deadline.
    fn linger(&mut self) -> Step {
        loop {
            self.buf.clear();
            match self.io.read_into(&mut self.buf, READ_CHUNK_BYTES) {
                Err(_) | Ok(ReadState::Eof) => return Step::Close,
                Ok(ReadState::Open) if self.buf.is_empty() => return Step::Wait,
                Ok(ReadState::Open) => {
                    self.drained += self.buf.len();
                    if self.drained > LINGER_BYTES_MAX {
                        return Step::Close;
                    }
                }
            }
        }
    }
}
