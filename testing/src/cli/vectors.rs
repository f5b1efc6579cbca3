//! `rewarder-testkit vectors`: writes `DIR/inputs.json` and `DIR/policy.json`.

use std::path::{Path, PathBuf};

use clap::builder::{PossibleValuesParser, TypedValueParser};
use rewarder_testkit::{Scale, generate, is_valid_epoch, vectors::DEFAULT_EPOCH};

use super::Error;

/// Arguments of `vectors`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Size: S = 1,000 actors / 10,000 events, M = 10,000 / 100,000, L = 50,000 / 500,000.
    #[arg(
        long,
        ignore_case = true,
        value_parser = PossibleValuesParser::new(["S", "M", "L"])
            .map(|s| s.parse::<Scale>().expect("one of the possible values")),
    )]
    pub scale: Scale,

    /// Epoch label written into the inputs (1-128 chars of [A-Za-z0-9._:-]); also seeds the data.
    #[arg(long, default_value = DEFAULT_EPOCH, value_parser = parse_epoch)]
    pub epoch: String,

    /// Seed of the generator: the same (scale, epoch, seed) always gives the same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Directory to write inputs.json and policy.json into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

fn parse_epoch(s: &str) -> Result<String, String> {
    if is_valid_epoch(s) {
        Ok(s.to_owned())
    } else {
        Err("expected 1-128 characters of [A-Za-z0-9._:-]".to_owned())
    }
}

/// Generates the pair and writes it, then prints a one-line summary to stderr.
pub fn run(args: &Args) -> Result<(), Error> {
    let (inputs, policy) = generate(args.scale, &args.epoch, args.seed);
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Error(format!("cannot create output directory {}: {e}", args.out.display())))?;
    let inputs_path = args.out.join("inputs.json");
    let policy_path = args.out.join("policy.json");
    write(&inputs_path, &inputs)?;
    write(&policy_path, &policy)?;
    eprintln!(
        "rewarder-testkit vectors: wrote {} ({} bytes) and {} ({} bytes): scale {}, epoch {}, seed {}, {} actors, {} events",
        inputs_path.display(),
        inputs.len(),
        policy_path.display(),
        policy.len(),
        args.scale,
        args.epoch,
        args.seed,
        args.scale.actors(),
        args.scale.events(),
    );
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(|e| Error(format!("cannot write {}: {e}", path.display())))
}
