//! A deliberately small HTTP/1.1 server over `std::net`: enough for a test peer, and in full
//! control of the connection, so that the simulator can drop one without answering (which a
//! general-purpose server library does not allow).
//!
//! It supports `Content-Length` and `chunked` request bodies, `Expect: 100-continue` and
//! keep-alive; every response carries `Content-Length`. One thread per connection, at most
//! [`MAX_CONNECTIONS`] at once (further clients wait in the listen backlog); idle keep-alive
//! connections are closed after [`IDLE_TIMEOUT`].

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// At most this many connections are served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// An idle keep-alive connection is closed after this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request head and body must arrive within this long once started.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request head (request line and headers).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The largest request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How often blocked reads and the accept loop look at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// A parsed request with its whole body.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method, as sent (`GET`, `PUT`, …).
    pub method: String,
    /// The request target (path and query), as sent.
    pub target: String,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
    /// Whether the client allows the connection to stay open afterwards.
    pub keep_alive: bool,
}

impl Request {
    /// The path without the query string.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }
}

/// What the handler wants done with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Send this response.
    Send {
        /// Status code.
        status: u16,
        /// `Content-Type` value.
        content_type: &'static str,
        /// Body.
        body: Vec<u8>,
    },
    /// Close the connection without any response (a peer that went away).
    Drop,
}

impl Reply {
    /// A JSON response.
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply::Send { status, content_type: "application/json", body: body.to_string().into_bytes() }
    }
}

/// Answers requests; called concurrently from connection threads.
pub trait Handler: Send + Sync + 'static {
    /// The reply to one request.
    fn handle(&self, request: &Request) -> Reply;
}

/// Shared by the accept loop and the connection threads.
#[derive(Debug, Default)]
pub struct Control {
    /// Set to stop accepting and to close connections after their current request.
    pub stop: AtomicBool,
    /// Connections being served.
    pub live: AtomicUsize,
}

