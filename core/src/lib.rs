//! The pure domain of svc-rewarder: it parses sealed epoch inputs and policies, computes each
//! payout exactly (CALCULUS.md), checks the invariants, commits to the result (BLAKE3 Merkle
//! root, manifest digest), signs it, and verifies a signed result against trusted keys.
//!
//! It does not open sockets, spawn threads, read the clock or the file system: time,
//! randomness, storage and the ledger reach it from its hosts (micronode, macronode, ffi).

#![deny(missing_docs)]

pub mod commit;
pub mod error;
pub mod inputs;
mod inputs_parse;
mod json;
pub mod policy;
mod policy_parse;

pub use error::{Code, Error};
pub use inputs::{Inputs, Limits, Usage};
pub use inputs_parse::parse_amount;
pub use policy::Policy;
pub mod calculus;
pub mod compare;
mod invariants;
pub mod manifest;
pub mod merkle;
pub mod result;
pub mod run;
pub mod service;
pub mod sign;
pub mod verify;
mod wide;

pub use compare::Comparison;
pub use manifest::Manifest;
pub use run::{Allocation, Proof, Run};
pub use sign::{PublicKey, Signatures, SigningKeys};
