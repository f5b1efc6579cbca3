//! svc-rewarder for the datacenter: the micronode's process — configuration, keys, ledger
//! client and drain thread, signals, the server and its bounded work queue —
//! run with a pool of `CONCURRENCY_COMPUTE_WORKERS` request threads instead of one, answering
//! `/version` with the `macronode` profile, keeping documents in memory, and keeping its
//! quarantine queue durably in SQLite when `STATE_PATH` is set ([`state`]).
//!
//! This crate chooses the pool size and the queue's store and nothing else: every line that
//! serves a request is `rewarder-micronode`'s (see [`rewarder_micronode::node::Flavor`]). The
//! SQLite store lives here alone, so the amnesic micronode and the FFI library never link it. Admission control is
//! the shared transport's and service's: `WORK_QUEUE_MAX` (the server's bounded work queue),
//! `MAX_INFLIGHT` and the per-tenant token buckets (`TENANT_RPS_MAX`) live in one
//! [`Service`](rewarder_core::service::Service) shared by all workers; SIGHUP and
//! `POST /rewarder/admin/reload` re-read them (from `HOT_KNOBS_FILE` when set).
//!
//! It does not share state between nodes: a fleet is any number of macronodes behind a load
//! balancer, and the ledger's idempotency keys make a retry on another node safe. A node's
//! `STATE_PATH` is its own (a StatefulSet's claim): what it answered `202` survives its crash.

#![deny(missing_docs)]

pub mod state;

use std::sync::Arc;

use rewarder_core::service::QueueStore;
use rewarder_micronode::config::NodeConfig;
use rewarder_micronode::node::{self, Flavor, NodeError};

/// The number of compute workers: `CONCURRENCY_COMPUTE_WORKERS` when set, else one per core
/// but one (at least one), and one fewer again when ML-DSA-65 signing is required
/// (`REQUIRE_PQ_ON`; PERFORMANCE.md §3), still at least one.
///
/// An explicit value is used as given: the PQ reduction applies to the default only.
pub fn compute_workers(configured: Option<usize>, cores: usize, require_pq_on: bool) -> usize {
    configured.unwrap_or_else(|| {
        let workers = cores.saturating_sub(1).max(1);
        if require_pq_on { workers.saturating_sub(1).max(1) } else { workers }
    })
}

/// The cores this process may use (cgroup quotas included), 1 when unknown.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The macronode flavor of a configuration.
pub fn flavor(config: &NodeConfig) -> Flavor {
    Flavor::Macronode {
        workers: compute_workers(config.compute_workers, available_cores(), config.require_pq_on),
    }
}

/// The durable queue of a configuration: the SQLite file at `STATE_PATH`, if set. A file this
/// build cannot use (newer, foreign, damaged, unreadable) is a configuration error (exit 2).
pub fn queue_store(config: &NodeConfig) -> Result<Option<Arc<dyn QueueStore>>, NodeError> {
    let Some(path) = &config.state_path else { return Ok(None) };
    let store = state::SqliteQueue::open(path).map_err(|e| NodeError::Config(format!("STATE_PATH {e}")))?;
    tracing::info!(path = %path.display(), schema = state::SCHEMA_VERSION, "durable queue opened");
    Ok(Some(Arc::new(store)))
}

/// `serve`: the configuration from the environment, then a macronode until SIGTERM/SIGINT.
pub fn serve() -> Result<(), NodeError> {
    node::serve_as(|config| Ok((flavor(config), queue_store(config)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_workers_leave_a_core_and_one_more_for_pq() {
        assert_eq!(compute_workers(None, 8, false), 7);
        assert_eq!(compute_workers(None, 8, true), 6);
        assert_eq!(compute_workers(None, 2, false), 1);
        assert_eq!(compute_workers(None, 2, true), 1);
        assert_eq!(compute_workers(None, 1, false), 1);
        assert_eq!(compute_workers(None, 0, true), 1);
    }

    #[test]
    fn an_explicit_worker_count_is_used_as_given() {
        assert_eq!(compute_workers(Some(3), 2, true), 3);
        assert_eq!(compute_workers(Some(1), 64, false), 1);
    }

    #[test]
    fn the_flavor_is_a_macronode_with_the_configured_pool() {
        let config =
            NodeConfig::from_lookup(|name| (name == "CONCURRENCY_COMPUTE_WORKERS").then(|| "5".into()))
                .unwrap();
        assert_eq!(flavor(&config), Flavor::Macronode { workers: 5 });
        assert_eq!(flavor(&config).workers(), 5);
        assert_eq!(flavor(&config).profile(), rewarder_core::service::Profile::Macronode);
    }
}
