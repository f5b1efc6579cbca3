//! The sealed policy document (`rewarder.policy.v1`, CALCULUS.md §1.2).

use crate::error::Error;

/// A parsed, validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub(crate) hash: String,
    pub(crate) policy_id: String,
    /// Sorted by kind name, no name twice.
    pub(crate) weights: Vec<(String, u32)>,
    /// Sorted by kind name, no name twice.
    pub(crate) caps: Vec<(String, u64)>,
    pub(crate) actor_cap_bps: Option<u16>,
    pub(crate) min_payout_minor: u64,
    pub(crate) max_pool_minor: Option<u64>,
}

impl Policy {
    /// `"b3:" + hex(BLAKE3(raw))` of the exact bytes parsed.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The policy id.
    pub fn policy_id(&self) -> &str {
        &self.policy_id
    }

    /// The weight of a kind (0 when the policy does not name it).
    pub fn weight(&self, kind: &str) -> u32 {
        self.weights.binary_search_by(|(k, _)| k.as_str().cmp(kind)).map_or(0, |i| self.weights[i].1)
    }

    /// The per-actor per-epoch cap on a kind's units, if any.
    pub fn cap(&self, kind: &str) -> Option<u64> {
        self.caps.binary_search_by(|(k, _)| k.as_str().cmp(kind)).ok().map(|i| self.caps[i].1)
    }

    /// The per-actor ceiling in basis points of the distributable pool, if any.
    pub fn actor_cap_bps(&self) -> Option<u16> {
        self.actor_cap_bps
    }

    /// Allocations below this are not paid (default 1).
    pub fn min_payout_minor(&self) -> u64 {
        self.min_payout_minor
    }

    /// The most that may be distributed, if limited.
    pub fn max_pool_minor(&self) -> Option<u64> {
        self.max_pool_minor
    }

    /// Parses and validates a policy document (CALCULUS.md §1.2, §1.3).
    pub fn parse(raw: &[u8]) -> Result<Policy, Error> {
        crate::policy_parse::parse(raw)
    }
}
