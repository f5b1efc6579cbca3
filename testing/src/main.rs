//! `rewarder-testkit`: command-line front end of the test peers (see the library docs).
//!
//! Each subcommand lives in its own module under `cli/`; `main` only parses the command line
//! (clap exits 2 on a bad flag) and maps `run`'s result to an exit code (1 on failure).

#![deny(missing_docs)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// Test peers for svc-rewarder.
#[derive(Debug, Parser)]
#[command(name = "rewarder-testkit", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Write a deterministic inputs.json and policy.json pair into a directory.
    Vectors(cli::vectors::Args),
    /// Run a simulated ledger (the ledger side of API.md §4) until SIGTERM or SIGINT.
    LedgerSim(cli::ledger_sim::Args),
}

/// Runs one parsed command line.
fn run(cli: Cli) -> Result<(), cli::Error> {
    match cli.command {
        Command::Vectors(args) => cli::vectors::run(&args),
        Command::LedgerSim(args) => cli::ledger_sim::run(&args),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rewarder-testkit: error: {e}");
            ExitCode::from(1)
        }
    }
}
