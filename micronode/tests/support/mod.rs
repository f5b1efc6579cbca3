//! Helpers of the micronode's integration tests: spawning the built binary on a free loopback
//! port, raw HTTP/1.1 over std TCP, scratch directories. Every wait is bounded in time.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_rewarder-micronode");

/// The shared golden vectors.
pub fn vectors() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors"))
}

/// A fresh empty directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let mut r = [0u8; 6];
        getrandom::fill(&mut r).unwrap();
        let path = std::env::temp_dir().join(format!("micronode-test-{tag}-{}", hex::encode(r)));
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

/// A running micronode child process.
pub struct Node {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
    /// HOME, TMPDIR and cwd of the child.
    pub home: Scratch,
    pub tmp: Scratch,
    pub cwd: Scratch,
}

/// How long a node may take to print its port.
const START_TIMEOUT: Duration = Duration::from_secs(15);

impl Node {
    /// Starts `rewarder-micronode serve` with `BIND_ADDR=127.0.0.1:0` and `env` in an otherwise
    /// empty environment (fresh HOME, TMPDIR and cwd).
    pub fn start(env: &[(&str, &str)]) -> Node {
        Node::try_start(&["serve"], env)
            .unwrap_or_else(|(status, log)| panic!("node exited with {status:?}:\n{log}"))
    }

    /// Like [`Node::start`] with other arguments; `Err` has the exit status and stderr when
    /// the process ends before listening.
    pub fn try_start(args: &[&str], env: &[(&str, &str)]) -> Result<Node, (Option<ExitStatus>, String)> {
        let (home, tmp, cwd) = (Scratch::new("home"), Scratch::new("tmp"), Scratch::new("cwd"));
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_clear()
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("HOME", home.path())
            .env("TMPDIR", tmp.path())
            .env("LOG", "info")
            .current_dir(cwd.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn the micronode");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let lines = Arc::clone(&stderr);
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                // Logged before the port is announced, so a test that starts asserting on the
                // log right after `start` returns always finds the listening line in it.
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
                return Ok(Node { child, addr, stderr, home, tmp, cwd });
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err((Some(status), stderr.lock().unwrap().join("\n")));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err((None, stderr.lock().unwrap().join("\n")));
            }
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the node printed on stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Sends a signal by name (`TERM`, `HUP`, `INT`).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().unwrap();
        assert!(ok.success(), "kill -{name}");
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

    /// What the process printed on stdout; call after it exited.
    pub fn stdout_after_exit(&mut self) -> String {
        let mut out = String::new();
        if let Some(mut pipe) = self.child.stdout.take() {
            let _ = pipe.read_to_string(&mut out);
        }
        out
    }

    /// Peak resident set size of the process, in KiB (Linux).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse().ok())
    }

    /// The amnesia directory the node logged.
    pub fn amnesia_dir(&self) -> PathBuf {
        let log = self.log();
        let line =
            log.lines().find(|l| l.contains("amnesia directory")).expect("the amnesia directory is logged");
        let dir = line.split("dir=").nth(1).expect("dir=").split_whitespace().next().unwrap();
        PathBuf::from(dir.trim_matches('"'))
    }

    /// A raw exchange with this node.
    pub fn raw(&self, request: &[u8]) -> Reply {
        raw(self.addr, request)
    }

    /// `METHOD path` with optional JSON body and extra header lines.
    pub fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
        self.raw(&request_bytes(method, path, headers, body))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // Politely first, so the node removes its amnesia directory.
            let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
            if self.wait(Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
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

/// A parsed response.
#[derive(Debug)]
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

    /// The error code of an envelope.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error envelope: {self:?}"))
            .to_owned()
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

/// How long any single exchange may take in the tests.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// Writes `request`, reads one response.
pub fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(EXCHANGE_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(EXCHANGE_TIMEOUT)).unwrap();
    // The server may answer (and close) before taking all of an oversize request.
    let _ = stream.write_all(request);
    read_reply(&mut BufReader::new(&mut stream)).expect("a response")
}

/// Reads one response (head + Content-Length body) from `stream`.
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
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok(Reply { status, headers, body })
}

/// Runs the binary to completion with `args` and `env` (empty environment otherwise).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_clear().stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
            panic!("{args:?} did not finish in 60 s");
        }
    }
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}
