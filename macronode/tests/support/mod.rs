//! Helpers of the macronode's integration tests: spawning the built binary on a free loopback
//! port, raw HTTP/1.1 over std TCP, small generated epochs, tokens, metrics. Every wait is
//! bounded in time; every child is killed when its handle drops.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_rewarder-macronode");

/// An HS256 key for `AUTH_KEYS` (32 bytes, hex).
pub const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// `Content-Type: application/json`.
pub const JSON: (&str, &str) = ("Content-Type", "application/json");

/// A fresh empty directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let mut r = [0u8; 6];
        getrandom::fill(&mut r).unwrap();
        let path = std::env::temp_dir().join(format!("macronode-test-{tag}-{}", hex::encode(r)));
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

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

/// A running macronode child process.
pub struct Node {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
    /// HOME, TMPDIR and cwd of the child.
    pub home: Scratch,
}

/// How long a node may take to print its port.
const START_TIMEOUT: Duration = Duration::from_secs(15);

impl Node {
    /// Starts `rewarder-macronode serve` with `BIND_ADDR=127.0.0.1:0` and `env` in an otherwise
    /// empty environment (fresh HOME, TMPDIR and cwd).
    pub fn start(env: &[(&str, &str)]) -> Node {
        Node::try_start(env).unwrap_or_else(|(status, log)| panic!("node exited with {status:?}:\n{log}"))
    }

    /// Like [`Node::start`]; `Err` has the exit status and stderr when the process ends (or
    /// does not listen in time).
    pub fn try_start(env: &[(&str, &str)]) -> Result<Node, (Option<ExitStatus>, String)> {
        let home = Scratch::new("home");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .env_clear()
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("HOME", home.path())
            .env("TMPDIR", home.path())
            .env("LOG", "info")
            .current_dir(home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn the macronode");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let lines = Arc::clone(&stderr);
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on http://") {
                    let _ =
                        port_tx.send(url.parse::<SocketAddr>().expect("an address on the listening line"));
                }
                lines.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(addr) = port_rx.recv_timeout(Duration::from_millis(20)) {
                return Ok(Node { child, addr, stderr, home });
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the node printed on stderr so far.
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

    /// Sends a signal by name (`TERM`, `HUP`, `KILL`) to this process only.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().unwrap();
        assert!(ok.success(), "kill -{name}");
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

    /// `METHOD path` with optional body and extra header lines.
    pub fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
        call(self.addr, method, path, headers, body)
    }

    /// The value of an unlabelled series (or one written out with its labels) of `/metrics`.
    pub fn metric(&self, series: &str) -> f64 {
        metric(&self.call("GET", "/metrics", &[], None), series)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The value of `series` in a `/metrics` reply.
pub fn metric(reply: &Reply, series: &str) -> f64 {
    let text = String::from_utf8_lossy(&reply.body);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
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

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The error code of an envelope, or "" when the body is not one.
    pub fn code(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// How long any single exchange may take in the tests.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);

/// One exchange on a fresh connection; `Err` on any transport failure.
pub fn try_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(EXCHANGE_TIMEOUT))?;
    stream.set_write_timeout(Some(EXCHANGE_TIMEOUT))?;
    stream.write_all(&request_bytes(method, path, headers, body))?;
    read_reply(&mut stream)
}

/// One exchange on a fresh connection; panics on a transport failure.
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    try_call(addr, method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Reads one response (head + Content-Length body) from `stream`.
pub fn read_reply(stream: &mut impl Read) -> std::io::Result<Reply> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.get(9..12))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .map_or(0, |(_, v)| v.parse().unwrap_or(0));
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Reply { status, headers, body })
}

/// A bearer header value for `tenant` with `scope`, signed with `KEY_HEX` as kid `k1`.
pub fn bearer(tenant: &str, scope: &str) -> String {
    let key = hex::decode(KEY_HEX).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    format!("Bearer {}", rewarder_core::service::auth::mint("k1", &key, tenant, scope, now + 3600, None))
}

/// A small valid inputs document for `epoch`: `actors` actors, 3 events each, over two kinds;
/// the usage depends on `seed`.
pub fn small_inputs(epoch: &str, actors: usize, seed: u64) -> Vec<u8> {
    let names: Vec<String> = (0..actors).map(|i| format!("acct:a{i}")).collect();
    let mut events = Vec::new();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for a in 0..actors {
        for k in 0..3u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = events.len() as u64 + 1;
            events.push(json!([id, a, k % 2, 1 + x % 5000]));
        }
    }
    json!({
        "schema": "rewarder.inputs.v1",
        "epoch": epoch,
        "pool_minor": "1000000",
        "kinds": ["bytes_served", "uptime_s"],
        "actors": names,
        "events": events,
    })
    .to_string()
    .into_bytes()
}

/// The policy of [`small_inputs`], with its id.
pub fn small_policy(policy_id: &str) -> Vec<u8> {
    json!({
        "schema": "rewarder.policy.v1",
        "policy_id": policy_id,
        "weights": {"bytes_served": 1, "uptime_s": 2},
        "caps": {"uptime_s": 3000},
        "min_payout_minor": "5",
    })
    .to_string()
    .into_bytes()
}

/// Stores `inputs` and `policy` on `addr` and returns the compute body (`dry_run` as given).
pub fn upload(
    addr: SocketAddr,
    headers: &[(&str, &str)],
    inputs: &[u8],
    policy: &[u8],
    dry_run: bool,
) -> Vec<u8> {
    let mut h = headers.to_vec();
    h.push(JSON);
    let i = call(addr, "PUT", "/rewarder/inputs", &h, Some(inputs));
    assert!(matches!(i.status, 200 | 201), "inputs: {} {}", i.status, String::from_utf8_lossy(&i.body));
    let p = call(addr, "PUT", "/rewarder/policies", &h, Some(policy));
    assert!(matches!(p.status, 200 | 201), "policy: {} {}", p.status, String::from_utf8_lossy(&p.body));
    let (i, p) = (i.json(), p.json());
    json!({
        "inputs_cid": i["inputs_cid"],
        "policy_id": p["policy_id"],
        "policy_hash": p["policy_hash"],
        "dry_run": dry_run,
    })
    .to_string()
    .into_bytes()
}
