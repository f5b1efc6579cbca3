//! The one HTTP transport of every node: the gate (see [`crate::gate`]) in front of a
//! tiny_http server whose requests are dispatched to [`Service::handle`] by `workers` threads.
//! The micronode runs one worker, the macronode a pool, the embedded node one worker on a
//! background thread; nothing else differs.
//!
//! The workers share one bounded work queue (`WORK_QUEUE_MAX`, see [`crate::queue`]): the
//! gate admits a request into it or answers `503 overloaded` at once, and a worker takes it
//! out when it picks the request up. The open probes never queue (the gate answers them).
//!
//! Per request, the dispatcher: checks the gate token; takes the correlation id; for a
//! body-carrying `PUT`/`POST` requires `Content-Type: application/json`; accepts
//! `Content-Encoding` identity or gzip and inflates gzip under both the body cap and
//! `DECOMP_RATIO_MAX`; calls `handle` under `catch_unwind` (a panic is `500 internal`); answers
//! with `X-Corr-ID` and `Retry-After` when set. Every error is the JSON envelope.
//!
//! Shutdown ([`ServerHandle::stop`]): the gate stops accepting, kept-alive connections close
//! at their next idle moment, requests in flight are answered, then [`Server::run`] returns.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rewarder_core::Code;
use rewarder_core::service::{Request, Response, Service};

use crate::gate::{self, GATE_TOKEN_HEADER, Shared};
use crate::wire::{self, CORR_ID_HEADER, Encoding};

pub use crate::gate::GateLimits;

/// How a server is run: the dispatch width, the gate's bounds, TLS.
#[derive(Clone)]
pub struct ServerOptions {
    /// Threads calling [`Service::handle`]: 1 for the micronode and the embedded node.
    pub workers: usize,
    /// `DECOMP_RATIO_MAX`: most bytes a gzip body may inflate to per compressed byte.
    pub decomp_ratio_max: u32,
    /// The gate's bounds (connections, head, timeouts, held bodies).
    pub limits: GateLimits,
    /// TLS (rustls with the `ring` provider); `None` = plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Longest [`Server::run`] waits for requests in flight after a stop.
    pub drain_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            workers: 1,
            decomp_ratio_max: 10,
            limits: GateLimits::default(),
            tls: None,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("workers", &self.workers)
            .field("decomp_ratio_max", &self.decomp_ratio_max)
            .field("limits", &self.limits)
            .field("tls", &self.tls.is_some())
            .field("drain_timeout", &self.drain_timeout)
            .finish()
    }
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    http: tiny_http::Server,
    shared: Arc<Shared>,
    workers: usize,
    decomp_ratio_max: u32,
    drain_timeout: Duration,
}

/// Stops a server from anywhere (another thread, a signal watcher, an app). Cheap to clone.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

/// A server running on its own background thread (the embedded node's shape).
pub struct RunningServer {
    handle: ServerHandle,
    thread: Option<thread::JoinHandle<()>>,
}

/// The smallest head bound accepted: a request line and a few headers.
const HEAD_BYTES_MIN: usize = 256;
const _: () = assert!(HEAD_BYTES_MIN <= 16 * 1024, "the default head bound must be accepted");

/// How often the dispatchers look at the stop flag while no request comes.
const RECV_POLL: Duration = Duration::from_millis(100);

