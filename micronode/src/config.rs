//! The node's configuration from the environment (API.md §5): every knob is read raw, then
//! validated into a typed [`NodeConfig`] once, at start. A bad value is a [`ConfigError`] that
//! names the variable; the binary prints it and exits 2.
//!
//! Knobs beyond API.md §5, specific to this transport: `CONNECTIONS_MAX` (client connections
//! held at once, default 128), `IDLE_TIMEOUT_MS` (a kept-alive connection's wait for its next
//! request, default 30000) and `IDLE_TIMEOUT_CROWDED_MS` (the same at ≥ 3/4 of
//! `CONNECTIONS_MAX`, default 1000), `CONNECTIONS_PER_SOURCE_MAX` (connections one client
//! address may hold, default 3/4 of `CONNECTIONS_MAX`), `DOCUMENTS_MAX_BYTES` (parsed documents kept in memory,
//! default 268435456), `RUNS_MAX_BYTES` (stored runs kept in memory beside `RUNS_MAX`, by their
//! estimated size: 32 bytes per payee, so an L run of 50,000 payees weighs 1.6 MB; default
//! 16777216), `LEDGER_QUARANTINE_MAX` (intents the ledger quarantine queue holds
//! before new non-dry runs are refused `503 overloaded`, default 100000) and `LEDGER_CA_FILE`
//! (PEM certificates to trust for an `https://` `LEDGER_URL` instead of the Mozilla roots),
//! `HOT_KNOBS_FILE` (see [`FileReload`]), the per-tenant quotas `TENANT_STORE_MAX_BYTES`
//! (estimated bytes of parsed documents one tenant keeps) and `TENANT_RUNS_MAX` (stored runs
//! one tenant keeps), both unset by default: without them the stores are only shared fairly;
//! `LEDGER_QUARANTINE_ONLY` (a hot switch that queues intents without sending any),
//! `LEDGER_STOP_DRAIN_S` (how long a stopping node keeps draining its queue, default 30) and
//! `STATE_PATH` (the macronode's durable queue, a SQLite file; it needs `LEDGER_URL`),
//! and `TRACE_SAMPLE` (the share of requests traced, a fraction from 0 to 1, default 0.01; hot,
//! see [`crate::trace`]).
//!
//! `CONCURRENCY_COMPUTE_WORKERS` is read here for every node and used by the macronode only
//! (the micronode and the embedded node serve on one request thread).
//!
//! This module reads variables; apart from the hot-knobs file of [`FileReload`] it does not
//! open files (keys and TLS certificates are loaded by their own modules from the paths it
//! validated).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use rewarder_core::service::HotKnobs;

use crate::knobs;

/// A knob with a bad value: which variable, what it held, and what was expected.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// What was wrong with it.
    pub reason: String,
}

