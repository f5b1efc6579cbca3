//! The gate: the front door every client connection passes before tiny_http sees a byte.
//!
//! Why it exists: tiny_http 0.12 spawns one thread per accepted connection with no upper
//! bound, reads request heads with no size bound and sockets with no timeout, and performs TLS
//! handshakes on its single accept thread. Any of these lets one client exhaust the node. So
//! the node's public socket belongs to the gate, and tiny_http listens on a private loopback
//! port that only the gate talks to (every forwarded request carries a per-process token that
//! the dispatcher checks).
//!
//! For each connection (at most `connections_max` at once; beyond, `503 overloaded` and close)
//! one gate thread:
//! 1. terminates TLS when configured (rustls, `ring` provider) within the head deadline;
//! 2. reads a request head of at most `head_bytes_max` bytes within `head_timeout` (and waits
//!    at most `idle_timeout` for it on a kept-alive connection);
//! 3. validates the framing (one `Content-Length`, or `Transfer-Encoding: chunked` alone),
//!    refuses a declared body over the service's cap before reading it (`413`), and reads the
//!    whole body within `body_timeout`, counting chunked bodies while reading; the bodies held
//!    at once are bounded by `held_body_bytes_max` (beyond: `503 overloaded`);
//! 4. forwards the complete request to tiny_http with `Content-Length` framing, waits for the
//!    response, buffers it, and writes it to the client within `write_timeout`.
//!
//! So a request reaches the request thread(s) only when it is complete: a slow client holds
//! one gate thread, never the request thread. Every refusal is the JSON error envelope with
//! `X-Corr-ID`, followed by closing the connection.
//!
//! Admission, once the request is complete (the same for one request thread or a pool):
//! - the open probes (`GET /healthz`, `/readyz`, `/metrics`, `/version` without a body) are
//!   answered by the gate thread itself through [`Service::handle`]: they need no token, cost
//!   microseconds, and must answer while every request thread is busy (a liveness probe
//!   stuck behind a queue of computes would get a loaded node restarted);
//! - every other request enters the bounded work queue ([`crate::queue`]) before it is
//!   forwarded; when `WORK_QUEUE_MAX` requests already wait for a request thread it is
//!   answered `503 overloaded` at once, on the kept-alive connection.
//!
//! The gate does not decode bodies, check content types, authenticate, or route anything but
//! the probes: the dispatcher does.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rewarder_core::Code;
use rewarder_core::service::{Rejection, Response, Service};

use crate::queue::WorkQueue;
use crate::wire::{self, CORR_ID_HEADER};

/// The header carrying the per-process token from the gate to the dispatcher.
pub(crate) const GATE_TOKEN_HEADER: &str = "X-Rewarder-Gate";
/// The route of answers given before a request line is known (`http_requests_total{route}`
/// counts it as `unmatched`).
pub(crate) const TRANSPORT_ROUTE: &str = "";

/// Bounds of the gate, each with its unit last.
#[derive(Debug, Clone)]
pub struct GateLimits {
    /// Client connections held at once; one more is answered `503 overloaded` and closed.
    pub connections_max: usize,
    /// Bytes of one request head (request line + headers), and of a chunked body's trailers.
    pub head_bytes_max: usize,
    /// Time a kept-alive connection may sit idle before its next request starts.
    pub idle_timeout: Duration,
    /// Time from a request's first byte (or the TLS handshake's) to the end of its head.
    pub head_timeout: Duration,
    /// Time from the end of the head to the end of the body.
    pub body_timeout: Duration,
    /// Time to write one response to the client.
    pub write_timeout: Duration,
    /// Request-body bytes held by all gate threads at once; beyond: `503 overloaded`.
    pub held_body_bytes_max: usize,
    /// Time the gate waits for the dispatcher to answer one request.
    pub backend_timeout: Duration,
}

impl Default for GateLimits {
    fn default() -> Self {
        GateLimits {
            connections_max: 128,
            head_bytes_max: 16 * 1024,
            idle_timeout: Duration::from_secs(30),
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(60),
            held_body_bytes_max: 256 << 20,
            backend_timeout: Duration::from_secs(600),
        }
    }
}

/// How often an idle connection looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
/// The idle timeout of a kept-alive connection while the gate holds ≥ 3/4 of its cap.
const CROWDED_IDLE: Duration = Duration::from_secs(1);
/// Bytes read from a client at once.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Longest a refused connection is drained before closing (so the client reads the answer
/// instead of a reset).
const LINGER: Duration = Duration::from_millis(500);
/// Most bytes drained from a refused connection.
const LINGER_BYTES_MAX: usize = 256 * 1024;
/// Bytes of a response head from the dispatcher (our own, small).
const BACKEND_HEAD_BYTES_MAX: usize = 64 * 1024;

