//! The node process, micronode or macronode: signals first, then logging, keys, where
//! artifacts go (the micronode's amnesia directory, or memory only), the service (with the
//! ledger client when `LEDGER_URL` is set, and the durable queue its binary brings), the server
//! on its request thread(s) and the ledger drain thread; SIGHUP or SIGUSR1 reloads the hot
//! knobs; SIGTERM or SIGINT stops accepting, finishes what is in flight, keeps draining the
//! quarantine queue for at most `LEDGER_STOP_DRAIN_S`, logs what is left, stops the drain
//! thread, removes the amnesia directory, and returns (exit 0).
//!
//! The three profiles differ only by a [`Flavor`]: the profile `/version` reports, how many
//! request threads serve (one, or the macronode's pool), where artifacts go (an amnesia
//! directory, or memory only), and whether the node speaks to its process (the embedded node
//! of an app prints nothing and reports no process metrics). Everything else — configuration,
//! keys, ledger, the transport and its admission control — is this one assembly,
//! [`Node::start_flavor`].
//!
//! Without a durable queue (the micronode always; the macronode without `STATE_PATH`),
//! intents still queued at exit are dropped, and logged as such. That is safe by construction:
//! a client that did not see its run `emitted` re-sends the compute, a node recomputes the same
//! run (same run id, same amounts), and the ledger's idempotency keys answer `dup` for whatever
//! was already paid. With one, they stay in the store and the next start drains them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rewarder_core::service::{Artifacts, Config, EgressConfig, Kept, Profile, QueueStore, Reload, Service};
use rewarder_core::{Limits, SigningKeys};

use crate::amnesia::AmnesiaDir;
use crate::clock::SystemClock;
use crate::config::{EnvReload, FileReload, LedgerConfig, LogFormat, NodeConfig};
use crate::http::{RunningServer, Server, ServerOptions, TransportLimits};
use crate::ledger::{DrainThread, HttpLedger, SystemPacer};
use crate::overlap::SideThread;
use crate::process::ProcSelf;
use crate::{keys, tls};

/// Why the node could not start or stopped abnormally, mapped to an exit code by the binary.
#[non_exhaustive]
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
    /// Registers SIGTERM and SIGINT (stop) and SIGHUP and SIGUSR1 (reload) as flags. SIGUSR1
    /// is the runbook's name for a reload; both do the same.
    pub fn register() -> Result<Signals, NodeError> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
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
        register(SIGUSR1, &reload)?;
        Ok(Signals { stop, reload })
    }
}