/// Accepts connections until `control.stop` is set (then returns; connection threads finish
/// their current request and close on their own).
pub fn serve(listener: TcpListener, control: Arc<Control>, handler: Arc<dyn Handler>) {
    if let Err(e) = listener.set_nonblocking(true) {
        eprintln!("ledger-sim: cannot make the listener non-blocking: {e}");
        return;
    }
    while !control.stop.load(Ordering::SeqCst) {
        if control.live.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                control.live.fetch_add(1, Ordering::SeqCst);
                let (conn_control, handler) = (Arc::clone(&control), Arc::clone(&handler));
                let spawned = std::thread::Builder::new().name("ledger-sim-conn".into()).spawn(move || {
                    serve_connection(stream, &conn_control, handler.as_ref());
                    conn_control.live.fetch_sub(1, Ordering::SeqCst);
                });
                if spawned.is_err() {
                    control.live.fetch_sub(1, Ordering::SeqCst);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Out of file descriptors and the like: back off, keep serving.
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn serve_connection(stream: TcpStream, control: &Control, handler: &dyn Handler) {
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(POLL)))
        .and_then(|()| stream.set_write_timeout(Some(REQUEST_TIMEOUT)))
        .and_then(|()| stream.set_nodelay(true));
    if setup.is_err() {
        return;
    }
    let mut conn = Conn { stream, buf: Vec::new() };
    loop {
        match conn.read_request(&control.stop) {
            Ok(None) | Err(Failure::Close) => break,
            Err(Failure::Respond(status, code, message)) => {
                let body = serde_json::json!({"error": {"code": code, "message": message}});
                let _ = conn.write(status, "application/json", body.to_string().as_bytes(), true);
                break;
            }
            Ok(Some(request)) => match handler.handle(&request) {
                Reply::Drop => break,
                Reply::Send { status, content_type, body } => {
                    let close = !request.keep_alive || control.stop.load(Ordering::SeqCst);
                    if conn.write(status, content_type, &body, close).is_err() || close {
                        break;
                    }
                }
            },
        }
    }
    let _ = conn.stream.shutdown(Shutdown::Both);
}

/// Why a request could not be read.
#[derive(Debug)]
enum Failure {
    /// The peer went away, timed out or we are stopping: close silently.
    Close,
    /// A protocol error: answer it, then close.
    Respond(u16, &'static str, String),
}

struct Conn {
    stream: TcpStream,
    /// Received bytes not consumed yet.
    buf: Vec<u8>,
}

impl Conn {
    /// Reads more bytes into `buf`, waiting until `deadline` (or until stopped, when `idle`).
    fn fill(&mut self, deadline: Instant, stop: &AtomicBool) -> Result<(), Failure> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(Failure::Close),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if Instant::now() >= deadline || stop.load(Ordering::SeqCst) {
                        return Err(Failure::Close);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Failure::Close),
            }
        }
    }

    /// The next request, `None` when the connection ends cleanly between requests.
    fn read_request(&mut self, stop: &AtomicBool) -> Result<Option<Request>, Failure> {
        let idle_deadline = Instant::now() + IDLE_TIMEOUT;
        let mut started: Option<Instant> = None;
        let head_end = loop {
            // Tolerate empty lines before a request (RFC 9112 §2.2).
            let blank = self.buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
            self.buf.drain(..blank);
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Err(Failure::Respond(431, "bad_request", "request head too large".into()));
            }
            if !self.buf.is_empty() && started.is_none() {
                started = Some(Instant::now());
            }
            let deadline = started.map_or(idle_deadline, |t| t + REQUEST_TIMEOUT);
            match self.fill(deadline, stop) {
                Ok(()) => {}
                Err(_) if self.buf.is_empty() => return Ok(None),
                Err(e) => return Err(e),
            }
        };
        let deadline = started.unwrap_or_else(Instant::now) + REQUEST_TIMEOUT;
        let head: Vec<u8> = self.buf.drain(..head_end + 4).collect();
        let bad = |m: &str| Failure::Respond(400, "bad_request", m.to_owned());
        let head = std::str::from_utf8(&head[..head_end]).map_err(|_| bad("request head is not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(t), Some(v), None) if !m.is_empty() && t.starts_with('/') => (m, t, v),
            _ => return Err(bad("malformed request line")),
        };
        let http11 = match version {
            "HTTP/1.1" => true,
            "HTTP/1.0" => false,
            _ => return Err(Failure::Respond(505, "bad_request", "only HTTP/1.0 and HTTP/1.1".into())),
        };
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line.split_once(':').ok_or_else(|| bad("malformed header line"))?;
            if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
                return Err(bad("malformed header name"));
            }
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let header_tokens = |name: &str| -> Vec<String> {
            headers
                .iter()
                .filter(|(n, _)| n == name)
                .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
                .filter(|t| !t.is_empty())
                .collect()
        };
        let connection = header_tokens("connection");
        let keep_alive = if http11 {
            !connection.iter().any(|t| t == "close")
        } else {
            connection.iter().any(|t| t == "keep-alive")
        };
        let chunked = match header_tokens("transfer-encoding").as_slice() {
            [] => false,
            [t] if t == "chunked" => true,
            _ => return Err(Failure::Respond(501, "bad_request", "only chunked transfer coding".into())),
        };
        let lengths: Vec<&str> =
            headers.iter().filter(|(n, _)| n == "content-length").map(|(_, v)| v.as_str()).collect();
        let content_length = match lengths.as_slice() {
            [] => None,
            [first, rest @ ..] if rest.iter().all(|l| l == first) => Some(
                first
                    .parse::<usize>()
                    .ok()
                    .filter(|_| first.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| bad("malformed Content-Length"))?,
            ),
            _ => return Err(bad("conflicting Content-Length headers")),
        };
        if chunked && content_length.is_some() {
            return Err(bad("both Content-Length and Transfer-Encoding"));
        }
        if content_length.is_some_and(|n| n > MAX_BODY_BYTES) {
            return Err(Failure::Respond(413, "body_too_large", format!("body over {MAX_BODY_BYTES} bytes")));
        }
        let has_body = chunked || content_length.is_some_and(|n| n > 0);
        if http11 && has_body && header_tokens("expect").iter().any(|t| t == "100-continue") {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").map_err(|_| Failure::Close)?;
        }
        let body = if chunked {
            self.read_chunked(deadline, stop)?
        } else {
            let n = content_length.unwrap_or(0);
            while self.buf.len() < n {
                self.fill(deadline, stop)?;
            }
            self.buf.drain(..n).collect()
        };
        Ok(Some(Request { method: method.to_owned(), target: target.to_owned(), headers, body, keep_alive }))
    }

    fn read_line(&mut self, deadline: Instant, stop: &AtomicBool) -> Result<String, Failure> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).collect();
                return String::from_utf8(line[..i].to_vec())
                    .map_err(|_| Failure::Respond(400, "bad_request", "malformed chunked body".into()));
            }
            if self.buf.len() > 4096 {
                return Err(Failure::Respond(400, "bad_request", "malformed chunked body".into()));
            }
            self.fill(deadline, stop)?;
        }
    }

    fn read_chunked(&mut self, deadline: Instant, stop: &AtomicBool) -> Result<Vec<u8>, Failure> {
        let malformed = || Failure::Respond(400, "bad_request", "malformed chunked body".into());
        let mut body = Vec::new();
        loop {
            let line = self.read_line(deadline, stop)?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| malformed())?;
            if size == 0 {
                // Trailer fields, up to the empty line.
                while !self.read_line(deadline, stop)?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > MAX_BODY_BYTES {
                return Err(Failure::Respond(
                    413,
                    "body_too_large",
                    format!("body over {MAX_BODY_BYTES} bytes"),
                ));
            }
            while self.buf.len() < size + 2 {
                self.fill(deadline, stop)?;
            }
            if &self.buf[size..size + 2] != b"\r\n" {
                return Err(malformed());
            }
            body.extend(self.buf.drain(..size + 2).take(size));
        }
    }

    fn write(&mut self, status: u16, content_type: &str, body: &[u8], close: bool) -> io::Result<()> {
        let mut out = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
            reason(status),
            body.len(),
            if close { "close" } else { "keep-alive" },
        )
        .into_bytes();
        out.extend_from_slice(body);
        self.stream.write_all(&out)?;
        self.stream.flush()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Handler for Echo {
        fn handle(&self, r: &Request) -> Reply {
            if r.path() == "/drop" {
                return Reply::Drop;
            }
            let body = format!("{} {} {}", r.method, r.path(), String::from_utf8_lossy(&r.body));
            Reply::Send { status: 200, content_type: "text/plain", body: body.into_bytes() }
        }
    }

    fn start() -> (std::net::SocketAddr, Arc<Control>, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let control = Arc::new(Control::default());
        let c = Arc::clone(&control);
        let t = std::thread::spawn(move || serve(listener, c, Arc::new(Echo)));
        (addr, control, t)
    }

    /// Sends `raw`, half-closes, and returns everything the server sent back.
    fn exchange(addr: std::net::SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(raw).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn framing() {
        let (addr, control, t) = start();
        // Two pipelined keep-alive requests, the second chunked with an extension and a trailer.
        let out = exchange(
            addr,
            b"\r\nPOST /a?q=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcPUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nhe\r\n3\r\nllo\r\n0\r\nT: v\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("POST /a abc"), "{out}");
        assert!(out.ends_with("PUT /b hello"), "{out}");
        assert_eq!(out.matches("Connection: keep-alive").count(), 2, "{out}");

        let out = exchange(addr, b"GET /x HTTP/1.0\r\n\r\n");
        assert!(out.contains("Connection: close") && out.ends_with("GET /x "), "{out}");
        let out = exchange(addr, b"POST /c HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz");
        assert!(out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"), "{out}");
        assert_eq!(exchange(addr, b"GET /drop HTTP/1.1\r\n\r\n"), "");

        for (raw, status) in [
            (&b"GET /x HTTP/2\r\n\r\n"[..], "505"),
            (b"GET x HTTP/1.1\r\n\r\n", "400"),
            (b"GET /x HTTP/1.1\r\nbad header\r\n\r\n", "400"),
            (b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "400"),
            (b"POST /x HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", "413"),
            (b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "501"),
            (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "400"),
        ] {
            let out = exchange(addr, raw);
            assert!(
                out.starts_with(&format!("HTTP/1.1 {status} ")),
                "{}: {out}",
                String::from_utf8_lossy(raw)
            );
            assert!(out.contains("Connection: close") && out.contains("\"error\""), "{out}");
        }
        // A request cut short gets no answer.
        assert_eq!(exchange(addr, b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"), "");

        control.stop.store(true, Ordering::SeqCst);
        t.join().unwrap();
    }
}