/// What the gate threads share.
pub(crate) struct Shared {
    pub(crate) limits: GateLimits,
    pub(crate) service: Arc<Service>,
    pub(crate) backend: SocketAddr,
    pub(crate) token: String,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) stop: AtomicBool,
    pub(crate) active: AtomicUsize,
    /// Requests forwarded and not yet picked up by a request thread.
    pub(crate) queue: WorkQueue,
    held_bytes: AtomicUsize,
}

impl Shared {
    pub(crate) fn new(
        limits: GateLimits,
        service: Arc<Service>,
        backend: SocketAddr,
        token: String,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Shared {
        Shared {
            limits,
            service,
            backend,
            token,
            tls,
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            queue: WorkQueue::default(),
            held_bytes: AtomicUsize::new(0),
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Publishes the work queue's depth as the `queue_depth` gauge. It is clamped to the bound in
    /// force: admission never lets more wait, so a count above it is an answered request not yet
    /// back at the gate. After a reload lowers the bound, the gauge reads the full new bound
    /// until the excess drains.
    pub(crate) fn publish_queue_depth(&self) {
        let max = u64::from(self.service.hot().work_queue_max);
        self.service.metrics().set_queue_depth((self.queue.depth() as u64).min(max));
    }
}

/// Accepts connections until the stop flag is set (the waker connects once to unblock it).
pub(crate) fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; the client is retried by
                // the kernel backlog.
                tracing::warn!(error = %e, "accept failed");
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let active = shared.active.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(Arc::clone(shared));
        if active >= shared.limits.connections_max {
            drop(slot);
            refuse_over_cap(stream, shared);
            continue;
        }
        let conn_shared = Arc::clone(shared);
        let spawned =
            thread::Builder::new().name("rewarder-gate".into()).stack_size(256 * 1024).spawn(move || {
                let _slot = slot;
                serve_connection(stream, &conn_shared);
            });
        if let Err(e) = spawned {
            // The closure (and its slot) was dropped: the count is already given back.
            tracing::warn!(error = %e, "cannot start a connection thread");
        }
    }
}

/// One held connection; dropping it frees the slot.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Bytes of request bodies held; dropping gives them back.
struct Held<'a> {
    shared: &'a Shared,
    bytes: usize,
}

impl<'a> Held<'a> {
    fn new(shared: &'a Shared) -> Self {
        Held { shared, bytes: 0 }
    }

