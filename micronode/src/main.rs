//! `rewarder-micronode`: the micronode binary.
//!
//! Subcommands: `serve` (the default), `compute`, `compare`, `verify`, `mint-token`, `demo`,
//! `healthcheck`.
//!
//! Exit codes: 0 success (for `serve` and `demo`: stopped by SIGTERM/SIGINT); 1 the documents
//! were refused by `compute` or `compare` (the API error envelope is printed on stdout), a check
//! of `verify` failed (its report is printed on stdout), the node failed at run time (e.g. its
//! address is taken), or `healthcheck` found the node not ready; 2 usage or configuration error (bad flags, a bad
//! environment knob — the message names the variable — an unreadable file, a bad tenant).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rewarder_core::compare;
use rewarder_micronode::cli::{self, Failure, MintToken};
use rewarder_micronode::healthcheck::Healthcheck;
use rewarder_micronode::whatif::{self, Sweep};
use rewarder_micronode::{demo, keys, node, offline, verify_cmd};

#[derive(Parser)]
#[command(
    name = "rewarder-micronode",
    version = rewarder_micronode::build::VERSION_LINE,
    about = "Deterministic reward computation for small devices"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (docs/spec/API.md) with the knobs of the environment (the default).
    Serve,
    /// Recompute an epoch offline: print the signed result of a dry run (docs/spec/API.md §1.2)
    /// on stdout.
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
    /// Compare two policies on one epoch offline: print the comparison (docs/spec/API.md §1.3) on
    /// stdout, and with --html write the report. With --sweep, compute a series of policies
    /// instead and print one summary line per point.
    Compare {
        /// The inputs document (rewarder.inputs.v1).
        #[arg(long)]
        inputs: PathBuf,
        /// Policy A, then policy B; with --sweep, once: the base policy.
        #[arg(long, required = true)]
        policy: Vec<PathBuf>,
        /// The tenant the runs are for.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Also write the report there: one self-contained HTML file, readable offline.
        #[arg(long, conflicts_with = "sweep")]
        html: Option<PathBuf>,
        /// Movers listed (and rows per table of the report).
        #[arg(long, default_value_t = compare::TOP_DEFAULT as u64,
              value_parser = clap::value_parser!(u64).range(0..=compare::TOP_MAX as u64))]
        top: u64,
        /// Sweep one weight of the (single) policy: weight.KIND=LO..HI:STEP.
        #[arg(long)]
        sweep: Option<Sweep>,
    },
    /// Check a signed result against the public keys you trust (and a recompute): print the
    /// report on stdout; exit 0 when every check holds, 1 when one fails.
    Verify(verify_cmd::Verify),
    /// Issue a capability token (HS256 JWT) with a key of AUTH_KEYS; print it on stdout.
    MintToken(MintToken),
    /// Start a node on loopback, compute a generated epoch through HTTP, print a summary, keep
    /// serving until Ctrl-C.
    Demo,
    /// Probe this host's node: GET /readyz on BIND_ADDR's port (loopback for 0.0.0.0); exit 0
    /// when it answers 200, 1 otherwise. For a container's HEALTHCHECK.
    Healthcheck(Healthcheck),
}

/// A file named on the command line; unreadable is a usage error.
fn read(path: &PathBuf) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
}

fn check_tenant(tenant: &str) -> Result<(), Failure> {
    if rewarder_core::service::auth::valid_tenant(tenant) {
        Ok(())
    } else {
        let max = rewarder_core::service::auth::TENANT_MAX_CHARS;
        Err(Failure::Usage(format!("--tenant {tenant:?}: 1-{max} chars of [A-Za-z0-9._-]")))
    }
}

fn refused(error: &rewarder_core::Error) -> Failure {
    Failure::Refused(error.envelope("cli").to_string())
}

/// `compare`: the comparison of two policies, or a sweep of one.
fn compare(
    inputs: &PathBuf,
    policies: &[PathBuf],
    tenant: &str,
    html: Option<&PathBuf>,
    top: usize,
    sweep: Option<&Sweep>,
) -> Result<Vec<u8>, Failure> {
    check_tenant(tenant)?;
    let inputs = read(inputs)?;
    match (sweep, policies) {
        (Some(sweep), [base]) => {
            let started = std::time::Instant::now();
            let lines = whatif::sweep(&inputs, &read(base)?, sweep, tenant).map_err(|e| refused(&e))?;
            let (points, ms) = (sweep.points().count(), started.elapsed().as_secs_f64() * 1e3);
            eprintln!(
                "rewarder-micronode: {points} points in {ms:.1} ms ({:.2} ms per point)",
                ms / points as f64
            );
            Ok(lines)
        }
        (None, [a, b]) => {
            let comparison =
                whatif::compare(&inputs, &read(a)?, &read(b)?, tenant).map_err(|e| refused(&e))?;
            if let Some(path) = html {
                std::fs::write(path, compare::html::render(&comparison, top))
                    .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
            }
            Ok(compare::json::render(&comparison, top))
        }
        (Some(_), _) => Err(Failure::Usage("--sweep takes exactly one --policy (the base)".into())),
        (None, _) => Err(Failure::Usage("compare takes exactly two --policy (A, then B)".into())),
    }
}

/// What a successful command prints on stdout.
fn run(cli: Cli) -> Result<Option<Vec<u8>>, Failure> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => node::serve().map(|()| None).map_err(Failure::from),
        Command::Demo => demo::run().map(|()| None).map_err(Failure::from),
        Command::Compute { inputs, policy, tenant, pq } => {
            check_tenant(&tenant)?;
            let (inputs, policy) = (read(&inputs)?, read(&policy)?);
            let keys = keys::fresh(pq)
                .map_err(|e| Failure::Usage(format!("no randomness for signing keys: {e}")))?;
            offline::compute(&inputs, &policy, &tenant, &keys).map(Some).map_err(|e| refused(&e))
        }
        Command::Compare { inputs, policy, tenant, html, top, sweep } => {
            // `top` is at most TOP_MAX (clap checked it).
            compare(&inputs, &policy, &tenant, html.as_ref(), top as usize, sweep.as_ref()).map(Some)
        }
        Command::Verify(args) => args.run().map(Some),
        Command::MintToken(args) => args.run().map(Some),
        Command::Healthcheck(args) => args.run(),
    }
}

fn main() -> ExitCode {
    cli::exit("rewarder-micronode", run(cli::parse()))
}
