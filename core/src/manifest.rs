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
    /// The 13 members in the order of CALCULUS.md §4.4, each as its string (`payees` as its
    /// canonical decimal): what the digest frames, and what a verifier compares.
    pub fn fields(&self) -> [(&'static str, std::borrow::Cow<'_, str>); 13] {
        use std::borrow::Cow::{Borrowed, Owned};
        [
            ("schema", Borrowed(self.schema.as_str())),
            ("tenant", Borrowed(self.tenant.as_str())),
            ("epoch", Borrowed(self.epoch.as_str())),
            ("run_id", Borrowed(self.run_id.as_str())),
            ("inputs_cid", Borrowed(self.inputs_cid.as_str())),
            ("policy_id", Borrowed(self.policy_id.as_str())),
            ("policy_hash", Borrowed(self.policy_hash.as_str())),
            ("pool_minor", Borrowed(self.pool_minor.as_str())),
            ("distributable_minor", Borrowed(self.distributable_minor.as_str())),
            ("payout_total_minor", Borrowed(self.payout_total_minor.as_str())),
            ("residual_minor", Borrowed(self.residual_minor.as_str())),
            ("payees", Owned(self.payees.to_string())),
            ("allocations_root", Borrowed(self.allocations_root.as_str())),
        ]
    }

    /// The 32 digest bytes: BLAKE3 of the framed fields, in order (`payees` as decimal).
    pub fn digest_bytes(&self) -> [u8; 32] {
        let fields = self.fields();
        let framed: [&[u8]; 13] = std::array::from_fn(|i| fields[i].1.as_bytes());
        framed_hash(&framed)
    }

    /// `"b3:" + hex(digest_bytes())`.
    pub fn digest(&self) -> String {
        b3_hex(&self.digest_bytes())
    }
}