    /// Makes the reservation at least `total` bytes, or refuses when the gate would hold
    /// more than its bound.
    fn cover(&mut self, total: usize) -> Result<(), Refusal> {
        let Some(more) = total.checked_sub(self.bytes).filter(|&m| m > 0) else { return Ok(()) };
        let max = self.shared.limits.held_body_bytes_max;
        let reserved = self.shared.held_bytes.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            held.checked_add(more).filter(|&total| total <= max)
        });
        match reserved {
            Ok(_) => {
                self.bytes += more;
                Ok(())
            }
            Err(_) => {
                Err(Refusal::error(Code::Overloaded, "too many request bodies in flight; retry shortly"))
            }
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.shared.held_bytes.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Answers a connection beyond the cap without a thread: a best-effort `503` on plain HTTP
/// (a TLS client cannot read plaintext, so it is just closed).
fn refuse_over_cap(stream: TcpStream, shared: &Shared) {
    let corr_id = wire::fresh_corr_id();
    // Debug, not warn: under a flood this thread must not wait on the log.
    tracing::debug!(
        corr_id,
        connections_max = shared.limits.connections_max,
        "connection refused: at the connection cap"
    );
    shared.service.record_http(TRANSPORT_ROUTE, 503);
    if shared.tls.is_some() {
        return;
    }
    let response = wire::error_response(Code::Overloaded, "too many connections; retry shortly", &corr_id);
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let mut stream = stream;
    let _ = stream.write_all(&wire::raw_response(&response, &corr_id, true));
    let _ = stream.shutdown(Shutdown::Write);
    // Take what already arrived so closing does not reset the answer away; never wait.
    if stream.set_nonblocking(true).is_ok() {
        let mut sink = [0u8; 4096];
        let _ = stream.read(&mut sink);
    }
}

/// A refusal: an error answered to the client before closing, or a silent close.
#[derive(Debug)]
enum Refusal {
    Answer(rewarder_core::Error),
    Close,
}

impl Refusal {
    fn error(code: Code, message: impl Into<String>) -> Refusal {
        Refusal::Answer(rewarder_core::Error::new(code, message))
    }
}

/// The client side of a connection: plain TCP or TLS over it.
enum ClientStream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl ClientStream {
    fn tcp(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(s) => s,
            ClientStream::Tls(s) => &s.sock,
        }
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.read(buf),
            ClientStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.write(buf),
            ClientStream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.flush(),
            ClientStream::Tls(s) => s.flush(),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Time left until `deadline`, at least a millisecond (a zero socket timeout means "none").
fn until(deadline: Instant) -> Option<Duration> {
    let left = deadline.checked_duration_since(Instant::now())?;
    Some(left.max(Duration::from_millis(1)))
}

/// A client connection with the bytes read ahead of the current request.
struct Client {
    stream: ClientStream,
    pending: Vec<u8>,
}

/// Why reading stopped.
enum ReadEnd {
    Eof,
    Deadline,
    Failed,
}

impl Client {
    /// Reads more bytes into `pending`, waiting until `deadline` at most (in slices of
    /// `slice`, so a caller may look at the stop flag in between).
    fn fill(&mut self, deadline: Instant, slice: Option<Duration>) -> Result<usize, ReadEnd> {
        loop {
            let Some(mut wait) = until(deadline) else { return Err(ReadEnd::Deadline) };
            if let Some(slice) = slice {
                wait = wait.min(slice);
            }
            if self.stream.tcp().set_read_timeout(Some(wait)).is_err() {
                return Err(ReadEnd::Failed);
            }
            let old = self.pending.len();
            self.pending.resize(old + READ_CHUNK_BYTES, 0);
            let read = self.stream.read(&mut self.pending[old..]);
            self.pending.truncate(old + *read.as_ref().unwrap_or(&0));
            match read {
                Ok(0) => return Err(ReadEnd::Eof),
                Ok(n) => return Ok(n),
                Err(e) if is_timeout(&e) => {
                    if slice.is_some() {
                        return Ok(0);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(ReadEnd::Failed),
            }
        }
    }

    /// Writes all of `bytes` before `deadline`.
    fn send(&mut self, bytes: &[u8], deadline: Instant) -> io::Result<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let wait = until(deadline).ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))?;
            self.stream.tcp().set_write_timeout(Some(wait))?;
            match self.stream.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        loop {
            let wait = until(deadline).ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))?;
            self.stream.tcp().set_write_timeout(Some(wait))?;
            match self.stream.flush() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    /// Answers `response` and closes gracefully: `Connection: close`, then the write side is
    /// shut and the input drained briefly, so the client reads the answer, not a reset.
    fn answer_and_close(&mut self, response: &Response, corr_id: &str, write_timeout: Duration) {
        let bytes = wire::raw_response(response, corr_id, true);
        if self.send(&bytes, Instant::now() + write_timeout).is_err() {
            return;
        }
        self.close_gracefully();
    }

    fn close_gracefully(&mut self) {
        if let ClientStream::Tls(s) = &mut self.stream {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let _ = self.stream.tcp().shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        let mut drained = 0;
        let mut sink = [0u8; 8192];
        while drained < LINGER_BYTES_MAX {
            let Some(wait) = until(deadline) else { break };
            if self.stream.tcp().set_read_timeout(Some(wait)).is_err() {
                break;
            }
            match self.stream.tcp().read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    }
}

/// A parsed, validated request head.
#[derive(Debug)]
struct Head {
    method: String,
    target: String,
    /// Header lines to forward (framing and hop-by-hop headers removed).
    forward: Vec<(String, String)>,
    corr_id: String,
    framing: Framing,
    expects_continue: bool,
    keep_alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// Headers the gate consumes instead of forwarding (framing, hop-by-hop, its own).
const NOT_FORWARDED: [&str; 10] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "expect",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "x-rewarder-gate",
];

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses a request head (without the final empty line). Errors are `400 bad_request`
/// carrying the correlation id when one was found.
fn parse_head(bytes: &[u8]) -> Result<Head, (String, rewarder_core::Error)> {
    let bad =
        |corr: &str, message: String| (corr.to_owned(), rewarder_core::Error::new(Code::BadRequest, message));
    // The corr id first, so that even a refused head gets its own id echoed.
    let text = std::str::from_utf8(bytes).ok().filter(|t| t.is_ascii());
    let corr_from_head = text.and_then(|t| {
        t.split("\r\n").skip(1).find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case(CORR_ID_HEADER).then(|| value.trim())
        })
    });
    let corr_id = wire::corr_id_or_fresh(corr_from_head);
    let Some(text) = text else {
        return Err(bad(&corr_id, "the request head is not ASCII".into()));
    };
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(&corr_id, "malformed request line".into()));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(bad(&corr_id, "malformed method".into()));
    }
    if !(target.starts_with('/') || target == "*") || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(&corr_id, "malformed request target (origin form expected)".into()));
    }
    let http_1_0 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(bad(&corr_id, format!("unsupported protocol version {version:?}"))),
    };
    let mut forward = Vec::new();
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<String> = None;
    let mut connection = String::new();
    let mut expect: Option<String> = None;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            return Err(bad(&corr_id, "obsolete header line folding".into()));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(&corr_id, "malformed header line".into()));
        };
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(bad(&corr_id, "malformed header name".into()));
        }
        let value = value.trim_matches([' ', '\t']);
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(bad(&corr_id, format!("control character in header {name}")));
        }
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "content-length" => {
                for item in value.split(',').map(str::trim) {
                    let n: u64 = item
                        .parse()
                        .ok()
                        .filter(|_| !item.is_empty() && item.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(|| bad(&corr_id, format!("invalid Content-Length {value:?}")))?;
                    if content_length.is_some_and(|c| c != n) {
                        return Err(bad(&corr_id, "conflicting Content-Length headers".into()));
                    }
                    content_length = Some(n);
                }
            }
            "transfer-encoding" => {
                let te = transfer_encoding.get_or_insert_with(String::new);
                if !te.is_empty() {
                    te.push(',');
                }
                te.push_str(value);
            }
            "connection" => {
                connection.push(',');
                connection.push_str(&value.to_ascii_lowercase());
            }
            "expect" => expect = Some(value.to_owned()),
            "x-corr-id" => {}
            _ if NOT_FORWARDED.contains(&lower.as_str()) => {}
            _ => forward.push((name.to_owned(), value.to_owned())),
        }
    }
    let framing = match (transfer_encoding, content_length) {
        (Some(_), Some(_)) => return Err(bad(&corr_id, "both Transfer-Encoding and Content-Length".into())),
        (Some(te), None) => {
            let codings: Vec<&str> = te.split(',').map(str::trim).filter(|c| !c.is_empty()).collect();
            if http_1_0 || codings.len() != 1 || !codings[0].eq_ignore_ascii_case("chunked") {
                return Err(bad(&corr_id, format!("unsupported Transfer-Encoding {te:?} (only chunked)")));
            }
            Framing::Chunked
        }
        (None, Some(0)) | (None, None) => Framing::None,
        (None, Some(n)) => Framing::Length(n),
    };
    let expects_continue = match expect {
        None => false,
        Some(e) if e.eq_ignore_ascii_case("100-continue") => framing != Framing::None,
        Some(e) => return Err(bad(&corr_id, format!("unsupported expectation {e:?}"))),
    };
    let tokens = |t: &str| connection.split(',').any(|c| c.trim() == t);
    let keep_alive = if http_1_0 { tokens("keep-alive") } else { !tokens("close") };
    Ok(Head {
        method: method.to_owned(),
        target: target.to_owned(),
        forward,
        corr_id,
        framing,
        expects_continue,
        keep_alive,
    })
}