impl ConfigError {
    fn new(var: &'static str, reason: impl Into<String>) -> Self {
        ConfigError { var, reason: reason.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, for machines.
    Json,
}

/// The ledger knobs (`LEDGER_*`), validated now and used by the ledger client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    /// `LEDGER_URL`; `None` = compute-only node.
    pub url: Option<String>,
    /// `LEDGER_MAX_RETRIES`.
    pub max_retries: u32,
    /// `LEDGER_DEADLINE_MS`: per attempt.
    pub deadline_ms: u64,
    /// `LEDGER_BATCH_MAX`: intents per request.
    pub batch_max: usize,
    /// `LEDGER_P95_BUDGET_MS`: brownout threshold.
    pub p95_budget_ms: u64,
    /// `LEDGER_WINDOW_S`: brownout window.
    pub window_s: u64,
    /// `LEDGER_QUARANTINE_MAX` (transport extension): intents queued at most.
    pub quarantine_max: usize,
    /// `LEDGER_CA_FILE` (transport extension): PEM roots for an `https://` ledger.
    pub ca_file: Option<PathBuf>,
    /// `LEDGER_STOP_DRAIN_S`: how long a stopping node keeps draining its quarantine queue
    /// after the requests in flight are answered.
    pub stop_drain_s: u64,
}

/// `TLS_CERT_FILE` and `TLS_KEY_FILE`, both set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Every knob of the node, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// `BIND_ADDR`.
    pub bind_addr: SocketAddr,
    /// `MAX_INFLIGHT`, `TENANT_RPS_MAX`, `WORK_QUEUE_MAX`.
    pub hot: HotKnobs,
    /// `REQ_BODY_MAX_BYTES`.
    pub req_body_max_bytes: usize,
    /// `INPUTS_MAX_BYTES`.
    pub inputs_max_bytes: usize,
    /// `DECOMP_RATIO_MAX`.
    pub decomp_ratio_max: u32,
    /// `REQUIRE_PQ_ON`.
    pub require_pq_on: bool,
    /// `SIGNING_KEY_FILE`; `None` = fresh keys per process.
    pub signing_key_file: Option<PathBuf>,
    /// `SIGNING_KEYS_RETIRED`: public keys the node no longer signs with but still lists
    /// (`GET /rewarder/keys`, status `retired`).
    pub signing_keys_retired: Vec<rewarder_core::PublicKey>,
    /// `AUTH_KEYS` as `(kid, key)`; `None` = authentication off.
    pub auth_keys: Option<Vec<(String, Vec<u8>)>>,
    /// `TLS_CERT_FILE` + `TLS_KEY_FILE`.
    pub tls: Option<TlsFiles>,
    /// `AMNESIA_DIR`: the root (tmpfs) the node makes its own directory in; `None` =
    /// `/dev/shm`.
    pub amnesia_dir: Option<PathBuf>,
    /// `AMNESIA_ALLOW_DISK`: accept an `AMNESIA_DIR` that is not tmpfs (logged as a warning).
    pub amnesia_allow_disk: bool,
    /// `RUNS_MAX`.
    pub runs_max: usize,
    /// `RUNS_MAX_BYTES` (transport extension).
    pub runs_max_bytes: usize,
    /// `DOCUMENTS_MAX_BYTES` (transport extension).
    pub documents_max_bytes: usize,
    /// `TENANT_STORE_MAX_BYTES` (extension): one tenant's parsed documents at most; `None` =
    /// no quota (the documents store is still shared fairly).
    pub tenant_store_max_bytes: Option<usize>,
    /// `TENANT_RUNS_MAX` (extension): one tenant's stored runs at most; `None` = no quota.
    pub tenant_runs_max: Option<usize>,
    /// `CONNECTIONS_MAX` (transport extension).
    pub connections_max: usize,
    /// `CONNECTIONS_PER_SOURCE_MAX` (transport extension): connections one client address may
    /// hold; default three quarters of `CONNECTIONS_MAX`, so one client cannot lock others out.
    /// Behind a load balancer every connection comes from its address: set it to
    /// `CONNECTIONS_MAX` there.
    pub connections_per_source_max: usize,
    /// `IDLE_TIMEOUT_MS` (transport extension): how long a kept-alive connection may wait for
    /// its next request.
    pub idle_timeout_ms: u64,
    /// `IDLE_TIMEOUT_CROWDED_MS` (transport extension): the same while the node holds at least
    /// three quarters of `CONNECTIONS_MAX`, so idle clients make room for new ones.
    pub idle_timeout_crowded_ms: u64,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `LOG`: a `tracing` filter directive (`info`, `debug`, `rewarder_micronode=trace`, …).
    pub log: String,
    /// `ALLOW_INSECURE_BIND`.
    pub allow_insecure_bind: bool,
    /// `LEDGER_*`.
    pub ledger: LedgerConfig,
    /// `CONCURRENCY_COMPUTE_WORKERS`; `None` = the profile's default.
    pub compute_workers: Option<usize>,
    /// `HOT_KNOBS_FILE` (transport extension): where SIGHUP, SIGUSR1 and
    /// `POST /rewarder/admin/reload` read the hot knobs from, over the environment; `None` =
    /// the environment only.
    pub hot_knobs_file: Option<PathBuf>,
    /// `STATE_PATH`: the file of the durable quarantine queue (macronode only); `None` = the
    /// queue lives in memory.
    pub state_path: Option<PathBuf>,
    /// `TRACE_SAMPLE` in millionths (transport extension, hot): the share of requests traced.
    pub trace_sample_ppm: u32,
}

