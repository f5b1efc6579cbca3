//! `healthcheck`: is the node on this host ready? One plain HTTP/1.1 `GET /readyz` to the port
//! of `BIND_ADDR` — read from the same environment as `serve`, so a container's HEALTHCHECK
//! needs no flag and no curl (a `FROM scratch` image has none) — answered `200` or not.
//!
//! The address probed is `BIND_ADDR`'s, except that an unspecified IP (`0.0.0.0`, `::`) is
//! probed on loopback. Every step (connect, write, read) shares one deadline, and at most
//! [`STATUS_LINE_BYTES_MAX`] bytes are read: a peer that stalls or babbles cannot hold the
//! probe. It speaks plain HTTP only: a node serving HTTPS (`TLS_CERT_FILE`) is refused as a
//! usage error rather than probed wrongly.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::cli::Failure;
use crate::config::NodeConfig;

/// The default deadline of one probe, milliseconds.
pub const TIMEOUT_MS_DEFAULT: u64 = 2_000;
/// The longest deadline accepted, milliseconds.
pub const TIMEOUT_MS_MAX: u64 = 60_000;
/// Bytes of the answer read at most to find its status line.
pub const STATUS_LINE_BYTES_MAX: usize = 1_024;

/// The arguments of `healthcheck`.
#[derive(clap::Args)]
pub struct Healthcheck {
    /// Give up after this many milliseconds (connect, send and read together).
    #[arg(long, default_value_t = TIMEOUT_MS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=TIMEOUT_MS_MAX))]
    timeout_ms: u64,
}

impl Healthcheck {
    /// Probes the node the environment configures: `Ok` (exit 0) when `/readyz` answered
    /// `200`; a runtime failure (exit 1) otherwise; a usage failure (exit 2) for a bad
    /// environment.
    pub fn run(&self) -> Result<Option<Vec<u8>>, Failure> {
        let config = NodeConfig::from_env().map_err(|e| Failure::Usage(e.to_string()))?;
        if config.tls.is_some() {
            return Err(Failure::Usage(
                "TLS_CERT_FILE is set: healthcheck probes plain HTTP only (probe /readyz over HTTPS instead)"
                    .into(),
            ));
        }
        let addr = probe_addr(config.bind_addr);
        match probe(addr, Duration::from_millis(self.timeout_ms)) {
            Ok(200) => Ok(None),
            Ok(status) => Err(Failure::Runtime(format!("GET http://{addr}/readyz answered {status}"))),
            Err(e) => Err(Failure::Runtime(format!("GET http://{addr}/readyz: {e}"))),
        }
    }
}

/// The address to probe for a node bound to `bind`: loopback for an unspecified IP.
pub fn probe_addr(bind: SocketAddr) -> SocketAddr {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bind.port())
}

/// The status code of `GET /readyz` at `addr`, within `timeout` in all.
pub fn probe(addr: SocketAddr, timeout: Duration) -> std::io::Result<u16> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))
    };
    let mut stream = TcpStream::connect_timeout(&addr, left()?)?;
    stream.set_write_timeout(Some(left()?))?;
    let request = format!(
        "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: rewarder-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::with_capacity(STATUS_LINE_BYTES_MAX);
    let mut chunk = [0u8; 256];
    while !head.contains(&b'\n') {
        if head.len() >= STATUS_LINE_BYTES_MAX {
            return Err(invalid("no status line in the first 1024 bytes"));
        }
        stream.set_read_timeout(Some(left()?))?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(invalid("the connection closed before a status line"));
        }
        let room = STATUS_LINE_BYTES_MAX - head.len();
        head.extend_from_slice(&chunk[..n.min(room)]);
    }
    status_code(&head).ok_or_else(|| invalid("not an HTTP/1.x status line"))
}

fn invalid(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_owned())
}

/// The code of an `HTTP/1.x NNN …` status line at the start of `head`.
fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let rest = line.strip_prefix(b"HTTP/1.1 ").or_else(|| line.strip_prefix(b"HTTP/1.0 "))?;
    let code = rest.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| b != b' ' && b != b'\r') {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn status_lines_are_read_strictly() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 503 Service Unavailable\r\nx"), Some(503));
        assert_eq!(status_code(b"HTTP/1.1 200\r\n"), Some(200));
        for bad in [&b"HTTP/2 200\r\n"[..], b"HTTP/1.1 20\r\n", b"HTTP/1.1 2000 OK\r\n", b"SSH-2.0\r\n", b""]
        {
            assert_eq!(status_code(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn an_unspecified_bind_is_probed_on_loopback() {
        assert_eq!(probe_addr("0.0.0.0:8080".parse().unwrap()), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(probe_addr("[::]:9".parse().unwrap()), "[::1]:9".parse().unwrap());
        assert_eq!(probe_addr("10.1.2.3:80".parse().unwrap()), "10.1.2.3:80".parse().unwrap());
    }

    /// A one-connection server on loopback that answers `reply` (after reading the request).
    fn answering(reply: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                let _ = s.write_all(reply);
            }
        });
        addr
    }

    #[test]
    fn a_closed_port_a_silent_peer_and_a_babbler_fail_within_the_deadline() {
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(probe(closed, Duration::from_secs(2)).is_err(), "nothing listens there");
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let started = Instant::now();
        let e = probe(silent.local_addr().unwrap(), Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{e}: took {:?}", started.elapsed());
        let babbler = answering(&[b'x'; 4096]);
        assert!(probe(babbler, Duration::from_secs(2)).unwrap_err().to_string().contains("1024"));
    }

    #[test]
    fn the_status_of_the_answer_is_returned() {
        assert_eq!(probe(answering(b"HTTP/1.1 200 OK\r\n\r\n"), Duration::from_secs(2)).unwrap(), 200);
        assert_eq!(probe(answering(b"HTTP/1.1 503 No\r\n\r\n"), Duration::from_secs(2)).unwrap(), 503);
    }
}
