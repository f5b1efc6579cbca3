//! The server: one I/O thread runs a readiness loop (`mio`) over the listener and every
//! client connection; the compute threads ([`super::workers`]) run the body phase. Idle and
//! slow connections cost a buffer and a registration, never a thread.
//!
//! Shutdown ([`ServerHandle::stop`]): the listener closes, idle connections close at once,
//! requests in flight are answered (with `Connection: close`), then [`Server::run`] returns
//! — or when `drain_timeout` has passed.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use rewarder_core::Code;
use rewarder_core::service::{Rejection, Service};

use super::conn::{Conn, Ctx, Next, TRANSPORT_ROUTE};
use super::framing;
use super::wire_io::WireIo;
use super::workers::{Pool, Reply, WorkQueue};
use crate::wire;

/// Bounds of the transport, each with its unit last.
#[derive(Debug, Clone)]
pub struct TransportLimits {
    /// Client connections held at once; one more is answered `503 overloaded` and closed
    /// (or, while the probe reserve has room, kept for one open probe).
    pub connections_max: usize,
    /// Client connections one source address may hold at once, so that one client cannot
    /// take every slot; beyond, as for `connections_max`.
    pub connections_per_source_max: usize,
    /// Bytes of one request head (request line + headers), and of a chunked body's trailers.
    pub head_bytes_max: usize,
    /// Time a kept-alive connection may sit idle before its next request starts.
    pub idle_timeout: Duration,
    /// The idle timeout while the node holds at least 3/4 of `connections_max`: idle clients
    /// make room for new ones.
    pub idle_timeout_crowded: Duration,
    /// Time from a request's first byte to the end of its head.
    pub head_timeout: Duration,
    /// Time from the end of the head to the end of the body.
    pub body_timeout: Duration,
    /// Time to write one answer to the client.
    pub write_timeout: Duration,
    /// Request-body bytes held at once by all connections and queued requests; beyond:
    /// `503 overloaded`.
    pub held_body_bytes_max: usize,
}

impl Default for TransportLimits {
    fn default() -> Self {
        TransportLimits {
            connections_max: 128,
            connections_per_source_max: 96,
            head_bytes_max: 16 * 1024,
            idle_timeout: Duration::from_secs(30),
            idle_timeout_crowded: Duration::from_secs(1),
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(60),
            held_body_bytes_max: 256 << 20,
        }
    }
}