/// The default `BIND_ADDR`.
pub const BIND_ADDR_DEFAULT: &str = "127.0.0.1:8080";
/// The default `CONNECTIONS_MAX`.
pub const CONNECTIONS_MAX_DEFAULT: usize = 128;
/// Shortest HS256 key accepted in `AUTH_KEYS` (RFC 7518 §3.2: at least the hash size).
pub const AUTH_KEY_BYTES_MIN: usize = 32;
/// Most `CONCURRENCY_COMPUTE_WORKERS` accepted.
pub const COMPUTE_WORKERS_MAX: usize = 1024;
/// Largest `HOT_KNOBS_FILE` read (four `KEY=VALUE` lines and comments fit many times over).
pub const HOT_KNOBS_FILE_BYTES_MAX: u64 = 64 * 1024;
/// The variables a hot-knobs file may set: exactly the knobs a reload changes (API.md §5).
pub const HOT_KNOB_VARS: [&str; 5] =
    ["TENANT_RPS_MAX", "MAX_INFLIGHT", "WORK_QUEUE_MAX", "LEDGER_QUARANTINE_ONLY", "TRACE_SAMPLE"];

impl NodeConfig {
    /// The configuration from the process environment.
    pub fn from_env() -> Result<NodeConfig, ConfigError> {
        NodeConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// The configuration from any variable lookup (tests pass a map). An empty value counts
    /// as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<NodeConfig, ConfigError> {
        let env = Env(&lookup);
        let bind_addr = parse_bind_addr(&env.required("BIND_ADDR")?)?;
        let auth_keys = env.get("AUTH_KEYS").map(|v| parse_auth_keys(&v)).transpose()?;
        let allow_insecure_bind = env.bool("ALLOW_INSECURE_BIND")?;
        if !bind_addr.ip().is_loopback() && auth_keys.is_none() && !allow_insecure_bind {
            return Err(ConfigError::new(
                "BIND_ADDR",
                format!(
                    "{bind_addr} is not a loopback address and AUTH_KEYS is unset: set AUTH_KEYS, \
                     bind 127.0.0.1, or set ALLOW_INSECURE_BIND=true"
                ),
            ));
        }
        let tls = match (env.get("TLS_CERT_FILE"), env.get("TLS_KEY_FILE")) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.into(), key: key.into() }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "TLS_KEY_FILE",
                    "unset while TLS_CERT_FILE is set (set both or neither)",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "TLS_CERT_FILE",
                    "unset while TLS_KEY_FILE is set (set both or neither)",
                ));
            }
        };
        let log_format = match env.required("LOG_FORMAT")?.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::new("LOG_FORMAT", format!("{other:?}: expected text or json")));
            }
        };
        let log = env.required("LOG")?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log) {
            return Err(ConfigError::new("LOG", format!("{log:?}: {e}")));
        }
        let ledger = LedgerConfig {
            url: env.get("LEDGER_URL").map(|u| parse_url(&u)).transpose()?,
            max_retries: env.number("LEDGER_MAX_RETRIES", 0, 100)?,
            deadline_ms: env.number("LEDGER_DEADLINE_MS", 1, 600_000)?,
            batch_max: env.number("LEDGER_BATCH_MAX", 1, 1_000_000)?,
            p95_budget_ms: env.number("LEDGER_P95_BUDGET_MS", 1, 600_000)?,
            window_s: env.number("LEDGER_WINDOW_S", 1, 86_400)?,
            quarantine_max: env.number("LEDGER_QUARANTINE_MAX", 1, 100_000_000)?,
            ca_file: env.get("LEDGER_CA_FILE").map(PathBuf::from),
            stop_drain_s: env.number("LEDGER_STOP_DRAIN_S", 0, 86_400)?,
        };
        let connections_max = env.number("CONNECTIONS_MAX", 1, 65_536)?;
        let state_path = env.get("STATE_PATH").map(PathBuf::from);
        if state_path.is_some() && ledger.url.is_none() {
            return Err(ConfigError::new(
                "STATE_PATH",
                "set without LEDGER_URL: a compute-only node queues nothing to keep",
            ));
        }
        Ok(NodeConfig {
            bind_addr,
            hot: hot_knobs(&env)?,
            req_body_max_bytes: env.number("REQ_BODY_MAX_BYTES", 1, usize::MAX)?,
            inputs_max_bytes: env.number("INPUTS_MAX_BYTES", 1, usize::MAX)?,
            decomp_ratio_max: env.number("DECOMP_RATIO_MAX", 1, 1_000_000)?,
            require_pq_on: env.bool("REQUIRE_PQ_ON")?,
            signing_key_file: env.get("SIGNING_KEY_FILE").map(PathBuf::from),
            signing_keys_retired: env
                .get("SIGNING_KEYS_RETIRED")
                .map(|v| {
                    crate::keys::parse_public_keys(&v)
                        .map_err(|e| ConfigError::new("SIGNING_KEYS_RETIRED", e))
                })
                .transpose()?
                .unwrap_or_default(),
            auth_keys,
            tls,
            amnesia_dir: env.get("AMNESIA_DIR").map(PathBuf::from),
            amnesia_allow_disk: env.bool("AMNESIA_ALLOW_DISK")?,
            runs_max: env.number("RUNS_MAX", 1, usize::MAX)?,
            runs_max_bytes: env.number("RUNS_MAX_BYTES", 1, usize::MAX)?,
            documents_max_bytes: env.number("DOCUMENTS_MAX_BYTES", 1, usize::MAX)?,
            tenant_store_max_bytes: env.optional_number("TENANT_STORE_MAX_BYTES", 1, usize::MAX)?,
            tenant_runs_max: env.optional_number("TENANT_RUNS_MAX", 1, usize::MAX)?,
            connections_max,
            // Described in the table: three quarters of CONNECTIONS_MAX, at least one.
            connections_per_source_max: env.number_or(
                "CONNECTIONS_PER_SOURCE_MAX",
                (connections_max * 3 / 4).max(1),
                1,
                65_536,
            )?,
            idle_timeout_ms: env.number("IDLE_TIMEOUT_MS", 1, 3_600_000)?,
            idle_timeout_crowded_ms: env.number("IDLE_TIMEOUT_CROWDED_MS", 1, 3_600_000)?,
            log_format,
            log,
            allow_insecure_bind,
            ledger,
            compute_workers: env.optional_number("CONCURRENCY_COMPUTE_WORKERS", 1, COMPUTE_WORKERS_MAX)?,
            hot_knobs_file: env.get("HOT_KNOBS_FILE").map(PathBuf::from),
            state_path,
            trace_sample_ppm: trace_sample(&env)?,
        })
    }
}

