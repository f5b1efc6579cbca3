//! The subcommands of the `rewarder-testkit` binary, one module each.

use std::fmt;

pub mod ledger_sim;
pub mod vectors;

/// A failure of a subcommand: a message for the operator (the binary exits 1).
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}