/// How a server is run: the compute width, the transport's bounds, TLS.
#[derive(Clone)]
pub struct ServerOptions {
    /// Compute threads: 1 for the micronode and the embedded node.
    pub workers: usize,
    /// `DECOMP_RATIO_MAX`: most bytes a gzip body may inflate to per compressed byte.
    pub decomp_ratio_max: u32,
    /// The transport's bounds (connections, head, timeouts, held bodies).
    pub limits: TransportLimits,
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
            limits: TransportLimits::default(),
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

/// The smallest head bound accepted: a request line and a few headers.
const HEAD_BYTES_MIN: usize = 256;
const _: () = assert!(HEAD_BYTES_MIN <= 16 * 1024, "the default head bound must be accepted");
/// Connections waiting in the kernel to be accepted.
const LISTEN_BACKLOG: i32 = 4096;
const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;
/// How often deadlines are checked (and the stop flag, when nothing else wakes the loop).
const TICK: Duration = Duration::from_millis(50);
/// How long accepting pauses after the system refused a descriptor (EMFILE and friends).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);
/// Connections kept beyond the caps for one open probe each (`/healthz`, `/readyz`,
/// `/metrics`, `/version`): a node at its cap still tells its orchestrator it is alive.
const PROBE_RESERVE: usize = 16;

/// What a handle shares with its server.
struct Shared {
    stop: AtomicBool,
    waker: Arc<Waker>,
}

/// A bound, not yet running server.
pub struct Server {
    poll: Poll,
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    service: Arc<Service>,
    options: ServerOptions,
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

impl Server {
    /// Binds `addr` (port 0 picks a free port). Nothing is served until [`Server::run`].
    ///
    /// Fails with `InvalidInput` when a bound of `options.limits` is zero.
    pub fn bind(addr: SocketAddr, service: Arc<Service>, options: ServerOptions) -> io::Result<Server> {
        let l = &options.limits;
        let zero = Duration::ZERO;
        if l.connections_max == 0
            || l.connections_per_source_max == 0
            || l.head_bytes_max < HEAD_BYTES_MIN
            || l.held_body_bytes_max == 0
            || [l.idle_timeout, l.idle_timeout_crowded, l.head_timeout, l.body_timeout, l.write_timeout]
                .contains(&zero)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unusable transport limits: {l:?}"),
            ));
        }
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        let mut listener = TcpListener::from_std(socket.into());
        let local_addr = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let shared = Arc::new(Shared { stop: AtomicBool::new(false), waker });
        Ok(Server { poll, listener, local_addr, shared, service, options })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// A handle that stops this server.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle { shared: Arc::clone(&self.shared), local_addr: self.local_addr }
    }

    /// Serves until [`ServerHandle::stop`], then drains and returns. The caller becomes the
    /// I/O thread.
    pub fn run(self) {
        self.run_until(&AtomicBool::new(false));
    }

    /// Serves until `shutdown` is set (e.g. by a signal handler) or [`ServerHandle::stop`].
    pub fn run_until(self, shutdown: &AtomicBool) {
        let Server { poll, listener, shared, service, options, .. } = self;
        let (done_tx, done_rx) = mpsc::channel();
        let queue = Arc::new(WorkQueue::default());
        let pool = Pool {
            queue: Arc::clone(&queue),
            service: Arc::clone(&service),
            done: done_tx,
            waker: Arc::clone(&shared.waker),
            decomp_ratio_max: options.decomp_ratio_max.max(1),
        };
        let threads = match pool.spawn(options.workers) {
            Ok(threads) => threads,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a compute thread");
                shared.stop.store(true, Ordering::Release);
                return;
            }
        };
        let mut io_loop = IoLoop {
            poll,
            listener: Some(listener),
            conns: HashMap::new(),
            per_source: HashMap::new(),
            reserve: 0,
            next_token: FIRST_CONN,
            service: &service,
            queue: &queue,
            options: &options,
            held: 0,
            stopping: false,
            accept_paused_until: None,
        };
        io_loop.serve(shutdown, &shared, &done_rx);
        drop(io_loop);
        queue.close();
        for t in threads {
            if t.join().is_err() {
                tracing::error!("a compute thread panicked");
            }
        }
    }

    /// Runs the server on one background thread and returns at once.
    pub fn spawn(self) -> io::Result<RunningServer> {
        let handle = self.handle();
        let thread = thread::Builder::new().name("rewarder-io".into()).spawn(move || self.run())?;
        Ok(RunningServer { handle, thread: Some(thread) })
    }
}

impl ServerHandle {
    /// Stops accepting, lets in-flight requests finish; idempotent, returns at once.
    pub fn stop(&self) {
        if !self.shared.stop.swap(true, Ordering::AcqRel)
            && let Err(e) = self.shared.waker.wake()
        {
            tracing::error!(error = %e, "cannot wake the I/O thread; it stops at its next tick");
        }
    }

    /// Whether [`ServerHandle::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl RunningServer {
    /// A handle to stop the server.
    pub fn handle(&self) -> &ServerHandle {
        &self.handle
    }

    /// The port.
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

/// The I/O thread's state.
struct IoLoop<'a> {
    poll: Poll,
    /// `None` once stopping.
    listener: Option<TcpListener>,
    conns: HashMap<Token, Conn>,
    /// Regular (not reserve) connections per source address.
    per_source: HashMap<IpAddr, usize>,
    /// Connections in the probe reserve.
    reserve: usize,
    next_token: usize,
    service: &'a Service,
    queue: &'a WorkQueue,
    options: &'a ServerOptions,
    /// Request-body bytes held (see [`TransportLimits::held_body_bytes_max`]).
    held: usize,
    stopping: bool,
    accept_paused_until: Option<Instant>,
}