impl Server {
    /// Binds the public address (port 0 picks a free port) and the private dispatcher port on
    /// loopback. Nothing is served until [`Server::run`].
    ///
    /// Fails with `InvalidInput` when a bound of `options.limits` is zero.
    pub fn bind(addr: SocketAddr, service: Arc<Service>, options: ServerOptions) -> io::Result<Server> {
        let l = &options.limits;
        let zero = Duration::ZERO;
        if l.connections_max == 0
            || l.head_bytes_max < HEAD_BYTES_MIN
            || l.held_body_bytes_max == 0
            || [l.idle_timeout, l.head_timeout, l.body_timeout, l.write_timeout, l.backend_timeout]
                .contains(&zero)
        {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("unusable gate limits: {l:?}")));
        }
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let backend_listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        // Accepted sockets inherit TCP_NODELAY from the listener (Linux); without it tiny_http's
        // separate head and body writes wait on the gate's delayed ACK: 40 ms per response.
        socket2::SockRef::from(&backend_listener).set_tcp_nodelay(true)?;
        let http = tiny_http::Server::from_listener(backend_listener, None).map_err(io::Error::other)?;
        let backend =
            http.server_addr().to_ip().ok_or_else(|| io::Error::other("tiny_http is not on TCP"))?;
        let mut token = [0u8; 16];
        getrandom::fill(&mut token).map_err(io::Error::other)?;
        let shared = Arc::new(Shared::new(options.limits, service, backend, hex::encode(token), options.tls));
        Ok(Server {
            listener,
            local_addr,
            http,
            shared,
            workers: options.workers.max(1),
            decomp_ratio_max: options.decomp_ratio_max.max(1),
            drain_timeout: options.drain_timeout,
        })
    }

    /// The public address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The public port actually bound.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// A handle that stops this server.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle { shared: Arc::clone(&self.shared), local_addr: self.local_addr }
    }

    /// Serves until [`ServerHandle::stop`], then drains and returns. Blocks the caller, which
    /// becomes one of the workers.
    pub fn run(self) {
        self.run_until(&AtomicBool::new(false));
    }

    /// Serves until `shutdown` is set (e.g. by a signal handler) or [`ServerHandle::stop`].
    pub fn run_until(self, shutdown: &AtomicBool) {
        let handle = self.handle();
        let Server { listener, http, shared, workers, decomp_ratio_max, drain_timeout, .. } = self;
        let dispatcher = Dispatcher { http: &http, shared: &shared, decomp_ratio_max };
        thread::scope(|scope| {
            let accept = thread::Builder::new()
                .name("rewarder-accept".into())
                .spawn_scoped(scope, || gate::accept_loop(&listener, &shared));
            if let Err(e) = accept {
                tracing::error!(error = %e, "cannot start the accept thread");
                handle.stop();
            }
            for i in 1..workers {
                let spawned = thread::Builder::new()
                    .name(format!("rewarder-worker-{i}"))
                    .spawn_scoped(scope, || dispatcher.work(shutdown, &handle, drain_timeout));
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot start worker {i}; serving with fewer");
                }
            }
            dispatcher.work(shutdown, &handle, drain_timeout);
            // Unblock the accept thread if nobody else did.
            handle.stop();
        });
    }

    /// Runs the server on one background thread and returns at once.
    pub fn spawn(self) -> io::Result<RunningServer> {
        let handle = self.handle();
        let thread = thread::Builder::new().name("rewarder-server".into()).spawn(move || self.run())?;
        Ok(RunningServer { handle, thread: Some(thread) })
    }
}

impl ServerHandle {
    /// Stops accepting, lets in-flight requests finish; idempotent, returns at once.
    pub fn stop(&self) {
        if !self.shared.stop.swap(true, Ordering::AcqRel) {
            gate::wake(self.local_addr);
        }
    }

    /// Whether [`ServerHandle::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    /// The public port.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The public address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl RunningServer {
    /// A handle to stop the server.
    pub fn handle(&self) -> &ServerHandle {
        &self.handle
    }

    /// The public port.
    pub fn port(&self) -> u16 {
        self.handle.port()
    }