fn find_head_end(bytes: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    bytes[start..].windows(4).position(|w| w == b"\r\n\r\n").map(|p| start + p)
}

/// Serves one client connection until it closes, misbehaves, idles out, or the node stops.
fn serve_connection(tcp: TcpStream, shared: &Shared) {
    let _ = tcp.set_nodelay(true);
    let stream = match &shared.tls {
        None => ClientStream::Plain(tcp),
        Some(config) => match rustls::ServerConnection::new(Arc::clone(config)) {
            Ok(conn) => ClientStream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a TLS session");
                return;
            }
        },
    };
    let mut client = Client { stream, pending: Vec::new() };
    let mut backend: Option<Backend> = None;
    let limits = &shared.limits;
    loop {
        let head = match read_head(&mut client, shared) {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err((corr_id, refusal)) => {
                refuse(&mut client, shared, &corr_id, TRANSPORT_ROUTE, refusal);
                return;
            }
        };
        let corr_id = head.corr_id.clone();
        let route = head.target.as_str();
        let mut held = Held::new(shared);
        let body = match read_body(&mut client, shared, &head, &mut held) {
            Ok(body) => body,
            Err(refusal) => {
                refuse(&mut client, shared, &corr_id, route, refusal);
                return;
            }
        };
        let exchanged = admit(&mut backend, shared, &head, &body);
        drop(body);
        drop(held);
        let response = match exchanged {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(corr_id, error = %e, "the dispatcher did not answer");
                refuse(
                    &mut client,
                    shared,
                    &corr_id,
                    route,
                    Refusal::error(Code::Internal, "the request could not be served"),
                );
                return;
            }
        };
        let close = !head.keep_alive || shared.stopping();
        let mut out = response.head;
        if close {
            // The head ends with CRLF CRLF; insert before the final CRLF.
            out.truncate(out.len() - 2);
            out.extend_from_slice(b"Connection: close\r\n\r\n");
        }
        let deadline = Instant::now() + limits.write_timeout;
        if client.send(&out, deadline).and_then(|()| client.send(&response.body, deadline)).is_err() {
            return;
        }
        if close {
            client.close_gracefully();
            return;
        }
    }
}

