//! `rewarder-macronode`: the macronode binary.
//!
//! Subcommands: `serve` (the default), `mint-token`, `healthcheck`.
//!
//! Exit codes: 0 success (for `serve`: stopped by SIGTERM/SIGINT after draining); 1 the node
//! failed at run time (e.g. its address is taken), or `healthcheck` found the node not ready; 2 usage or configuration error (bad flags,
//! a bad environment knob — the message names the variable — an unreadable file, a
//! `STATE_PATH` queue file that is newer, foreign or damaged: it is never reset).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rewarder_micronode::cli::{self, Failure, MintToken};
use rewarder_micronode::healthcheck::Healthcheck;

#[derive(Parser)]
#[command(
    name = "rewarder-macronode",
    version = rewarder_micronode::build::VERSION_LINE,
    about = "Deterministic reward computation on a worker pool"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (docs/spec/API.md) with the knobs of the environment (the default).
    Serve,
    /// Issue a capability token (HS256 JWT) with a key of AUTH_KEYS; print it on stdout.
    MintToken(MintToken),
    /// Probe this host's node: GET /readyz on BIND_ADDR's port (loopback for 0.0.0.0); exit 0
    /// when it answers 200, 1 otherwise. For a container's HEALTHCHECK.
    Healthcheck(Healthcheck),
}

/// What a successful command prints on stdout.
fn run(cli: Cli) -> Result<Option<Vec<u8>>, Failure> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => rewarder_macronode::serve().map(|()| None).map_err(Failure::from),
        Command::MintToken(args) => args.run().map(Some),
        Command::Healthcheck(args) => args.run(),
    }
}

fn main() -> ExitCode {
    cli::exit("rewarder-macronode", run(cli::parse()))
}