    /// Stops the server and waits until it has drained; idempotent.
    pub fn stop(&mut self) {
        self.handle.stop();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the server thread panicked");
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What each worker needs.
struct Dispatcher<'a> {
    http: &'a tiny_http::Server,
    shared: &'a Shared,
    decomp_ratio_max: u32,
}

impl Dispatcher<'_> {
    /// Receives and answers requests until stopped and drained.
    fn work(&self, shutdown: &AtomicBool, handle: &ServerHandle, drain_timeout: Duration) {
        let mut drain_deadline: Option<Instant> = None;
        loop {
            if shutdown.load(Ordering::Acquire) {
                handle.stop();
            }
            if handle.is_stopped() {
                let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + drain_timeout);
                let idle = self.shared.active.load(Ordering::Acquire) == 0;
                if idle || Instant::now() >= deadline {
                    if !idle {
                        tracing::warn!("drain timeout: closing with connections still open");
                    }
                    return;
                }
            }
            match self.http.recv_timeout(RECV_POLL) {
                Ok(Some(request)) => self.answer(request),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "the HTTP server failed");
                    handle.stop();
                    return;
                }
            }
        }
    }

    /// Answers one request; never panics out.
    fn answer(&self, mut request: tiny_http::Request) {
        let header = |name: &str| {
            request
                .headers()
                .iter()
                .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                .map(|h| h.value.as_str().to_owned())
        };
        let corr_id = wire::corr_id_or_fresh(header(CORR_ID_HEADER).as_deref());
        let from_gate = header(GATE_TOKEN_HEADER).is_some_and(|t| t == self.shared.token);
        // Out of the work queue now; uncounted just before the answer is written (see `queue`).
        let picked = from_gate.then(|| self.shared.queue.pick());
        if picked.is_some() {
            self.shared.publish_queue_depth();
        }
        let content_type = header("Content-Type");
        let content_encoding = header("Content-Encoding");
        let authorization = header("Authorization");
        let method = request.method().as_str().to_owned();
        let url = request.url().to_owned();
        let service = &self.shared.service;

        let body_max = service.body_limit(&method, &url);
        let mut raw = Vec::new();
        let read = request.as_reader().take(body_max as u64 + 1).read_to_end(&mut raw);

        let prepared = if !from_gate {
            Err(rewarder_core::Error::new(
                Code::Forbidden,
                "requests reach this port only through the node's gate",
            ))
        } else if read.is_err() {
            Err(rewarder_core::Error::new(Code::BadRequest, "the request body could not be read"))
        } else if raw.len() > body_max {
            Err(rewarder_core::Error::new(Code::BodyTooLarge, format!("the body exceeds {body_max} bytes")))
        } else {
            self.decode(&method, raw, content_type.as_deref(), content_encoding.as_deref(), body_max)
        };
        let response = match prepared {
            Err(error) => {
                let response = Response::error(&error, &corr_id);
                service.record_http(&url, response.status);
                tracing::info!(corr_id, status = response.status, code = %error.code(), "refused by the transport");
                response
            }
            Ok(body) => {
                let req = Request {
                    method: &method,
                    url: &url,
                    authorization: authorization.as_deref(),
                    body: &body,
                    corr_id: &corr_id,
                };
                match catch_unwind(AssertUnwindSafe(|| service.handle(&req))) {
                    Ok(response) => response,
                    Err(_) => {
                        tracing::error!(corr_id, method, "the handler panicked");
                        let response = wire::error_response(Code::Internal, "internal error", &corr_id);
                        service.record_http(&url, response.status);
                        response
                    }
                }
            }
        };
        tracing::debug!(corr_id, method, status = response.status, "answered");
        drop(picked);
        if let Err(e) = request.respond(to_tiny(response, &corr_id)) {
            tracing::debug!(corr_id, error = %e, "the client went away before the answer");
        }
    }

    /// Content-type and content-encoding checks, then gzip inflation under both caps.
    fn decode(
        &self,
        method: &str,
        raw: Vec<u8>,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        body_max: usize,
    ) -> Result<Vec<u8>, rewarder_core::Error> {
        if raw.is_empty() {
            return Ok(raw);
        }
        if matches!(method, "PUT" | "POST") {
            wire::check_content_type(content_type)?;
        }
        match wire::parse_encoding(content_encoding)? {
            Encoding::Identity => Ok(raw),
            Encoding::Gzip => wire::inflate_gzip(&raw, body_max, self.decomp_ratio_max),
        }
    }
}