/// Re-reads the hot knobs ([`HOT_KNOB_VARS`]) from the process environment: the
/// [`Reload`](rewarder_core::service::Reload) of every node.
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvReload;

impl rewarder_core::service::Reload for EnvReload {
    /// Also applies `TRACE_SAMPLE` when every value is good.
    fn hot_knobs(&self) -> Result<HotKnobs, String> {
        let lookup = |name: &str| std::env::var(name).ok();
        let env = Env(&lookup);
        let (knobs, sample) = (hot_knobs(&env), trace_sample(&env));
        let (knobs, sample) = (knobs.map_err(|e| e.to_string())?, sample.map_err(|e| e.to_string())?);
        crate::trace::set_sample_ppm(sample);
        Ok(knobs)
    }
}

/// Re-reads the hot knobs from `HOT_KNOBS_FILE` over the process environment: the
/// [`Reload`](rewarder_core::service::Reload) of a node started with that knob.
///
/// Why a file: a running process's environment never changes, so re-reading it only ever
/// finds the start values. A file can change — in Kubernetes, a ConfigMap mounted as a volume
/// is updated in place — and SIGHUP or `POST /rewarder/admin/reload` then applies it.
///
/// The file holds `KEY=VALUE` lines for [`HOT_KNOB_VARS`] only (blank lines and `#` comments
/// allowed, values optionally in double quotes); a knob it does not set keeps its environment
/// value (or default). Any other key, a repeated key, a malformed line, an unreadable file or
/// one over [`HOT_KNOBS_FILE_BYTES_MAX`] refuses the whole reload, so the old knobs stay: the
/// other knobs need a restart, and silently ignoring a line would hide a typo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReload {
    path: PathBuf,
}

