//! A node binary under test as a child process, and raw HTTP/1.1 to it over std TCP: what the
//! integration tests of the micronode and the macronode share.
//!
//! Every wait is bounded in time, and a [`Process`] is killed when it drops. It knows nothing of
//! the API beyond the error envelope, and each test crate keeps its own timeouts, directories
//! and shutdown manners.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a node may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A fresh empty directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new `rewarder-test-<tag>-<random>` in the system's temporary directory.
    pub fn new(tag: &str) -> Scratch {
        let mut r = [0u8; 6];
        getrandom::fill(&mut r).unwrap();
        let path = std::env::temp_dir().join(format!("rewarder-test-{tag}-{}", hex::encode(r)));
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Names of the entries inside.
    pub fn entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `bin args` with `BIND_ADDR=127.0.0.1:0`, `HOME`, `TMPDIR`, `LOG=info` and then `env` in an
/// otherwise empty environment, running in `cwd` with stdin from `/dev/null`.
pub fn node_command(
    bin: &str,
    args: &[&str],
    env: &[(&str, &str)],
    home: &Path,
    tmp: &Path,
    cwd: &Path,
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_clear()
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("HOME", home)
        .env("TMPDIR", tmp)
        .env("LOG", "info")
        .current_dir(cwd)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A running child process that announced where it listens, and everything it printed on
/// stderr.
pub struct Process {
    child: Child,
    /// The address of its `listening on` line.
    pub addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Spawns `cmd` with stderr piped and waits for its `listening on http(s)://ADDR` line.
    /// `Err` has the exit status and stderr when the process ends first, or no status when it
    /// does not listen in time (it is killed then).
    pub fn spawn(cmd: &mut Command) -> Result<Process, (Option<ExitStatus>, String)> {
        let mut child = cmd
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let lines = Arc::clone(&stderr);
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                // Logged before the port is announced, so a test that starts asserting on the
                // log right after `spawn` returns always finds the listening line in it.
                lines.lock().unwrap().push(line.clone());
                if let Some(url) = line
                    .strip_prefix("listening on http://")
                    .or_else(|| line.strip_prefix("listening on https://"))
                {
                    let _ =
                        port_tx.send(url.parse::<SocketAddr>().expect("an address on the listening line"));
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(addr) = port_rx.recv_timeout(Duration::from_millis(50)) {
                return Ok(Process { child, addr, stderr });
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err((Some(status), stderr.lock().unwrap().join("\n")));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err((None, stderr.lock().unwrap().join("\n")));
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed on stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits until the log contains `needle`, at most `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            assert!(Instant::now() < deadline, "{needle:?} not logged:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal by name (`TERM`, `HUP`, `INT`, `KILL`) to this process only.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().unwrap();
        assert!(ok.success(), "kill -{name}");
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process has not exited yet.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the process printed on stdout, when that was piped; call after it exited.
    pub fn stdout_after_exit(&mut self) -> String {
        let mut out = String::new();
        if let Some(mut pipe) = self.child.stdout.take() {
            let _ = pipe.read_to_string(&mut out);
        }
        out
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.running() {
            self.kill();
        }
    }
}

/// Bytes of an HTTP/1.1 request with `Connection: close`.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = body {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if let Some(body) = body {
        bytes.extend_from_slice(body);
    }
    bytes
}

/// Every TCP socket a process listens on (IPv4 and IPv6), from `/proc/PID/fd` and
/// `/proc/net/tcp{,6}`: which listeners a node really opened, whatever its code says.
pub fn listening_sockets(pid: u32) -> Vec<SocketAddr> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|target| {
                    let t = target.to_string_lossy();
                    Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
            if f.len() < 10 || f[3] != "0A" || !inodes.iter().any(|i| i == f[9]) {
                continue;
            }
            if let Some(addr) = proc_net_addr(f[1]) {
                out.push(addr);
            }
        }
    }
    out.sort();
    out
}

/// `0100007F:1F90` (IPv4) or a 32-hex-digit IPv6 address and port, as `/proc/net/tcp*` writes
/// them: the address in the kernel's byte order, 32 bits at a time.
fn proc_net_addr(field: &str) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // Each 32-bit word is printed as the host's (little-endian) integer of network-order bytes.
    let bytes: Vec<u8> = (0..addr.len() / 8)
        .map(|i| u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16).map(u32::to_le_bytes))
        .collect::<Result<Vec<_>, _>>()
        .ok()?
        .concat();
    let ip: std::net::IpAddr = match bytes.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).into(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).into(),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes, or the chunks' data).
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The error code of an envelope, or "" when the body is not one (a success, or a proxy's
    /// own error page).
    pub fn code(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Asserts an error envelope with `status` and `code`, `X-Corr-ID` echoed in the envelope.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.header("Content-Type"), Some("application/json"));
        assert_eq!(self.code(), code);
        let corr = self.header("X-Corr-ID").expect("X-Corr-ID on every response");
        assert_eq!(self.json()["error"]["corr_id"], corr);
    }
}

/// Reads one response (head, then a `Content-Length` or chunked body) from `stream`.
pub fn read_reply(stream: &mut impl BufRead) -> std::io::Result<Reply> {
    // Byte-exact: a pipelined reply right behind this one must stay in the reader.
    let mut head = Vec::new();
    loop {
        let before = head.len();
        if stream.read_until(b'\n', &mut head)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if &head[before..] == b"\r\n" {
            break;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
    let body = if header("Transfer-Encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        assert!(header("Content-Length").is_none(), "both Content-Length and chunked framing");
        read_chunked(stream)?
    } else {
        let length: usize = header("Content-Length").map_or(0, |v| v.parse().unwrap());
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body)?;
        body
    };
    Ok(Reply { status, headers, body })
}

/// Reads a chunked body (RFC 9112 §7.1) strictly: hex sizes without extensions, each chunk's
/// data ended by CRLF, no trailers; panics on anything else (a node's framing bug).
fn read_chunked(stream: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = Vec::new();
        stream.read_until(b'\n', &mut line)?;
        let size = line.strip_suffix(b"\r\n").and_then(|hex| std::str::from_utf8(hex).ok());
        let size = size
            .and_then(|hex| usize::from_str_radix(hex, 16).ok())
            .unwrap_or_else(|| panic!("bad chunk size line {:?}", String::from_utf8_lossy(&line)));
        let start = body.len();
        body.resize(start + size, 0);
        stream.read_exact(&mut body[start..])?;
        let mut end = [0u8; 2];
        stream.read_exact(&mut end)?;
        assert_eq!(&end, b"\r\n", "a chunk's data ends with CRLF");
        if size == 0 {
            return Ok(body);
        }
    }
}
