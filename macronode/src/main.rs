//! `rewarder-macronode`: the macronode binary.
//!
//! Subcommands: `serve` (the default), `mint-token`.
//!
//! Exit codes: 0 success (for `serve`: stopped by SIGTERM/SIGINT after draining); 1 the node
//! failed at run time (e.g. its address is taken); 2 usage or configuration error (bad flags,
//! a bad environment knob — the message names the variable — an unreadable file).

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rewarder_micronode::node::NodeError;
use rewarder_micronode::token::{self, MintError};

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
    MintToken {
        /// The key id, one of AUTH_KEYS.
        #[arg(long)]
        kid: String,
        /// The tenant (1-64 chars of [A-Za-z0-9._-]).
        #[arg(long)]
        tenant: String,
        /// Space-separated scopes among "compute read admin".
        #[arg(long, default_value = "compute read")]
        scope: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
        ttl: u64,
        /// Not valid before this many seconds from now.
        #[arg(long)]
        nbf_in: Option<u64>,
    },
}

/// Why the command stopped, mapped to an exit code in one place.
enum Failure {
    /// Exit 1.
    Runtime(String),
    /// Exit 2.
    Usage(String),
}

impl From<NodeError> for Failure {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Config(m) => Failure::Usage(m),
            NodeError::Runtime(m) | NodeError::AddrInUse(m) => Failure::Runtime(m),
        }
    }
}

/// What a successful command prints on stdout.
fn run(cli: Cli) -> Result<Option<String>, Failure> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => rewarder_macronode::serve().map(|()| None).map_err(Failure::from),
        Command::MintToken { kid, tenant, scope, ttl, nbf_in } => {
            match token::mint_from_env(&kid, &tenant, &scope, ttl, nbf_in) {
                Ok(token) => Ok(Some(token)),
                Err(e @ MintError::Clock) => Err(Failure::Runtime(e.to_string())),
                Err(MintError::Usage(m)) => Err(Failure::Usage(m)),
            }
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(out)) => {
            let mut stdout = std::io::stdout().lock();
            if writeln!(stdout, "{out}").and_then(|()| stdout.flush()).is_err() {
                return ExitCode::from(2);
            }
            ExitCode::SUCCESS
        }
        Err(Failure::Runtime(message)) => {
            eprintln!("rewarder-macronode: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("rewarder-macronode: {message}");
            ExitCode::from(2)
        }
    }
}
