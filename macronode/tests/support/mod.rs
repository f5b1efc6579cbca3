//! Helpers of the macronode's integration tests over `rewarder_testkit::node`: the built binary,
//! bounded exchanges, small generated epochs, tokens, metrics. Every child is killed when its
//! handle drops.

#![allow(dead_code)]

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::{Deref, DerefMut};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rewarder_testkit::node::{Process, node_command, read_reply, request_bytes};
pub use rewarder_testkit::node::{Reply, Scratch};
use serde_json::json;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_rewarder-macronode");

/// An HS256 key for `AUTH_KEYS` (32 bytes, hex).
pub const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// `Content-Type: application/json`.
pub const JSON: (&str, &str) = ("Content-Type", "application/json");

/// A running macronode child process.
pub struct Node {
    process: Process,
    /// HOME, TMPDIR and cwd of the child.
    pub home: Scratch,
}

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
        let mut cmd = node_command(BIN, &["serve"], env, home.path(), home.path(), home.path());
        let process = Process::spawn(cmd.stdout(Stdio::null()))?;
        Ok(Node { process, home })
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

// The node is its process plus its directory: tests reach the address, log, signals and exit
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

/// The value of `series` in a `/metrics` reply.
pub fn metric(reply: &Reply, series: &str) -> f64 {
    let text = String::from_utf8_lossy(&reply.body);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
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
    read_reply(&mut BufReader::new(&mut stream))
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
