//! The micronode process: signals first, then logging, keys, the amnesia directory, the
//! service (with the ledger client when `LEDGER_URL` is set), the server on one request
//! thread and the ledger drain thread; SIGHUP reloads the hot knobs; SIGTERM or SIGINT stops
//! accepting, finishes what is in flight, stops the drain thread, removes the amnesia
//! directory, and returns (exit 0).
//!
//! The quarantine queue lives in memory only (amnesia): intents still queued at exit are
//! dropped, and logged as such. That is safe by construction: a client that did not see its
//! run `emitted` re-sends the compute, the node recomputes the same run (same run id, same
//! amounts), and the ledger's idempotency keys answer `dup` for whatever was already paid.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rewarder_core::service::{Config, EgressConfig, Profile, Service};
use rewarder_core::{Limits, SigningKeys};

use crate::amnesia::AmnesiaDir;
use crate::clock::SystemClock;
use crate::config::{EnvReload, LedgerConfig, LogFormat, NodeConfig};
use crate::ledger::{DrainThread, HttpLedger, SystemPacer};
use crate::server::{GateLimits, RunningServer, Server, ServerOptions};
use crate::{keys, tls};

/// Why the node could not start or stopped abnormally, mapped to an exit code by the binary.
#[derive(Debug)]
pub enum NodeError {
    /// A knob, key file or certificate is unusable (exit 2).
    Config(String),
    /// The node failed while starting or running (exit 1).
    Runtime(String),
    /// The address to bind is taken (exit 1).
    AddrInUse(String),
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeError::Config(m) | NodeError::Runtime(m) | NodeError::AddrInUse(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for NodeError {}

/// The process signals the node reacts to, registered before anything is created so that an
/// early SIGTERM cannot kill the process with its amnesia directory in place.
pub struct Signals {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

impl Signals {
    /// Registers SIGTERM and SIGINT (stop) and SIGHUP (reload) as flags.
    pub fn register() -> Result<Signals, NodeError> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let stop = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        let register = |signal, flag: &Arc<AtomicBool>| {
            signal_hook::flag::register(signal, Arc::clone(flag))
                .map(drop)
                .map_err(|e| NodeError::Runtime(format!("cannot handle signal {signal}: {e}")))
        };
        register(SIGTERM, &stop)?;
        register(SIGINT, &stop)?;
        register(SIGHUP, &reload)?;
        Ok(Signals { stop, reload })
    }
}

/// Installs the `tracing` subscriber (stderr; `LOG_FORMAT`, `LOG`). Safe to call twice.
pub fn init_logging(config: &NodeConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

/// The signing keys: `SIGNING_KEY_FILE`, or fresh ones for this process.
pub fn signing_keys(config: &NodeConfig) -> Result<SigningKeys, NodeError> {
    match &config.signing_key_file {
        Some(path) => keys::from_file(path, config.require_pq_on)
            .map_err(|e| NodeError::Config(format!("SIGNING_KEY_FILE: {e}"))),
        None => keys::fresh(config.require_pq_on)
            .map_err(|e| NodeError::Runtime(format!("no randomness for signing keys: {e}"))),
    }
}

/// The core's egress knobs from `LEDGER_*`.
pub fn egress_config(ledger: &LedgerConfig) -> EgressConfig {
    EgressConfig {
        quarantine_max: ledger.quarantine_max,
        ..EgressConfig::new(
            ledger.max_retries,
            ledger.batch_max,
            Duration::from_millis(ledger.p95_budget_ms),
            Duration::from_secs(ledger.window_s),
        )
    }
}

/// Batches the drain thread re-sends per call at most.
const DRAIN_BATCHES_PER_CALL: usize = 4;

/// A running micronode.
pub struct Node {
    server: RunningServer,
    service: Arc<Service>,
    amnesia: Arc<AmnesiaDir>,
    drain: Option<DrainThread>,
    url: String,
}

impl Node {
    /// Starts a node from `config`, bound to `bind` (usually `config.bind_addr`).
    pub fn start(config: &NodeConfig, bind: SocketAddr) -> Result<Node, NodeError> {
        let keys = signing_keys(config)?;
        let tls = match &config.tls {
            Some(files) => Some(tls::server_config(&files.cert, &files.key).map_err(NodeError::Config)?),
            None => None,
        };
        tracing::info!(
            ed25519 = keys.ed25519_public_hex(),
            ml_dsa_65 = keys.ml_dsa_65_public_hex().unwrap_or("-"),
            source = if config.signing_key_file.is_some() { "SIGNING_KEY_FILE" } else { "fresh" },
            "signing keys"
        );
        let amnesia = AmnesiaDir::create(config.amnesia_dir.as_deref(), config.documents_max_bytes as u64)
            .map_err(|e| NodeError::Config(format!("AMNESIA_DIR: {e}")))?;
        let amnesia = Arc::new(amnesia);
        tracing::info!(dir = %amnesia.path().display(), "amnesia directory");
        let mut features = vec!["gzip"];
        if tls.is_some() {
            features.push("tls");
        }
        let service_config = Config {
            profile: Profile::Micronode,
            auth_keys: config.auth_keys.clone(),
            limits: Limits::UNBOUNDED,
            req_body_max_bytes: config.req_body_max_bytes,
            inputs_max_bytes: config.inputs_max_bytes,
            runs_max: config.runs_max,
            documents_max_bytes: config.documents_max_bytes,
            keys,
            hot: config.hot,
            features,
        };
        let mut service = Service::new(
            service_config,
            Arc::new(SystemClock::new()),
            Arc::clone(&amnesia) as _,
            Arc::new(EnvReload),
        );
        if let Some(ledger_url) = &config.ledger.url {
            let deadline = Duration::from_millis(config.ledger.deadline_ms);
            let client = HttpLedger::new(ledger_url, deadline, config.ledger.ca_file.as_deref())
                .map_err(|e| NodeError::Config(format!("LEDGER_CA_FILE: {e}")))?;
            service =
                service.with_ledger(Arc::new(client), Arc::new(SystemPacer), egress_config(&config.ledger));
            tracing::info!(
                url = ledger_url,
                deadline_ms = config.ledger.deadline_ms,
                max_retries = config.ledger.max_retries,
                batch_max = config.ledger.batch_max,
                "ledger egress on"
            );
        } else {
            tracing::info!("no LEDGER_URL: compute-only node, every run is a dry run");
        }
        let service = Arc::new(service);
        let options = ServerOptions {
            workers: 1,
            decomp_ratio_max: config.decomp_ratio_max,
            limits: GateLimits { connections_max: config.connections_max, ..GateLimits::default() },
            tls: tls.clone(),
            ..ServerOptions::default()
        };
        let server = Server::bind(bind, Arc::clone(&service), options).map_err(|e| {
            let message = format!("cannot bind {bind}: {e}");
            if e.kind() == std::io::ErrorKind::AddrInUse {
                NodeError::AddrInUse(message)
            } else {
                NodeError::Runtime(message)
            }
        })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", server.local_addr());
        let server =
            server.spawn().map_err(|e| NodeError::Runtime(format!("cannot start the server thread: {e}")))?;
        let drain = if service.has_ledger() {
            let budget = config.ledger.batch_max.saturating_mul(DRAIN_BATCHES_PER_CALL);
            let thread = DrainThread::spawn(Arc::clone(&service), budget)
                .map_err(|e| NodeError::Runtime(format!("cannot start the ledger drain thread: {e}")))?;
            Some(thread)
        } else {
            None
        };
        // A plain line, whatever LOG_FORMAT says: scripts and tests read the port from it.
        eprintln!("listening on {url}");
        tracing::info!(url, auth = config.auth_keys.is_some(), pq = config.require_pq_on, "micronode ready");
        Ok(Node { server, service, amnesia, drain, url })
    }

    /// `http://IP:PORT` (or `https://`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The service the node serves.
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    /// Serves until SIGTERM or SIGINT, reloading on SIGHUP; then stops, drains, and removes
    /// the amnesia directory.
    pub fn run_until_signalled(mut self, signals: &Signals) -> Result<(), NodeError> {
        while !signals.stop.load(Ordering::Acquire) {
            if signals.reload.swap(false, Ordering::AcqRel) {
                match self.service.reload_now() {
                    Ok(knobs) => tracing::info!(?knobs, "hot knobs reloaded"),
                    Err(e) => tracing::error!(error = %e, "reload refused; the old knobs stay"),
                }
            }
            if self.server.handle().is_stopped() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::info!("stopping: finishing requests in flight");
        self.server.stop();
        self.shutdown()
    }

    /// Stops serving, stops the ledger drain thread, and removes the amnesia directory.
    pub fn shutdown(mut self) -> Result<(), NodeError> {
        self.server.stop();
        if let Some(mut drain) = self.drain.take() {
            drain.stop();
            let left = self.service.quarantine_depth();
            if left > 0 {
                tracing::warn!(
                    intents = left,
                    "quarantined intents dropped at exit (amnesia): clients re-send their computes; \
                     the ledger's keys dedupe"
                );
            }
        }
        let removed = self.amnesia.remove();
        drop(self.server);
        drop(self.service);
        match removed {
            Ok(()) => {
                tracing::info!("stopped; amnesia directory removed");
                Ok(())
            }
            Err(e) => {
                Err(NodeError::Runtime(format!("cannot remove {}: {e}", self.amnesia.path().display())))
            }
        }
    }
}

/// `serve`: the configuration from the environment, then serve until a signal.
pub fn serve() -> Result<(), NodeError> {
    let signals = Signals::register()?;
    let config = NodeConfig::from_env().map_err(|e| NodeError::Config(e.to_string()))?;
    init_logging(&config);
    let node = Node::start(&config, config.bind_addr)?;
    node.run_until_signalled(&signals)
}
