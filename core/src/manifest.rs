//! The run manifest and its digest (CALCULUS.md §4): what gets signed.

use serde::{Deserialize, Serialize};

use crate::commit::{b3_hex, framed_hash};

/// The manifest: exactly these fields, serialized in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always `"rewarder.manifest.v1"`.
    pub schema: String,
    /// The authenticated tenant (`default` without auth).
    pub tenant: String,
    /// The epoch label.
    pub epoch: String,
    /// The run id.
    pub run_id: String,
    /// Content id of the inputs document.
    pub inputs_cid: String,
    /// The policy's id.
    pub policy_id: String,
    /// Content hash of the policy document.
    pub policy_hash: String,
    /// `P`, decimal.
    pub pool_minor: String,
    /// `D`, decimal.
    pub distributable_minor: String,
    /// `Σ amount`, decimal.
    pub payout_total_minor: String,
    /// `P − Σ amount`, decimal.
    pub residual_minor: String,
    /// Number of payees.
    pub payees: u64,
    /// `"b3:" + hex(root)` of the allocations tree.
    pub allocations_root: String,
}

/// The manifest's schema value.
pub const MANIFEST_SCHEMA: &str = "rewarder.manifest.v1";

impl Manifest {
    /// The 32 digest bytes: BLAKE3 of the framed fields, in order (`payees` as decimal).
    pub fn digest_bytes(&self) -> [u8; 32] {
        let payees = self.payees.to_string();
        framed_hash(&[
            self.schema.as_bytes(),
            self.tenant.as_bytes(),
            self.epoch.as_bytes(),
            self.run_id.as_bytes(),
            self.inputs_cid.as_bytes(),
            self.policy_id.as_bytes(),
            self.policy_hash.as_bytes(),
            self.pool_minor.as_bytes(),
            self.distributable_minor.as_bytes(),
            self.payout_total_minor.as_bytes(),
            self.residual_minor.as_bytes(),
            payees.as_bytes(),
            self.allocations_root.as_bytes(),
        ])
    }

    /// `"b3:" + hex(digest_bytes())`.
    pub fn digest(&self) -> String {
        b3_hex(&self.digest_bytes())
    }
}