impl FileReload {
    /// A reload source reading `path` (not read until [`FileReload::read`]).
    pub fn new(path: impl Into<PathBuf>) -> FileReload {
        FileReload { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The hot knobs the file and the environment give now.
    pub fn read(&self) -> Result<HotKnobs, ConfigError> {
        self.read_with_trace_sample().map(|(knobs, _)| knobs)
    }

    /// The hot knobs and `TRACE_SAMPLE` (millionths) the file and the environment give now.
    pub fn read_with_trace_sample(&self) -> Result<(HotKnobs, u32), ConfigError> {
        let bad =
            |reason: String| ConfigError::new("HOT_KNOBS_FILE", format!("{}: {reason}", self.path.display()));
        let text = read_bounded(&self.path, HOT_KNOBS_FILE_BYTES_MAX).map_err(|e| bad(e.to_string()))?;
        let file = parse_knobs_file(&text).map_err(bad)?;
        let lookup = |name: &str| {
            file.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).or_else(|| std::env::var(name).ok())
        };
        let env = Env(&lookup);
        Ok((hot_knobs(&env)?, trace_sample(&env)?))
    }
}

impl rewarder_core::service::Reload for FileReload {
    /// Also applies `TRACE_SAMPLE` when every value is good.
    fn hot_knobs(&self) -> Result<HotKnobs, String> {
        let (knobs, sample) = self.read_with_trace_sample().map_err(|e| e.to_string())?;
        crate::trace::set_sample_ppm(sample);
        Ok(knobs)
    }
}

/// Reads a whole file of at most `max` bytes.
fn read_bounded(path: &std::path::Path, max: u64) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)?.take(max + 1).read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("larger than {max} bytes")));
    }
    Ok(text)
}

/// The `KEY=VALUE` pairs of a hot-knobs file (see [`FileReload`]).
fn parse_knobs_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i + 1;
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {n} is not KEY=VALUE"));
        };
        let key = key.trim();
        if !HOT_KNOB_VARS.contains(&key) {
            return Err(format!(
                "line {n}: {key:?} is not a hot knob (only {} reload; others need a restart)",
                HOT_KNOB_VARS.join(", ")
            ));
        }
        if pairs.iter().any(|(k, _)| k == key) {
            return Err(format!("line {n}: {key} is set twice"));
        }
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        pairs.push((key.to_owned(), value.to_owned()));
    }
    Ok(pairs)
}

fn hot_knobs(env: &Env<'_>) -> Result<HotKnobs, ConfigError> {
    Ok(HotKnobs {
        tenant_rps_max: env.number("TENANT_RPS_MAX", 1, u32::MAX)?,
        max_inflight: env.number("MAX_INFLIGHT", 1, u32::MAX)?,
        work_queue_max: env.number("WORK_QUEUE_MAX", 1, u32::MAX)?,
        ledger_quarantine_only: env.bool("LEDGER_QUARANTINE_ONLY")?,
    })
}

/// `TRACE_SAMPLE`: a fraction of requests from 0 to 1 (`0`, `0.25`, `1`), in millionths.
fn trace_sample(env: &Env<'_>) -> Result<u32, ConfigError> {
    let raw = env.required("TRACE_SAMPLE")?;
    let bad =
        || ConfigError::new("TRACE_SAMPLE", format!("{raw:?}: expected a fraction from 0 to 1, e.g. 0.05"));
    let text = raw.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    let share: f64 = text.parse().map_err(|_| bad())?;
    if !(0.0..=1.0).contains(&share) {
        return Err(bad());
    }
    Ok((share * f64::from(crate::trace::TRACE_SAMPLE_ONE_PPM)).round() as u32)
}

/// A variable lookup where empty means unset, and unset means the default of the knob table
/// ([`knobs::KNOBS`]) when it has one.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// The value set, else the table's default value, else `None`.
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.is_empty()).or_else(|| knobs::default_value(name).map(str::to_owned))
    }

    /// The value set or the table's default; a knob the table gives no default value is a
    /// defect of this module (every test's `config(&[])` would fail), reported, not a panic.
    fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.get(var).ok_or_else(|| ConfigError::new(var, "has no default value in the knob table"))
    }

    /// A whole number in `min..=max`, defaulting to the table's value.
    fn number<T>(&self, var: &'static str, min: T, max: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let raw = self.required(var)?;
        parse_number(var, &raw, min, max)
    }

    /// Like [`Env::number`] for a knob whose default the table describes (it depends on another
    /// knob): `derived` when unset.
    fn number_or<T>(&self, var: &'static str, derived: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        self.get(var).map_or(Ok(derived), |raw| parse_number(var, &raw, min, max))
    }

    /// Like [`Env::number`] for a knob without a default: `None` when unset.
    fn optional_number<T>(&self, var: &'static str, min: T, max: T) -> Result<Option<T>, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        self.get(var).map(|raw| parse_number(var, &raw, min, max)).transpose()
    }

    fn bool(&self, var: &'static str) -> Result<bool, ConfigError> {
        match self.required(var)?.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            other => Err(ConfigError::new(var, format!("{other:?}: expected true or false"))),
        }
    }
}

