//! `rewarder-testkit ledger-sim`: runs the simulated ledger (see `rewarder_testkit::ledger_sim`)
//! until SIGTERM or SIGINT, then exits 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rewarder_testkit::ledger_sim::{self, Config, Garbage, parse_down, parse_latency, parse_rate};

use super::Error;

/// Arguments of `ledger-sim`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free one (the real address is printed to stderr).
    #[arg(long, value_name = "ADDR")]
    pub bind: SocketAddr,

    /// Latency added to every call but /v1/stats, uniform in MIN..MAX milliseconds.
    #[arg(long, value_name = "MIN..MAX", value_parser = parse_latency)]
    pub latency_ms: Option<(u64, u64)>,

    /// Probability of answering 503 without applying anything.
    #[arg(long, value_name = "P", default_value = "0", value_parser = parse_rate)]
    pub fail_rate: f64,

    /// Probability of answering 503 after applying a state change (a lost acknowledgement).
    #[arg(long, value_name = "P", default_value = "0", value_parser = parse_rate)]
    pub lost_ack_rate: f64,

    /// Window in seconds after start during which every call but /v1/stats has its
    /// connection closed without an answer.
    #[arg(long, value_name = "FROM_S..TO_S", value_parser = parse_down)]
    pub down: Option<(Duration, Duration)>,

    /// Append-only JSON-lines journal of state changes, replayed at start.
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,

    /// Answer POST /v1/intents with garbage (and apply nothing).
    #[arg(long, value_name = "MODE", value_enum)]
    pub garbage: Option<Garbage>,

    /// Seed of the latency and failure draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Allow binding an address other than loopback (the simulator has no authentication).
    #[arg(long)]
    pub allow_non_loopback: bool,
}

/// Starts the simulator, prints where it listens, and serves until SIGTERM or SIGINT.
pub fn run(args: &Args) -> Result<(), Error> {
    if !args.bind.ip().is_loopback() && !args.allow_non_loopback {
        return Err(Error(format!(
            "refusing to bind {}: not a loopback address (the simulator has no authentication; \
             pass --allow-non-loopback to insist)",
            args.bind
        )));
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Error(format!("cannot install the signal handler: {e}")))?;
    }
    let sim = ledger_sim::start(Config {
        bind: args.bind,
        latency_ms: args.latency_ms,
        fail_rate: args.fail_rate,
        lost_ack_rate: args.lost_ack_rate,
        down: args.down,
        journal: args.journal.clone(),
        garbage: args.garbage,
        seed: args.seed,
    })
    .map_err(|e| Error(e.0))?;
    eprintln!("ledger-sim listening on {}", sim.url());
    if let Some(path) = &args.journal {
        let replay = sim.replay();
        let stats = sim.stats();
        eprintln!(
            "ledger-sim journal {}: replayed {} records ({} epochs, {} keys){}",
            path.display(),
            replay.records,
            stats["epochs"].as_array().map_or(0, Vec::len),
            stats["keys"],
            if replay.torn_bytes > 0 {
                format!("; ignored a torn last line of {} bytes", replay.torn_bytes)
            } else {
                String::new()
            },
        );
    }
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let requests = sim.stats()["requests"].clone();
    sim.shutdown();
    eprintln!("ledger-sim stopped after {requests} requests");
    Ok(())
}
