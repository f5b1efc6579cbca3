//! Helpers of the micronode's integration tests over `rewarder_testkit::node`: the built binary
//! with its own HOME, TMPDIR and cwd, bounded exchanges, the CLI, gzip.

#![allow(dead_code)]

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rewarder_testkit::node::{Process, node_command};
pub use rewarder_testkit::node::{Reply, Scratch, read_reply, request_bytes};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_rewarder-micronode");

/// The golden vectors (`testing/vectors`).
pub fn vectors() -> PathBuf {
    rewarder_testkit::golden::vectors()
}

/// A running micronode child process.
pub struct Node {
    process: Process,
    /// HOME, TMPDIR and cwd of the child.
    pub home: Scratch,
    pub tmp: Scratch,
    pub cwd: Scratch,
}

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
        let mut cmd = node_command(BIN, args, env, home.path(), tmp.path(), cwd.path());
        let process = Process::spawn(cmd.stdout(Stdio::piped()))?;
        Ok(Node { process, home, tmp, cwd })
    }

    /// A node from a process started some other way (e.g. inside a pid namespace).
    pub fn from_process(process: Process, home: Scratch, tmp: Scratch, cwd: Scratch) -> Node {
        Node { process, home, tmp, cwd }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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

// The node is its process plus its directories: tests reach the address, log, signals and exit
// straight through it.
impl Deref for Node {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.process
    }
}

impl DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.running() {
            // Politely first, so the node removes its amnesia directory; the process is killed
            // when it drops if it has not exited by then.
            let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
            self.wait(Duration::from_secs(5));
        }
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

/// A token from the `mint-token` command under `AUTH_KEYS=keys` (`args`: `--kid`, `--tenant`,
/// `--scope`, …).
pub fn mint_token(keys: &str, args: &[&str]) -> String {
    let mut all = vec!["mint-token"];
    all.extend_from_slice(args);
    let out = run_cli(&all, &[("AUTH_KEYS", keys)]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The JSON content type header.
pub const JSON: (&str, &str) = ("Content-Type", "application/json");

/// A file of the golden vector `dir`.
pub fn read_vector(dir: &str, file: &str) -> Vec<u8> {
    std::fs::read(vectors().join(dir).join(file)).unwrap()
}

/// PUT inputs, PUT policy, POST compute; the compute reply.
pub fn compute_over_http(node: &Node, dir: &str, auth: Option<&str>) -> Reply {
    let bearer = auth.map(|t| format!("Bearer {t}"));
    let mut headers = vec![JSON];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    let inputs = node.call("PUT", "/rewarder/inputs", &headers, Some(&read_vector(dir, "inputs.json")));
    assert!(matches!(inputs.status, 200 | 201), "{dir}: {}", String::from_utf8_lossy(&inputs.body));
    let policy = node.call("PUT", "/rewarder/policies", &headers, Some(&read_vector(dir, "policy.json")));
    assert!(matches!(policy.status, 200 | 201), "{dir}: {}", String::from_utf8_lossy(&policy.body));
    let (inputs, policy) = (inputs.json(), policy.json());
    let request = serde_json::json!({
        "inputs_cid": inputs["inputs_cid"], "policy_id": policy["policy_id"], "policy_hash": policy["policy_hash"],
    });
    let epoch = inputs["epoch"].as_str().unwrap();
    node.call(
        "POST",
        &format!("/rewarder/epochs/{epoch}/compute"),
        &headers,
        Some(request.to_string().as_bytes()),
    )
}