impl IoLoop<'_> {
    fn serve(&mut self, shutdown: &AtomicBool, shared: &Shared, done: &mpsc::Receiver<Reply>) {
        let mut events = Events::with_capacity(1024);
        let mut drain_deadline: Option<Instant> = None;
        let mut next_sweep = Instant::now() + TICK;
        loop {
            if shutdown.load(Ordering::Acquire) {
                shared.stop.store(true, Ordering::Release);
            }
            if shared.stop.load(Ordering::Acquire) && !self.stopping {
                self.begin_stop();
                drain_deadline = Some(Instant::now() + self.options.drain_timeout);
            }
            if let Some(deadline) = drain_deadline {
                if self.conns.is_empty() {
                    return;
                }
                if Instant::now() >= deadline {
                    tracing::warn!(
                        connections = self.conns.len(),
                        "drain timeout: closing with requests in flight"
                    );
                    return;
                }
            }
            if let Err(e) = self.poll.poll(&mut events, Some(TICK)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(error = %e, "the readiness loop failed");
                shared.stop.store(true, Ordering::Release);
                return;
            }
            for event in &events {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    token => self.drive(token),
                }
            }
            // Every part that has come is queued before any is written: the parts of a
            // streamed answer that came together leave in one write.
            let mut delivered = Vec::new();
            while let Ok(reply) = done.try_recv() {
                let token = reply.token();
                if self.deliver(reply) && !delivered.contains(&token) {
                    delivered.push(token);
                }
            }
            for token in delivered {
                self.drive(token);
            }
            let now = Instant::now();
            if self.accept_paused_until.is_some_and(|until| now >= until) {
                self.accept_paused_until = None;
                self.accept();
            }
            if now >= next_sweep {
                next_sweep = now + TICK;
                self.sweep();
            }
        }
    }

    fn ctx(&mut self) -> (Ctx<'_>, &mut HashMap<Token, Conn>) {
        let open = self.conns.len() - self.reserve;
        (
            Ctx {
                service: self.service,
                limits: &self.options.limits,
                queue: self.queue,
                held: &mut self.held,
                open,
                stopping: self.stopping,
                now: Instant::now(),
            },
            &mut self.conns,
        )
    }

    fn begin_stop(&mut self) {
        self.stopping = true;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let idle: Vec<Token> = self.conns.iter().filter(|(_, c)| c.is_idle()).map(|(t, _)| *t).collect();
        for token in idle {
            self.close(token);
        }
    }

    fn accept(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = &self.listener else { return };
            match listener.accept() {
                Ok((sock, peer)) => self.open(sock, peer.ip()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the kernel's backlog
                    // keeps the clients until then.
                    tracing::warn!(error = %e, "accept failed");
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    fn open(&mut self, sock: TcpStream, source: IpAddr) {
        let limits = &self.options.limits;
        let regular = self.conns.len() - self.reserve;
        let from_source = self.per_source.get(&source).copied().unwrap_or(0);
        let over = regular >= limits.connections_max || from_source >= limits.connections_per_source_max;
        if over && self.reserve >= PROBE_RESERVE {
            self.refuse_over_cap(sock);
            return;
        }
        let _ = sock.set_nodelay(true);
        let mut io = match WireIo::new(sock, self.options.tls.as_ref()) {
            Ok(io) => io,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a TLS session");
                return;
            }
        };
        let token = Token(self.next_token);
        self.next_token += 1;
        let registered =
            self.poll.registry().register(io.socket(), token, Interest::READABLE | Interest::WRITABLE);
        if let Err(e) = registered {
            tracing::warn!(error = %e, "cannot watch a connection");
            return;
        }
        if over {
            self.reserve += 1;
        } else {
            *self.per_source.entry(source).or_default() += 1;
        }
        let (cx, conns) = self.ctx();
        let conn = Conn::new(token, io, source, over, &cx);
        conns.insert(token, conn);
    }

    /// Answers a connection beyond the cap without keeping it: a best-effort `503` on plain
    /// HTTP (a TLS client cannot read plaintext, so it is just closed).
    fn refuse_over_cap(&self, mut sock: TcpStream) {
        let service = self.service;
        service.metrics().reject(Rejection::Connections);
        service.record_http(TRANSPORT_ROUTE, 503);
        let corr_id = wire::fresh_corr_id();
        // Debug, not warn: under a flood the I/O thread must not wait on the log.
        tracing::debug!(
            corr_id,
            connections_max = self.options.limits.connections_max,
            "connection refused: at the cap"
        );
        if self.options.tls.is_some() {
            return;
        }
        use std::io::{Read, Write};
        let response =
            wire::error_response(Code::Overloaded, "too many connections; retry shortly", &corr_id);
        let mut bytes = framing::response_head(&response, &corr_id, true);
        bytes.extend_from_slice(&response.spliced().body);
        let _ = sock.write(&bytes);
        let _ = sock.shutdown(std::net::Shutdown::Write);
        // Take what already arrived so closing does not reset the answer away; never wait.
        let _ = sock.read(&mut [0u8; 4096]);
    }

    fn drive(&mut self, token: Token) {
        let (mut cx, conns) = self.ctx();
        let Some(conn) = conns.get_mut(&token) else { return };
        if conn.drive(&mut cx) == Next::Close {
            self.close(token);
        }
    }

    /// Queues a compute thread's reply on its connection; `true` when the connection is
    /// there to be driven.
    fn deliver(&mut self, reply: Reply) -> bool {
        let token = reply.token();
        self.held -= reply.held();
        let (cx, conns) = self.ctx();
        // The client may have gone while its request was computed.
        let Some(conn) = conns.get_mut(&token) else { return false };
        if conn.deliver(reply, &cx) == Next::Close {
            self.close(token);
            return false;
        }
        true
    }

    /// Expires deadlines.
    fn sweep(&mut self) {
        let (mut cx, conns) = self.ctx();
        let mut closing = Vec::new();
        for (token, conn) in conns.iter_mut() {
            if conn.expire(&mut cx) == Next::Close {
                closing.push(*token);
            }
        }
        for token in closing {
            self.close(token);
        }
    }

    fn close(&mut self, token: Token) {
        if let Some(mut conn) = self.conns.remove(&token) {
            conn.release(&mut self.held);
            if conn.is_reserve() {
                self.reserve -= 1;
            } else if let Some(n) = self.per_source.get_mut(&conn.source()) {
                *n -= 1;
                if *n == 0 {
                    self.per_source.remove(&conn.source());
                }
            }
            let _ = self.poll.registry().deregister(conn.io().socket());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use rewarder_core::service::{Artifacts, Config, HotKnobs, Kept, Profile};
    use rewarder_core::{Limits, SigningKeys};

    use super::*;
    use crate::clock::SystemClock;
    use crate::config::EnvReload;

    struct InMemory;

    impl Artifacts for InMemory {
        fn keep(&self, _: &str, _: &[u8]) -> Kept {
            Kept::Spilled
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
            tenant_store_max_bytes: None,
            tenant_runs_max: None,
            keys: SigningKeys::from_seeds(&[7; 32], None),
            hot: HotKnobs::default(),
            features: vec![],
        };
        Arc::new(Service::new(config, Arc::new(SystemClock::new()), Arc::new(InMemory), Arc::new(EnvReload)))
    }

    fn exchange(port: u16, request: &str) -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    fn get(port: u16, path: &str) -> String {
        exchange(port, &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
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
        let clients: Vec<_> =
            (0..16).map(|i| thread::spawn(move || get(port, &format!("/rewarder/epochs/e{i}")))).collect();
        for c in clients {
            assert!(c.join().unwrap().starts_with("HTTP/1.1 404 Not Found\r\n"));
        }
        running.stop();
        running.stop();
        assert!(running.handle().is_stopped());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the port is closed after stop");
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_on_one_connection() {
        let server = Server::bind(loopback(), service(), ServerOptions::default()).unwrap();
        let port = server.port();
        let _running = server.spawn().unwrap();
        let replies = exchange(
            port,
            "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: t\r\n\r\nGET /version HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        let statuses: Vec<&str> =
            replies.match_indices("HTTP/1.1 ").map(|(i, _)| &replies[i + 9..i + 12]).collect();
        assert_eq!(statuses, ["200", "404", "200"], "{replies}");
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
}