fn parse_number<T>(var: &'static str, raw: &str, min: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let value: T =
        raw.trim().parse().map_err(|_| ConfigError::new(var, format!("{raw:?} is not a whole number")))?;
    if value < min || value > max {
        return Err(ConfigError::new(var, format!("{value} is out of range {min}..={max}")));
    }
    Ok(value)
}

fn parse_bind_addr(raw: &str) -> Result<SocketAddr, ConfigError> {
    let raw = raw.trim();
    let localhost = raw.strip_prefix("localhost:").map(|port| format!("127.0.0.1:{port}"));
    localhost
        .as_deref()
        .unwrap_or(raw)
        .parse()
        .map_err(|_| ConfigError::new("BIND_ADDR", format!("{raw:?}: expected IP:PORT, e.g. 127.0.0.1:8080")))
}

/// Parses `AUTH_KEYS` (`kid:hexkey,kid2:hexkey2`): kids are 1–64 chars of `[A-Za-z0-9._-]`,
/// unique; keys are hex of at least [`AUTH_KEY_BYTES_MIN`] bytes.
pub fn parse_auth_keys(raw: &str) -> Result<Vec<(String, Vec<u8>)>, ConfigError> {
    let bad = |reason: String| ConfigError::new("AUTH_KEYS", reason);
    let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, entry) in raw.split(',').map(str::trim).enumerate() {
        let Some((kid, hex_key)) = entry.split_once(':') else {
            return Err(bad(format!("entry {i} is not kid:hexkey")));
        };
        let kid_ok = (1..=64).contains(&kid.len())
            && kid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !kid_ok {
            return Err(bad(format!("entry {i}: kid {kid:?} is not 1-64 chars of [A-Za-z0-9._-]")));
        }
        let key = hex::decode(hex_key).map_err(|_| bad(format!("entry {i} (kid {kid}): key is not hex")))?;
        if key.len() < AUTH_KEY_BYTES_MIN {
            return Err(bad(format!(
                "entry {i} (kid {kid}): key has {} bytes, at least {AUTH_KEY_BYTES_MIN} are required",
                key.len()
            )));
        }
        if keys.iter().any(|(k, _)| k == kid) {
            return Err(bad(format!("kid {kid} is listed twice")));
        }
        keys.push((kid.to_owned(), key));
    }
    Ok(keys)
}