/// The routes the gate answers itself (see the module docs).
const PROBE_ROUTES: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/version"];
/// Seconds a client refused by a full work queue is told to wait.
const QUEUE_FULL_RETRY_AFTER_S: u32 = 1;

/// Answers a complete request: a probe on this thread, anything else through the work queue
/// and the dispatcher, or `503 overloaded` when the queue is full.
fn admit(
    backend: &mut Option<Backend>,
    shared: &Shared,
    head: &Head,
    body: &[u8],
) -> io::Result<BackendResponse> {
    let service = &shared.service;
    if head.method == "GET" && body.is_empty() && PROBE_ROUTES.contains(&Service::route_label(&head.target)) {
        return Ok(answer_probe(shared, head));
    }
    let max = usize::try_from(service.hot().work_queue_max).unwrap_or(usize::MAX);
    let Some(entry) = shared.queue.enter(max) else {
        service.metrics().reject(Rejection::QueueFull);
        service.record_http(&head.target, 503);
        // Debug, not info: under a flood this thread must not wait on the log.
        tracing::debug!(corr_id = head.corr_id, work_queue_max = max, "refused: the work queue is full");
        let error = rewarder_core::Error::new(Code::Overloaded, "the work queue is full; retry shortly")
            .with_detail("retry_after", QUEUE_FULL_RETRY_AFTER_S)
            .with_detail("reason", Rejection::QueueFull.as_str());
        return Ok(local(&Response::error(&error, &head.corr_id), &head.corr_id));
    };
    shared.publish_queue_depth();
    let exchanged = backend_exchange(backend, shared, head, body);
    drop(entry);
    shared.publish_queue_depth();
    exchanged
}

/// A probe answered by the service on the gate thread; a panic is `500 internal`.
fn answer_probe(shared: &Shared, head: &Head) -> BackendResponse {
    let service = &shared.service;
    // The gauge is exact whenever it is scraped.
    shared.publish_queue_depth();
    let request = rewarder_core::service::Request {
        method: &head.method,
        url: &head.target,
        authorization: None,
        body: &[],
        corr_id: &head.corr_id,
    };
    let response = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| service.handle(&request)))
        .unwrap_or_else(|_| {
            tracing::error!(corr_id = head.corr_id, "the probe handler panicked");
            service.record_http(&head.target, 500);
            wire::error_response(Code::Internal, "internal error", &head.corr_id)
        });
    local(&response, &head.corr_id)
}

/// A response made on this side of the dispatcher, in the dispatcher's shape.
fn local(response: &Response, corr_id: &str) -> BackendResponse {
    let mut head = wire::raw_response(response, corr_id, false);
    let body = head.split_off(head.len() - response.body.len());
    BackendResponse { head, body }
}

fn refuse(client: &mut Client, shared: &Shared, corr_id: &str, route: &str, refusal: Refusal) {
    match refusal {
        Refusal::Close => {}
        Refusal::Answer(error) => {
            let response = rewarder_core::service::Response::error(&error, corr_id);
            tracing::info!(corr_id, status = response.status, code = %error.code(), reason = error.message(), "refused by the gate");
            shared.service.record_http(route, response.status);
            client.answer_and_close(&response, corr_id, shared.limits.write_timeout);
        }
    }
}

/// Waits for and reads the next request head. `Ok(None)`: the connection ends quietly (EOF,
/// idle timeout, node stopping).
fn read_head(client: &mut Client, shared: &Shared) -> Result<Option<Head>, (String, Refusal)> {
    let limits = &shared.limits;
    // Idle: wait for the first byte, looking at the stop flag. Near the connection cap, idle
    // connections yield their slot quickly.
    let crowded = shared.active.load(Ordering::Acquire) * 4 >= limits.connections_max * 3;
    let idle = if crowded { limits.idle_timeout.min(CROWDED_IDLE) } else { limits.idle_timeout };
    let idle_deadline = Instant::now() + idle;
    while client.pending.is_empty() {
        if shared.stopping() {
            return Ok(None);
        }
        match client.fill(idle_deadline, Some(STOP_POLL)) {
            Ok(_) => {}
            Err(_) => return Ok(None),
        }
    }
    let head_deadline = Instant::now() + limits.head_timeout;
    let mut searched = 0;
    loop {
        // RFC 9112 §2.2: ignore empty lines before a request line.
        while client.pending.starts_with(b"\r\n") {
            client.pending.drain(..2);
            searched = 0;
        }
        if let Some(end) = find_head_end(&client.pending, searched) {
            if end + 4 > limits.head_bytes_max {
                return Err(too_big_head(&client.pending[..end], limits.head_bytes_max));
            }
            let parsed = parse_head(&client.pending[..end]);
            client.pending.drain(..end + 4);
            return parsed.map(Some).map_err(|(corr, e)| (corr, Refusal::Answer(e)));
        }
        if client.pending.len() >= limits.head_bytes_max {
            return Err(too_big_head(&client.pending, limits.head_bytes_max));
        }
        searched = client.pending.len();
        match client.fill(head_deadline, None) {
            Ok(_) => {}
            Err(ReadEnd::Deadline) => {
                let corr = wire::fresh_corr_id();
                let message =
                    format!("the request head did not arrive within {} s", limits.head_timeout.as_secs_f32());
                return Err((corr, Refusal::error(Code::BadRequest, message)));
            }
            Err(ReadEnd::Eof | ReadEnd::Failed) => return Ok(None),
        }
    }
}

