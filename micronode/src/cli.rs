//! What the command lines of the node binaries share: the arguments of `mint-token`, the ways a
//! command fails, and how its outcome ends the process with the documented exit code.
//!
//! Each binary declares and parses its own subcommands; this module parses nothing by itself.

use std::io::Write;
use std::process::ExitCode;

use crate::node::NodeError;
use crate::token::{self, MintError};

/// Parses the command line of a binary whose `serve` subcommand takes its knobs from the
/// environment: `serve --help` ends with every knob, its variable, default and range, printed
/// from the knob table the configuration parses with ([`crate::knobs`]).
pub fn parse<C: clap::Parser>() -> C {
    let command = C::command().mut_subcommand("serve", |serve| serve.after_help(crate::knobs::help()));
    let mut matches = command.get_matches();
    C::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.format(&mut C::command()).exit())
}

/// The arguments of `mint-token`.
#[derive(clap::Args)]
pub struct MintToken {
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
}

impl MintToken {
    /// The token, signed with the key of `AUTH_KEYS` the arguments name.
    pub fn run(&self) -> Result<Vec<u8>, Failure> {
        match token::mint_from_env(&self.kid, &self.tenant, &self.scope, self.ttl, self.nbf_in) {
            Ok(token) => Ok(token.into_bytes()),
            Err(e @ MintError::Clock) => Err(Failure::Runtime(e.to_string())),
            Err(MintError::Usage(m)) => Err(Failure::Usage(m)),
        }
    }
}

/// Why a command stopped, mapped to an exit code in one place ([`exit`]).
pub enum Failure {
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

/// Ends a command of `program`: what it answered goes to stdout with a newline (exit 0, or 2
/// when stdout cannot take it); a failure is printed where [`Failure`] says, messages prefixed
/// with `program`.
pub fn exit(program: &str, outcome: Result<Option<Vec<u8>>, Failure>) -> ExitCode {
    match outcome {
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
            eprintln!("{program}: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("{program}: {message}");
            ExitCode::from(2)
        }
    }
}
