//! `rewarder-micronode`: the micronode binary.
//!
//! Subcommands: `serve` (the default), `compute`, `mint-token`, `demo`.
//!
//! Exit codes: 0 success (for `serve` and `demo`: stopped by SIGTERM/SIGINT); 1 the documents
//! were refused by `compute` (the API error envelope is printed on stdout) or the node failed
//! at run time (e.g. its address is taken); 2 usage or configuration error (bad flags, a bad
//! environment knob — the message names the variable — an unreadable file, a bad tenant).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rewarder_micronode::node::{self, NodeError};
use rewarder_micronode::token::{self, MintError};
use rewarder_micronode::{demo, keys, offline};

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
    /// Start a node on loopback, compute a generated epoch through HTTP, print a summary, keep
    /// serving until Ctrl-C.
    Demo,
}

/// Why the command stopped, mapped to an exit code in one place.
enum Failure {
    /// Exit 1, the error envelope on stdout.
    Refused(String),
    /// Exit 1, a message on stderr.
    Runtime(String),
    /// Exit 2, a message on stderr.
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
        Command::MintToken { kid, tenant, scope, ttl, nbf_in } => {
            mint_token(&kid, &tenant, &scope, ttl, nbf_in).map(Some)
        }
    }
}

fn mint_token(
    kid: &str,
    tenant: &str,
    scope: &str,
    ttl: u64,
    nbf_in: Option<u64>,
) -> Result<Vec<u8>, Failure> {
    match token::mint_from_env(kid, tenant, scope, ttl, nbf_in) {
        Ok(token) => Ok(token.into_bytes()),
        Err(e @ MintError::Clock) => Err(Failure::Runtime(e.to_string())),
        Err(MintError::Usage(m)) => Err(Failure::Usage(m)),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(mut body)) => {
            body.push(b'\n');
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(&body).and_then(|()| stdout.flush()).is_err() {
                return ExitCode::from(2);
            }
            ExitCode::SUCCESS
        }
        Err(Failure::Refused(envelope)) => {
            let _ = writeln!(std::io::stdout().lock(), "{envelope}");
            ExitCode::from(1)
        }
        Err(Failure::Runtime(message)) => {
            eprintln!("rewarder-micronode: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("rewarder-micronode: {message}");
            ExitCode::from(2)
        }
    }
}