fn too_big_head(partial: &[u8], max: usize) -> (String, Refusal) {
    let corr = std::str::from_utf8(partial)
        .ok()
        .and_then(|t| {
            t.split("\r\n").skip(1).find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case(CORR_ID_HEADER).then(|| value.trim().to_owned())
            })
        })
        .filter(|c| wire::valid_corr_id(c))
        .unwrap_or_else(wire::fresh_corr_id);
    (corr, Refusal::error(Code::BadRequest, format!("the request head exceeds {max} bytes")))
}

/// Reads the whole body within the body deadline, bounded by the service's cap for this
/// request line and by the gate's held-bytes budget.
fn read_body(
    client: &mut Client,
    shared: &Shared,
    head: &Head,
    held: &mut Held<'_>,
) -> Result<Vec<u8>, Refusal> {
    let limits = &shared.limits;
    let body_max = shared.service.body_limit(&head.method, &head.target);
    let too_large = || Refusal::error(Code::BodyTooLarge, format!("the body exceeds {body_max} bytes"));
    let deadline = Instant::now() + limits.body_timeout;
    let timed_out = || {
        Refusal::error(
            Code::BadRequest,
            format!("the request body did not arrive within {} s", limits.body_timeout.as_secs_f32()),
        )
    };
    let write_deadline = || Instant::now() + limits.write_timeout;
    match head.framing {
        Framing::None => Ok(Vec::new()),
        Framing::Length(n) => {
            let n = usize::try_from(n).ok().filter(|&n| n <= body_max).ok_or_else(too_large)?;
            if head.expects_continue && client.pending.is_empty() {
                client
                    .send(b"HTTP/1.1 100 Continue\r\n\r\n", write_deadline())
                    .map_err(|_| Refusal::Close)?;
            }
            while client.pending.len() < n {
                // Reserve as bytes arrive, so a slow sender holds only what it sent.
                held.cover((client.pending.len() + READ_CHUNK_BYTES).min(n))?;
                match client.fill(deadline, None) {
                    Ok(_) => {}
                    Err(ReadEnd::Deadline) => return Err(timed_out()),
                    Err(ReadEnd::Eof | ReadEnd::Failed) => return Err(Refusal::Close),
                }
            }
            held.cover(n)?;
            let rest = client.pending.split_off(n);
            Ok(std::mem::replace(&mut client.pending, rest))
        }
        Framing::Chunked => {
            if head.expects_continue && client.pending.is_empty() {
                client
                    .send(b"HTTP/1.1 100 Continue\r\n\r\n", write_deadline())
                    .map_err(|_| Refusal::Close)?;
            }
            let mut body = Vec::new();
            let bad = |m: &str| Refusal::error(Code::BadRequest, format!("malformed chunked body: {m}"));
            loop {
                let line = read_line(client, deadline, 1024)
                    .map_err(|e| e.or(timed_out(), bad("chunk size line too long")))?;
                let size_text = line.split(';').next().unwrap_or("").trim();
                if size_text.is_empty()
                    || size_text.len() > 16
                    || !size_text.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Err(bad("invalid chunk size"));
                }
                let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("invalid chunk size"))?;
                if size == 0 {
                    break;
                }
                if size > body_max - body.len() {
                    return Err(too_large());
                }
                held.cover(body.len() + size)?;
                while client.pending.len() < size + 2 {
                    match client.fill(deadline, None) {
                        Ok(_) => {}
                        Err(ReadEnd::Deadline) => return Err(timed_out()),
                        Err(ReadEnd::Eof | ReadEnd::Failed) => return Err(Refusal::Close),
                    }
                }
                if &client.pending[size..size + 2] != b"\r\n" {
                    return Err(bad("chunk not followed by CRLF"));
                }
                body.extend_from_slice(&client.pending[..size]);
                client.pending.drain(..size + 2);
            }
            // Trailers: read and dropped, bounded like a head.
            let mut trailer_bytes = 0;
            loop {
                let line = read_line(client, deadline, limits.head_bytes_max)
                    .map_err(|e| e.or(timed_out(), bad("trailers too long")))?;
                if line.is_empty() {
                    break;
                }
                trailer_bytes += line.len() + 2;
                if trailer_bytes > limits.head_bytes_max {
                    return Err(bad("trailers too long"));
                }
            }
            Ok(body)
        }
    }
}

