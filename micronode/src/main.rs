//! `rewarder-micronode`: the micronode binary.
//!
//! Subcommands: `serve` (the default), `compute`, `mint-token`, `demo`.
//!
//! Exit codes: 0 success (for `serve` and `demo`: stopped by SIGTERM/SIGINT); 1 the documents
//! were refused by `compute` (the API error envelope is printed on stdout) or the node failed
//! at run time (e.g. its address is taken); 2 usage or configuration error (bad flags, a bad
//! environment knob — the message names the variable — an unreadable file, a bad tenant).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rewarder_micronode::cli::{self, Failure, MintToken};
use rewarder_micronode::{demo, keys, node, offline};

#[derive(Parser)]
#[command(name = "rewarder-micronode", version, about = "Deterministic reward computation for small devices")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (API.md) with the knobs of the environment (the default).
    Serve,
    /// Recompute an epoch offline: print the signed result of a dry run (API.md §1.2) on stdout.
    Compute {
        /// The inputs document (rewarder.inputs.v1).
        #[arg(long)]
        inputs: PathBuf,
        /// The policy document (rewarder.policy.v1).
        #[arg(long)]
        policy: PathBuf,
        /// The tenant the run is for.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Also sign with ML-DSA-65.
        #[arg(long)]
        pq: bool,
    },
    /// Issue a capability token (HS256 JWT) with a key of AUTH_KEYS; print it on stdout.
    MintToken(MintToken),
    /// Start a node on loopback, compute a generated epoch through HTTP, print a summary, keep
    /// serving until Ctrl-C.
    Demo,
}

/// What a successful command prints on stdout.
fn run(cli: Cli) -> Result<Option<Vec<u8>>, Failure> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => node::serve().map(|()| None).map_err(Failure::from),
        Command::Demo => demo::run().map(|()| None).map_err(Failure::from),
        Command::Compute { inputs, policy, tenant, pq } => {
            if !offline::valid_tenant(&tenant) {
                return Err(Failure::Usage(format!("--tenant {tenant:?}: 1-64 chars of [A-Za-z0-9._-]")));
            }
            let read =
                |p: &PathBuf| std::fs::read(p).map_err(|e| Failure::Usage(format!("{}: {e}", p.display())));
            let (inputs, policy) = (read(&inputs)?, read(&policy)?);
            let keys = keys::fresh(pq)
                .map_err(|e| Failure::Usage(format!("no randomness for signing keys: {e}")))?;
            offline::compute(&inputs, &policy, &tenant, &keys)
                .map(Some)
                .map_err(|e| Failure::Refused(e.envelope("cli").to_string()))
        }
        Command::MintToken(args) => args.run().map(Some),
    }
}

fn main() -> ExitCode {
    cli::exit("rewarder-micronode", run(Cli::parse()))
}