fn header(name: &str, value: &str) -> Option<tiny_http::Header> {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

/// A core response as a tiny_http one, always with `Content-Length` framing (the gate relies
/// on it).
fn to_tiny(response: Response, corr_id: &str) -> tiny_http::Response<io::Cursor<Vec<u8>>> {
    let mut out = tiny_http::Response::from_data(response.body)
        .with_status_code(response.status)
        .with_chunked_threshold(usize::MAX);
    let headers = [
        header("Content-Type", response.content_type),
        header(CORR_ID_HEADER, corr_id),
        response.retry_after_s.and_then(|s| header("Retry-After", &s.to_string())),
    ];
    for h in headers.into_iter().flatten() {
        out.add_header(h);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::net::TcpStream;

    use rewarder_core::service::{Artifacts, Config, HotKnobs, Profile};
    use rewarder_core::{Limits, SigningKeys};

    use super::*;
    use crate::clock::SystemClock;
    use crate::config::EnvReload;

    struct InMemory;

    impl Artifacts for InMemory {
        fn keep(&self, _: &str, _: &[u8]) -> bool {
            false
        }
    }

    fn service() -> Arc<Service> {
        let config = Config {
            profile: Profile::Embedded,
            auth_keys: None,
            limits: Limits::UNBOUNDED,
            req_body_max_bytes: 1 << 20,
            inputs_max_bytes: 1 << 20,
            runs_max: 4,
            runs_max_bytes: 1 << 20,
            documents_max_bytes: 1 << 20,
            keys: SigningKeys::from_seeds(&[7; 32], None),
            hot: HotKnobs::default(),
            features: vec![],
        };
        Arc::new(Service::new(config, Arc::new(SystemClock::new()), Arc::new(InMemory), Arc::new(EnvReload)))
    }

    fn get(port: u16, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    fn loopback() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    #[test]
    fn a_pool_of_workers_serves_concurrent_clients_and_stops() {
        let options = ServerOptions { workers: 4, ..ServerOptions::default() };
        let server = Server::bind(loopback(), service(), options).unwrap();
        let port = server.port();
        assert_ne!(port, 0);
        let mut running = server.spawn().unwrap();
        let clients: Vec<_> = (0..16).map(|_| thread::spawn(move || get(port, "/healthz"))).collect();
        for c in clients {
            assert!(c.join().unwrap().starts_with("HTTP/1.1 200 OK\r\n"));
        }
        running.stop();
        running.stop();
        assert!(running.handle().is_stopped());
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "the port is closed after stop");
    }

    #[test]
    fn zero_limits_are_refused_at_bind() {
        let mut options = ServerOptions::default();
        options.limits.connections_max = 0;
        let err = Server::bind(loopback(), service(), options).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn run_until_returns_when_the_flag_is_set() {
        let server = Server::bind(loopback(), service(), ServerOptions::default()).unwrap();
        let port = server.port();
        let flag = Arc::new(AtomicBool::new(false));
        let runner = {
            let flag = Arc::clone(&flag);
            thread::spawn(move || server.run_until(&flag))
        };
        assert!(get(port, "/nowhere").starts_with("HTTP/1.1 404"));
        flag.store(true, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !runner.is_finished() {
            assert!(Instant::now() < deadline, "run_until did not return");
            thread::sleep(Duration::from_millis(10));
        }
        runner.join().unwrap();
    }

    #[test]
    fn the_private_port_refuses_requests_that_bypass_the_gate() {
        let server = Server::bind(loopback(), service(), ServerOptions::default()).unwrap();
        let backend = server.shared.backend;
        let running = server.spawn().unwrap();
        let reply = get(backend.port(), "/healthz");
        assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
        assert!(reply.contains("\"forbidden\""));
        drop(running);
    }
}