/// Why a line could not be read.
enum LineEnd {
    Deadline,
    TooLong,
    Closed,
}

impl LineEnd {
    fn or(self, timed_out: Refusal, too_long: Refusal) -> Refusal {
        match self {
            LineEnd::Deadline => timed_out,
            LineEnd::TooLong => too_long,
            LineEnd::Closed => Refusal::Close,
        }
    }
}

/// Reads one CRLF-terminated ASCII line of at most `max` bytes (CRLF excluded).
fn read_line(client: &mut Client, deadline: Instant, max: usize) -> Result<String, LineEnd> {
    let mut searched: usize = 0;
    loop {
        if let Some(p) = client.pending[searched.saturating_sub(1)..].windows(2).position(|w| w == b"\r\n") {
            let end = searched.saturating_sub(1) + p;
            if end > max {
                return Err(LineEnd::TooLong);
            }
            let line = String::from_utf8_lossy(&client.pending[..end]).into_owned();
            client.pending.drain(..end + 2);
            return Ok(line);
        }
        if client.pending.len() > max + 1 {
            return Err(LineEnd::TooLong);
        }
        searched = client.pending.len();
        match client.fill(deadline, None) {
            Ok(_) => {}
            Err(ReadEnd::Deadline) => return Err(LineEnd::Deadline),
            Err(ReadEnd::Eof | ReadEnd::Failed) => return Err(LineEnd::Closed),
        }
    }
}

/// The gate's kept-alive connection to the dispatcher (tiny_http's private port).
struct Backend {
    stream: TcpStream,
    pending: Vec<u8>,
}

/// A response from the dispatcher: its head (ending in CRLF CRLF) and its body.
struct BackendResponse {
    head: Vec<u8>,
    body: Vec<u8>,
}

/// Sends one complete request to the dispatcher and reads its complete response. A failure on
/// a reused connection is retried once on a fresh one only if nothing of the response came.
fn backend_exchange(
    backend: &mut Option<Backend>,
    shared: &Shared,
    head: &Head,
    body: &[u8],
) -> io::Result<BackendResponse> {
    use std::fmt::Write as _;
    let mut request = String::with_capacity(256);
    let _ = write!(request, "{} {} HTTP/1.1\r\n", head.method, head.target);
    for (name, value) in &head.forward {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    let _ = write!(
        request,
        "{CORR_ID_HEADER}: {}\r\n{GATE_TOKEN_HEADER}: {}\r\nContent-Length: {}\r\n\r\n",
        head.corr_id,
        shared.token,
        body.len()
    );
    let reused = backend.is_some();
    match exchange_once(backend, shared, request.as_bytes(), body, head.method == "HEAD") {
        Err((e, false)) if reused => {
            tracing::debug!(error = %e, "kept-alive dispatcher connection dropped; reconnecting");
            *backend = None;
            exchange_once(backend, shared, request.as_bytes(), body, head.method == "HEAD")
                .map_err(|(e, _)| e)
        }
        other => other.map_err(|(e, _)| e),
    }
}

/// One attempt; the error says whether any response byte had arrived.
fn exchange_once(
    slot: &mut Option<Backend>,
    shared: &Shared,
    request_head: &[u8],
    body: &[u8],
    head_only: bool,
) -> Result<BackendResponse, (io::Error, bool)> {
    let timeout = shared.limits.backend_timeout;
    if slot.is_none() {
        let stream =
            TcpStream::connect_timeout(&shared.backend, Duration::from_secs(5)).map_err(|e| (e, false))?;
        let _ = stream.set_nodelay(true);
        stream.set_read_timeout(Some(timeout)).map_err(|e| (e, false))?;
        stream.set_write_timeout(Some(timeout)).map_err(|e| (e, false))?;
        *slot = Some(Backend { stream, pending: Vec::new() });
    }
    let Some(backend) = slot.as_mut() else { unreachable!("set just above") };
    let result = (|| {
        backend.stream.write_all(request_head).map_err(|e| (e, false))?;
        backend.stream.write_all(body).map_err(|e| (e, false))?;
        read_backend_response(backend, head_only)
    })();
    if result.is_err() {
        *slot = None;
    }
    result
}

fn read_backend_response(
    backend: &mut Backend,
    head_only: bool,
) -> Result<BackendResponse, (io::Error, bool)> {
    let invalid = |m: &str| (io::Error::new(io::ErrorKind::InvalidData, m.to_owned()), true);
    let mut chunk = [0u8; 64 * 1024];
    let mut searched = 0;
    let end = loop {
        if let Some(end) = find_head_end(&backend.pending, searched) {
            break end;
        }
        if backend.pending.len() > BACKEND_HEAD_BYTES_MAX {
            return Err(invalid("response head too large"));
        }
        searched = backend.pending.len();
        let n = backend.stream.read(&mut chunk).map_err(|e| (e, searched > 0))?;
        if n == 0 {
            return Err((io::ErrorKind::UnexpectedEof.into(), searched > 0));
        }
        backend.pending.extend_from_slice(&chunk[..n]);
    };
    let head: Vec<u8> = backend.pending.drain(..end + 4).collect();
    let text = std::str::from_utf8(&head).map_err(|_| invalid("response head is not UTF-8"))?;
    let status: u16 =
        text.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| invalid("bad status line"))?;
    let length = text
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    let length = match (head_only || status == 204 || status == 304 || status < 200, length) {
        (true, _) => 0,
        (false, Some(n)) => n,
        (false, None) => return Err(invalid("response without Content-Length")),
    };
    while backend.pending.len() < length {
        let n = backend.stream.read(&mut chunk).map_err(|e| (e, true))?;
        if n == 0 {
            return Err((io::ErrorKind::UnexpectedEof.into(), true));
        }
        backend.pending.extend_from_slice(&chunk[..n]);
    }
    let rest = backend.pending.split_off(length);
    let body = std::mem::replace(&mut backend.pending, rest);
    Ok(BackendResponse { head, body })
}

