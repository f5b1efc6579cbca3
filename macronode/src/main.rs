//! `rewarder-macronode`: the macronode binary.
//!
//! Subcommands: `serve` (the default), `mint-token`.
//!
//! Exit codes: 0 success (for `serve`: stopped by SIGTERM/SIGINT after draining); 1 the node
//! failed at run time (e.g. its address is taken); 2 usage or configuration error (bad flags,
//! a bad environment knob — the message names the variable — an unreadable file, a
//! `STATE_PATH` queue file that is newer, foreign or damaged: it is never reset).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rewarder_micronode::cli::{self, Failure, MintToken};

#[derive(Parser)]
#[command(name = "rewarder-macronode", version, about = "Deterministic reward computation on a worker pool")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (API.md) with the knobs of the environment (the default).
    Serve,
    /// Issue a capability token (HS256 JWT) with a key of AUTH_KEYS; print it on stdout.
    MintToken(MintToken),
}

/// What a successful command prints on stdout.
fn run(cli: Cli) -> Result<Option<Vec<u8>>, Failure> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => rewarder_macronode::serve().map(|()| None).map_err(Failure::from),
        Command::MintToken(args) => args.run().map(Some),
    }
}

fn main() -> ExitCode {
    cli::exit("rewarder-macronode", run(Cli::parse()))
}
