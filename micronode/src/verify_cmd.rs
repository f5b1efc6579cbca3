//! `rewarder-micronode verify`: an auditor's check of a signed compute result (API.md §1.2)
//! against the public keys they trust, and optionally against a recompute from the sealed
//! documents. Every check is `rewarder_core::verify`'s; this module reads files and prints.
//!
//! Exit codes (through [`crate::cli::exit`]): 0 when every check holds, the report on stdout;
//! 1 when one fails (an untrusted key, tampering, a recompute mismatch, bytes that are not a
//! result), the report on stdout; 2 for a usage error (a bad key, an unreadable file).

use std::path::{Path, PathBuf};

use rewarder_core::PublicKey;
use rewarder_core::verify::{self, Documents, Trust};

use crate::cli::Failure;

/// The arguments of `verify`.
#[derive(clap::Args)]
pub struct Verify {
    /// The compute result to check: a body of `POST …/compute` or `GET /rewarder/epochs/{epoch}`.
    #[arg(long, value_name = "FILE")]
    result: PathBuf,
    /// The inputs document of the run: recompute it and compare the manifest (with --policy).
    #[arg(long, value_name = "FILE", requires = "policy")]
    inputs: Option<PathBuf>,
    /// The policy document of the run (with --inputs).
    #[arg(long, value_name = "FILE", requires = "inputs")]
    policy: Option<PathBuf>,
    /// A public key you trust, hex (64 digits for Ed25519, 3904 for ML-DSA-65), as
    /// `GET /rewarder/keys` lists it; repeatable. Without it (or --trust-embedded-keys) no key
    /// is trusted and the check fails.
    #[arg(long = "public-key", value_name = "HEX", value_parser = parse_key)]
    public_keys: Vec<PublicKey>,
    /// Trust the keys inside the result: proves integrity only (the result is as its key holder
    /// signed it), not who signed.
    #[arg(long, conflicts_with = "public_keys")]
    trust_embedded_keys: bool,
}

fn parse_key(text: &str) -> Result<PublicKey, String> {
    PublicKey::from_hex(text).map_err(|e| e.message().to_owned())
}

/// A file named on the command line; unreadable is a usage error.
fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
}

impl Verify {
    /// The report (JSON) when every check holds; [`Failure::Refused`] with it when one fails.
    pub fn run(&self) -> Result<Vec<u8>, Failure> {
        let result = read(&self.result)?;
        let documents = match (&self.inputs, &self.policy) {
            (Some(inputs), Some(policy)) => Some((read(inputs)?, read(policy)?)),
            _ => None,
        };
        let trust = if self.trust_embedded_keys {
            eprintln!(
                "rewarder-micronode: warning: --trust-embedded-keys trusts the keys inside the result: \
                 this proves its integrity only, not who signed it"
            );
            Trust::Embedded
        } else {
            Trust::Keys(&self.public_keys)
        };
        let documents = documents.as_ref().map(|(inputs, policy)| Documents { inputs, policy });
        let report = verify::verify(&result, trust, documents);
        if report.ok { Ok(report.to_json().into_bytes()) } else { Err(Failure::Refused(report.to_json())) }
    }
}