/// Wakes a blocked accept loop by connecting to it once.
pub(crate) fn wake(addr: SocketAddr) {
    let target = match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => SocketAddr::from(([127, 0, 0, 1], a.port())),
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    };
    let _ = TcpStream::connect_timeout(&target, Duration::from_millis(500));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Head, (String, rewarder_core::Error)> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn parses_a_plain_request() {
        let h = head("PUT /rewarder/inputs HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\nX-Corr-ID: abc\r\nContent-Type: application/json").unwrap();
        assert_eq!(
            (h.method.as_str(), h.target.as_str(), h.corr_id.as_str()),
            ("PUT", "/rewarder/inputs", "abc")
        );
        assert_eq!(h.framing, Framing::Length(12));
        assert!(h.keep_alive && !h.expects_continue);
        assert_eq!(
            h.forward,
            vec![("Host".into(), "x".into()), ("Content-Type".into(), "application/json".into())]
        );
    }

    #[test]
    fn framing_problems_are_bad_requests_with_the_corr_id() {
        for text in [
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nX-Corr-ID: c9",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nX-Corr-ID: c9",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nX-Corr-ID: c9",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\nX-Corr-ID: c9",
            "POST / HTTP/1.1\r\nContent-Length: -3\r\nX-Corr-ID: c9",
            "POST / HTTP/1.1\r\nContent-Length: +3\r\nX-Corr-ID: c9",
            "POST / HTTP/1.1\r\n folded\r\nX-Corr-ID: c9",
            "POST / HTTP/2.0\r\nX-Corr-ID: c9",
            "POST  / HTTP/1.1\r\nX-Corr-ID: c9",
            "POST / HTTP/1.1\r\nExpect: magic\r\nX-Corr-ID: c9",
            "POST / HTTP/1.1\r\nBad Name: v\r\nX-Corr-ID: c9",
        ] {
            let (corr, e) = head(text).unwrap_err();
            assert_eq!((corr.as_str(), e.code()), ("c9", Code::BadRequest), "{text:?}");
        }
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        assert!(!head("GET / HTTP/1.0").unwrap().keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive").unwrap().keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: close").unwrap().keep_alive);
        assert!(head("GET / HTTP/1.1\r\nConnection: upgrade").unwrap().keep_alive);
    }

    #[test]
    fn chunked_and_continue_are_recognised() {
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\nExpect: 100-continue").unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.expects_continue);
        assert!(head("POST / HTTP/1.0\r\nTransfer-Encoding: chunked").is_err());
    }

    #[test]
    fn the_gate_token_is_never_forwarded_from_a_client() {
        let h = head("GET / HTTP/1.1\r\nX-Rewarder-Gate: forged\r\nUpgrade: h2c\r\nTE: trailers").unwrap();
        assert!(h.forward.is_empty());
    }

    #[test]
    fn head_end_is_found_across_reads() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\n", 0), Some(14));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\n", 16), Some(14));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n", 0), None);
    }
}