fn parse_url(raw: &str) -> Result<String, ConfigError> {
    let rest = raw.strip_prefix("https://").or_else(|| raw.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') && !raw.contains(char::is_whitespace) => {
            Ok(raw.trim_end_matches('/').to_owned())
        }
        _ => Err(ConfigError::new(
            "LEDGER_URL",
            format!("{raw:?}: expected http://HOST[:PORT][/PATH] or https://…"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<NodeConfig, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        NodeConfig::from_lookup(|name| map.get(name).cloned())
    }

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn defaults_match_api_md() {
        let c = config(&[]).unwrap();
        assert_eq!(c.bind_addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.hot, HotKnobs::default());
        assert_eq!(
            (c.req_body_max_bytes, c.inputs_max_bytes, c.decomp_ratio_max),
            (1_048_576, 67_108_864, 10)
        );
        assert_eq!((c.runs_max, c.log_format, c.log.as_str()), (1024, LogFormat::Text, "info"));
        assert!(c.auth_keys.is_none() && c.tls.is_none() && !c.require_pq_on);
        assert_eq!(c.ledger.max_retries, 2);
        assert_eq!(c.ledger.url, None);
        assert_eq!(
            (c.ledger.deadline_ms, c.ledger.batch_max, c.ledger.p95_budget_ms, c.ledger.window_s),
            (1000, 1000, 100, 600)
        );
        assert_eq!((c.ledger.quarantine_max, c.ledger.ca_file.as_deref()), (100_000, None));
        assert_eq!((c.ledger.stop_drain_s, c.state_path.as_deref()), (30, None));
        assert!(!c.hot.ledger_quarantine_only);
        assert_eq!((c.tenant_store_max_bytes, c.tenant_runs_max), (None, None));
    }

    #[test]
    fn tenant_quotas_are_read_when_set_and_refused_at_zero() {
        let c = config(&[("TENANT_STORE_MAX_BYTES", "1048576"), ("TENANT_RUNS_MAX", "8")]).unwrap();
        assert_eq!((c.tenant_store_max_bytes, c.tenant_runs_max), (Some(1 << 20), Some(8)));
        for var in ["TENANT_STORE_MAX_BYTES", "TENANT_RUNS_MAX"] {
            for bad in ["0", "-1", "many"] {
                assert_eq!(config(&[(var, bad)]).unwrap_err().var, var, "{var}={bad}");
            }
        }
    }

    #[test]
    fn state_path_needs_a_ledger_and_the_quarantine_switch_is_a_hot_bool() {
        assert_eq!(config(&[("STATE_PATH", "/var/lib/rewarder/queue.db")]).unwrap_err().var, "STATE_PATH");
        let c = config(&[
            ("STATE_PATH", "/v/q.db"),
            ("LEDGER_URL", "http://ledger"),
            ("LEDGER_STOP_DRAIN_S", "0"),
        ])
        .unwrap();
        assert_eq!((c.state_path, c.ledger.stop_drain_s), (Some(PathBuf::from("/v/q.db")), 0));
        assert!(config(&[("LEDGER_QUARANTINE_ONLY", "on")]).unwrap().hot.ledger_quarantine_only);
        assert_eq!(config(&[("LEDGER_QUARANTINE_ONLY", "maybe")]).unwrap_err().var, "LEDGER_QUARANTINE_ONLY");
        assert_eq!(config(&[("LEDGER_STOP_DRAIN_S", "86401")]).unwrap_err().var, "LEDGER_STOP_DRAIN_S");
        let pairs = parse_knobs_file("LEDGER_QUARANTINE_ONLY=true\n").unwrap();
        assert_eq!(pairs, vec![("LEDGER_QUARANTINE_ONLY".to_owned(), "true".to_owned())]);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("MAX_INFLIGHT", "lots"),
            ("MAX_INFLIGHT", "0"),
            ("TENANT_RPS_MAX", "-1"),
            ("DECOMP_RATIO_MAX", "1.5"),
            ("BIND_ADDR", "nowhere"),
            ("REQUIRE_PQ_ON", "maybe"),
            ("LOG_FORMAT", "xml"),
            ("LOG", "info,,=="),
            ("LEDGER_URL", "ftp://x"),
            ("LEDGER_BATCH_MAX", "0"),
            ("LEDGER_QUARANTINE_MAX", "0"),
            ("LEDGER_WINDOW_S", "x"),
            ("AUTH_KEYS", "k1"),
            ("TLS_CERT_FILE", "/x.pem"),
        ] {
            let e = config(&[(var, value)]).unwrap_err();
            let expected = if var == "TLS_CERT_FILE" { "TLS_KEY_FILE" } else { var };
            assert_eq!(e.var, expected, "{var}={value}: {e}");
        }
    }

    #[test]
    fn non_loopback_bind_needs_auth_or_explicit_insecure() {
        assert_eq!(config(&[("BIND_ADDR", "0.0.0.0:80")]).unwrap_err().var, "BIND_ADDR");
        let auth = format!("k1:{KEY}");
        assert!(config(&[("BIND_ADDR", "0.0.0.0:80"), ("AUTH_KEYS", &auth)]).is_ok());
        assert!(config(&[("BIND_ADDR", "0.0.0.0:80"), ("ALLOW_INSECURE_BIND", "true")]).is_ok());
        assert!(config(&[("BIND_ADDR", "[::1]:0")]).is_ok());
        assert!(config(&[("BIND_ADDR", "localhost:0")]).is_ok());
    }

    #[test]
    fn auth_keys_parse_and_refuse_short_duplicate_or_bad_kids() {
        let keys = parse_auth_keys(&format!("k1:{KEY}, k2:{KEY}")).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].0, "k2");
        assert_eq!(keys[0].1.len(), 32);
        assert!(parse_auth_keys("k1:00ff").is_err());
        assert!(parse_auth_keys(&format!("k1:{KEY},k1:{KEY}")).is_err());
        assert!(parse_auth_keys(&format!("k 1:{KEY}")).is_err());
        assert!(parse_auth_keys(&format!("k1:{KEY}zz")).is_err());
    }

    #[test]
    fn compute_workers_and_the_hot_knobs_file_are_read() {
        let c = config(&[]).unwrap();
        assert_eq!((c.compute_workers, c.hot_knobs_file), (None, None));
        let c = config(&[("CONCURRENCY_COMPUTE_WORKERS", "3"), ("HOT_KNOBS_FILE", "/etc/hot.env")]).unwrap();
        assert_eq!(c.compute_workers, Some(3));
        assert_eq!(c.hot_knobs_file, Some(PathBuf::from("/etc/hot.env")));
        for bad in ["0", "x", "1025"] {
            let e = config(&[("CONCURRENCY_COMPUTE_WORKERS", bad)]).unwrap_err();
            assert_eq!(e.var, "CONCURRENCY_COMPUTE_WORKERS", "{bad}");
        }
    }

    #[test]
    fn a_hot_knobs_file_holds_only_hot_knobs_once_each() {
        let pairs = parse_knobs_file("# knobs\n\nTENANT_RPS_MAX=7\n WORK_QUEUE_MAX = \"9\" \n").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("TENANT_RPS_MAX".to_owned(), "7".to_owned()),
                ("WORK_QUEUE_MAX".to_owned(), "9".to_owned())
            ]
        );
        assert!(parse_knobs_file("LEDGER_URL=http://x").unwrap_err().contains("not a hot knob"));
        assert!(parse_knobs_file("MAX_INFLIGHT=1\nMAX_INFLIGHT=2").unwrap_err().contains("twice"));
        assert!(parse_knobs_file("MAX_INFLIGHT").unwrap_err().contains("KEY=VALUE"));
    }

    #[test]
    fn file_reload_reads_the_file_and_refuses_bad_values() {
        let dir = std::env::temp_dir().join(format!("hot-knobs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hot.env");
        let reload = FileReload::new(&path);
        assert_eq!(reload.read().unwrap_err().var, "HOT_KNOBS_FILE", "a missing file is refused");
        std::fs::write(&path, "TENANT_RPS_MAX=7\nWORK_QUEUE_MAX=3\n").unwrap();
        let knobs = reload.read().unwrap();
        assert_eq!((knobs.tenant_rps_max, knobs.work_queue_max), (7, 3));
        std::fs::write(&path, "TENANT_RPS_MAX=0\n").unwrap();
        assert_eq!(reload.read().unwrap_err().var, "TENANT_RPS_MAX");
        std::fs::write(&path, vec![b'#'; HOT_KNOBS_FILE_BYTES_MAX as usize + 1]).unwrap();
        assert!(reload.read().unwrap_err().reason.contains("larger than"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn trace_sample_is_a_fraction_in_millionths() {
        assert_eq!(config(&[]).unwrap().trace_sample_ppm, crate::trace::TRACE_SAMPLE_DEFAULT_PPM);
        for (raw, ppm) in
            [("0", 0), ("1", 1_000_000), ("0.25", 250_000), (" .5 ", 500_000), ("1.0", 1_000_000)]
        {
            assert_eq!(config(&[("TRACE_SAMPLE", raw)]).unwrap().trace_sample_ppm, ppm, "{raw}");
        }
        for bad in ["-0.1", "1.5", "x", "1e-3", "NaN", "inf", "."] {
            assert_eq!(config(&[("TRACE_SAMPLE", bad)]).unwrap_err().var, "TRACE_SAMPLE", "{bad}");
        }
        assert!(parse_knobs_file("TRACE_SAMPLE=0.5").is_ok(), "TRACE_SAMPLE is hot");
    }

    #[test]
    fn empty_means_unset() {
        let c = config(&[("AUTH_KEYS", ""), ("MAX_INFLIGHT", "")]).unwrap();
        assert!(c.auth_keys.is_none());
        assert_eq!(c.hot.max_inflight, 512);
    }
}
