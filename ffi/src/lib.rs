//! The FFI facade of svc-rewarder (`spec/FFI.md`): UniFFI exports under the namespace
//! `rewarder`, so Android (Kotlin package `uniffi.rewarder`) and iOS (Swift module `rewarder`)
//! apps can compute an epoch on the device, compare two policies on it (a participant's payout
//! under a proposed policy), verify what a server sent them (digest, signatures, the Merkle
//! proof of their own payout) and run an embedded node.
//!
//! It converts types and errors and adds nothing else (ARCHITECTURE.md rule 4): parsing, the
//! calculus, commitments and signatures are `rewarder-core`'s; the embedded node is
//! `rewarder-micronode`'s transport and service. It holds no signing key, opens no socket of
//! its own and keeps no state outside [`EmbeddedNode`].
//!
//! Unsafe code is forbidden. UniFFI's generated glue (`extern "C"` functions and its
//! converter impls) is expanded from UniFFI's own macros, which the `unsafe_code` lint does
//! not inspect, so no `allow` is needed anywhere in this crate.
//!
//! Features: `embedded` (default) exports [`EmbeddedNode`]; `cli` (default) builds the pinned
//! `uniffi-bindgen` binary. The Android portability check builds without both (see README).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

uniffi::setup_scaffolding!("rewarder");

mod api;
#[cfg(feature = "embedded")]
mod embedded;
mod error;
mod records;

pub use api::{
    compare, compute, compute_json, content_id, manifest_digest, verify_allocation, verify_result,
    verify_signature,
};
#[cfg(feature = "embedded")]
pub use embedded::EmbeddedNode;
pub use error::RewarderError;
pub use records::{
    Allocation, CompareOutput, CompareSide, CompareSummary, ComputeOutput, EmbeddedConfig, Manifest,
    PayoutChange, ProofStep, Trust, Verification,
};