/// Installs the `tracing` subscriber (stderr; `LOG_FORMAT`, `LOG`). Safe to call twice.
///
/// A span is logged when it closes, with its duration (`time.busy`, `time.idle`): the traced
/// requests of [`crate::trace`]. As JSON, each line also lists the spans it sits in.
pub fn init_logging(config: &NodeConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

/// The signing keys: `SIGNING_KEY_FILE`, or fresh ones for this process; with the retired
/// keys of `SIGNING_KEYS_RETIRED` listed beside them.
pub fn signing_keys(config: &NodeConfig) -> Result<SigningKeys, NodeError> {
    let keys = match &config.signing_key_file {
        Some(path) => keys::from_file(path, config.require_pq_on)
            .map_err(|e| NodeError::Config(format!("SIGNING_KEY_FILE: {e}")))?,
        None => keys::fresh(config.require_pq_on)
            .map_err(|e| NodeError::Runtime(format!("no randomness for signing keys: {e}")))?,
    };
    keys::with_retired(keys, &config.signing_keys_retired)
        .map_err(|e| NodeError::Config(format!("SIGNING_KEYS_RETIRED: {e}")))
}

/// The core's egress knobs from `LEDGER_*`.
pub fn egress_config(ledger: &LedgerConfig) -> EgressConfig {
    EgressConfig::new(
        ledger.max_retries,
        ledger.batch_max,
        Duration::from_millis(ledger.p95_budget_ms),
        Duration::from_secs(ledger.window_s),
        ledger.quarantine_max,
    )
}

/// The transport's bounds from the knobs (`CONNECTIONS_MAX`, `CONNECTIONS_PER_SOURCE_MAX`,
/// `IDLE_TIMEOUT_MS`, `IDLE_TIMEOUT_CROWDED_MS`); the rest are the server's defaults.
pub fn transport_limits(config: &NodeConfig) -> TransportLimits {
    TransportLimits {
        connections_max: config.connections_max,
        connections_per_source_max: config.connections_per_source_max,
        idle_timeout: Duration::from_millis(config.idle_timeout_ms),
        idle_timeout_crowded: Duration::from_millis(config.idle_timeout_crowded_ms),
        ..TransportLimits::default()
    }
}

/// The reload source of a node: `HOT_KNOBS_FILE` over the environment when set, else the
/// environment.
pub fn reload_source(config: &NodeConfig) -> Arc<dyn Reload> {
    match &config.hot_knobs_file {
        Some(path) => Arc::new(FileReload::new(path)),
        None => Arc::new(EnvReload),
    }
}

/// Batches the drain thread re-sends per call at most.
const DRAIN_BATCHES_PER_CALL: usize = 4;

/// How often a stopping node looks whether its queue is empty.
const STOP_DRAIN_POLL: Duration = Duration::from_millis(20);

/// What differs between the node profiles a process can run; everything else is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// One request thread; artifacts in the amnesia directory, removed on exit.
    Micronode,
    /// `workers` request threads sharing one bounded work queue; artifacts in memory only.
    Macronode {
        /// Request threads (`CONCURRENCY_COMPUTE_WORKERS`, resolved by the macronode).
        workers: usize,
    },
    /// An app's node ([`crate::embedded`]): one request thread; an amnesia directory where one
    /// can be made, else memory only; silent (no line on stderr, no process metrics).
    Embedded,
}

impl Flavor {
    /// The profile `/version`, `/readyz` and `build_info` report.
    pub fn profile(self) -> Profile {
        match self {
            Flavor::Micronode => Profile::Micronode,
            Flavor::Macronode { .. } => Profile::Macronode,
            Flavor::Embedded => Profile::Embedded,
        }
    }

    /// Request threads.
    pub fn workers(self) -> usize {
        match self {
            Flavor::Micronode | Flavor::Embedded => 1,
            Flavor::Macronode { workers } => workers.max(1),
        }
    }
}

/// Keeps artifacts in memory only, by design: the macronode writes no directory, and an
/// embedded node without one (an app sandbox without tmpfs) writes nothing either, which is
/// amnesia too. Nothing was meant to go elsewhere, so nothing spills: `amnesia_spill_total`
/// stays 0.
struct MemoryOnly;

impl Artifacts for MemoryOnly {
    fn keep(&self, _: &str, _: &[u8]) -> Kept {
        Kept::Held
    }
}

/// A running node.
pub struct Node {
    server: RunningServer,
    service: Arc<Service>,
    /// The micronode's amnesia directory; `None` for a macronode.
    amnesia: Option<Arc<AmnesiaDir>>,
    drain: Option<DrainThread>,
    url: String,
    /// `LEDGER_STOP_DRAIN_S`.
    stop_drain: Duration,
}

impl Node {
    /// Starts a micronode from `config`, bound to `bind` (usually `config.bind_addr`).
    pub fn start(config: &NodeConfig, bind: SocketAddr) -> Result<Node, NodeError> {
        Node::start_flavor(config, bind, Flavor::Micronode, None)
    }

