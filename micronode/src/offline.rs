//! The auditor's offline compute: the same run a node would make, as a dry run, from files.

use std::sync::Arc;
use std::time::Instant;

use rewarder_core::result::{self, LedgerReport, ResultMeta};
use rewarder_core::{Error, Inputs, Limits, Policy, Run, SigningKeys};

/// Computes and signs a dry run of `inputs` under `policy` for `tenant`; the API.md §1.2 body.
pub fn compute(inputs: &[u8], policy: &[u8], tenant: &str, keys: &SigningKeys) -> Result<Vec<u8>, Error> {
    let started = Instant::now();
    let inputs = Arc::new(Inputs::parse(inputs, &Limits::UNBOUNDED)?);
    let policy = Policy::parse(policy)?;
    let run = Run::compute(&inputs, &policy, tenant)?;
    let signatures = keys.sign(run.digest_bytes());
    let allocations = result::render_allocations(&run);
    let meta = ResultMeta {
        ledger: LedgerReport::DRY_RUN,
        durable: false,
        compute_ms: started.elapsed().as_secs_f64() * 1e3,
        allocations: Some(&allocations),
    };
    Ok(result::render(&run, &signatures, &meta))
}