    /// Starts a node of `flavor` from `config`, bound to `bind`, keeping its quarantine queue
    /// in `queue_store` when given (the macronode's `STATE_PATH`): the runs a previous process
    /// left there are taken back first, and drained once the node serves.
    pub fn start_flavor(
        config: &NodeConfig,
        bind: SocketAddr,
        flavor: Flavor,
        queue_store: Option<Arc<dyn QueueStore>>,
    ) -> Result<Node, NodeError> {
        if config.state_path.is_some() && queue_store.is_none() {
            return Err(NodeError::Config(
                "STATE_PATH: this node keeps no state (the micronode is amnesic); the macronode \
                 keeps its queue there"
                    .to_owned(),
            ));
        }
        let keys = signing_keys(config)?;
        let tls = match &config.tls {
            Some(files) => Some(tls::server_config(&files.cert, &files.key).map_err(NodeError::Config)?),
            None => None,
        };
        tracing::info!(
            ed25519 = keys.ed25519_public_hex(),
            ml_dsa_65 = keys.ml_dsa_65_public_hex().unwrap_or("-"),
            source = if config.signing_key_file.is_some() { "SIGNING_KEY_FILE" } else { "fresh" },
            retired = config.signing_keys_retired.len(),
            "signing keys (GET /rewarder/keys lists them)"
        );
        crate::trace::set_sample_ppm(config.trace_sample_ppm);
        let reload = reload_source(config);
        let hot = if config.hot_knobs_file.is_some() {
            reload.hot_knobs().map_err(NodeError::Config)?
        } else {
            config.hot
        };
        let (amnesia, artifacts): (_, Arc<dyn Artifacts>) = match flavor {
            Flavor::Micronode => {
                let (dir, swept) = AmnesiaDir::create(
                    config.amnesia_dir.as_deref(),
                    config.amnesia_allow_disk,
                    config.documents_max_bytes as u64,
                )
                .map_err(|e| NodeError::Config(format!("AMNESIA_DIR: {e}")))?;
                let dir = Arc::new(dir);
                if let Some(fs_type) = &swept.on_disk {
                    tracing::warn!(
                        fs_type,
                        "AMNESIA_ALLOW_DISK: tenant documents are written to a disk, not tmpfs"
                    );
                }
                for dead in &swept.removed {
                    tracing::info!(dir = %dead.display(), "swept the directory of a node that is gone");
                }
                tracing::info!(dir = %dir.path().display(), "amnesia directory");
                (Some(Arc::clone(&dir)), dir as _)
            }
            Flavor::Macronode { .. } => {
                if config.amnesia_dir.is_some() {
                    tracing::warn!("AMNESIA_DIR is ignored: the macronode keeps documents in memory only");
                }
                (None, Arc::new(MemoryOnly) as _)
            }
            Flavor::Embedded => {
                // A refused root (no tmpfs in an app's sandbox) means memory only, never an error.
                match AmnesiaDir::create(None, false, config.documents_max_bytes as u64) {
                    Ok((dir, _)) => {
                        let dir = Arc::new(dir);
                        (Some(Arc::clone(&dir)), dir as _)
                    }
                    Err(_) => (None, Arc::new(MemoryOnly) as _),
                }
            }
        };
        let mut features = vec!["gzip"];
        if tls.is_some() {
            features.push("tls");
        }
        let service_config = Config {
            profile: flavor.profile(),
            auth_keys: config.auth_keys.clone(),
            limits: Limits::UNBOUNDED,
            req_body_max_bytes: config.req_body_max_bytes,
            inputs_max_bytes: config.inputs_max_bytes,
            runs_max: config.runs_max,
            runs_max_bytes: config.runs_max_bytes,
            documents_max_bytes: config.documents_max_bytes,
            tenant_store_max_bytes: config.tenant_store_max_bytes,
            tenant_runs_max: config.tenant_runs_max,
            keys,
            hot,
            features,
        };
        let side = SideThread::start()
            .map_err(|e| NodeError::Runtime(format!("cannot start the side thread: {e}")))?;
        let mut service = Service::new(service_config, Arc::new(SystemClock::new()), artifacts, reload)
            .with_overlap(Arc::new(side));
        if flavor != Flavor::Embedded {
            // An app's node is no process of its own: no process metrics, no build of its own.
            service = service.with_process_probe(Arc::new(ProcSelf)).with_build(&crate::build::BUILD);
        }
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
        if let Some(store) = queue_store {
            service =
                service.with_queue_store(store).map_err(|e| NodeError::Config(format!("STATE_PATH: {e}")))?;
            tracing::info!(
                runs = service.quarantined_runs(),
                intents = service.quarantine_depth(),
                "durable queue: runs taken back from STATE_PATH are drained once the node serves"
            );
        }
        let service = Arc::new(service);
        let options = ServerOptions {
            workers: flavor.workers(),
            decomp_ratio_max: config.decomp_ratio_max,
            limits: transport_limits(config),
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
        if flavor != Flavor::Embedded {
            // A plain line, whatever LOG_FORMAT says: scripts and tests read the port from it.
            eprintln!("listening on {url}");
        }
        tracing::info!(
            url,
            profile = flavor.profile().as_str(),
            workers = flavor.workers(),
            ?hot,
            auth = config.auth_keys.is_some(),
            pq = config.require_pq_on,
            "node ready"
        );
        let stop_drain = Duration::from_secs(config.ledger.stop_drain_s);
        Ok(Node { server, service, amnesia, drain, url, stop_drain })
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

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// [`Node::stop`], then the node is gone.
    pub fn shutdown(mut self) -> Result<(), NodeError> {
        self.stop()
    }

    /// Stops serving, keeps draining the quarantine queue for at most `LEDGER_STOP_DRAIN_S`
    /// (what a `202` promised is best delivered before the process goes), stops the ledger
    /// drain thread, says what is left, and removes the amnesia directory. Idempotent: an
    /// embedded node is stopped by its app and again when dropped.
    pub fn stop(&mut self) -> Result<(), NodeError> {
        self.server.stop();
        if let Some(mut drain) = self.drain.take() {
            let until = Instant::now() + self.stop_drain;
            let (runs, intents) = (self.service.quarantined_runs(), self.service.quarantine_depth());
            if runs > 0 {
                tracing::info!(
                    runs,
                    intents,
                    limit_s = self.stop_drain.as_secs(),
                    "stopping: draining the queue"
                );
            }
            while self.service.quarantined_runs() > 0 && Instant::now() < until {
                std::thread::sleep(STOP_DRAIN_POLL.min(until.saturating_duration_since(Instant::now())));
            }
            drain.stop();
            let (runs, intents) = (self.service.quarantined_runs(), self.service.quarantine_depth());
            if runs == 0 {
                tracing::info!("queue empty at exit");
            } else if self.service.durable() {
                tracing::warn!(
                    runs,
                    intents,
                    "queue left in STATE_PATH at exit: the next start on this volume drains it; \
                     should the volume be lost, a recompute of each epoch settles it"
                );
            } else {
                tracing::warn!(
                    runs,
                    intents,
                    "quarantined intents dropped at exit (kept in memory only): clients re-send \
                     their computes; the ledger's keys dedupe"
                );
            }
        }
        let removed = self.amnesia.as_ref().map(|dir| (dir.remove(), dir.path().to_path_buf()));
        match removed {
            None => {
                tracing::info!("stopped");
                Ok(())
            }
            Some((Ok(()), _)) => {
                tracing::info!("stopped; amnesia directory removed");
                Ok(())
            }
            Some((Err(e), path)) => Err(NodeError::Runtime(format!("cannot remove {}: {e}", path.display()))),
        }
    }
}

/// `serve`: the configuration from the environment, then a micronode until a signal.
pub fn serve() -> Result<(), NodeError> {
    serve_as(|_| Ok((Flavor::Micronode, None)))
}

/// `serve` for any profile: signals, the configuration from the environment, logging, then
/// the node of the flavor `choose` picks from that configuration — with the durable queue it
/// opens, if any — until a signal.
pub fn serve_as(
    choose: impl FnOnce(&NodeConfig) -> Result<(Flavor, Option<Arc<dyn QueueStore>>), NodeError>,
) -> Result<(), NodeError> {
    let signals = Signals::register()?;
    let config = NodeConfig::from_env().map_err(|e| NodeError::Config(e.to_string()))?;
    init_logging(&config);
    let (flavor, queue_store) = choose(&config)?;
    let node = Node::start_flavor(&config, config.bind_addr, flavor, queue_store)?;
    node.run_until_signalled(&signals)
}
