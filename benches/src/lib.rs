//! Shared fixtures of the benches: the testkit's S/M/L documents, parsed once.
//!
//! It measures nothing itself; `benches/reward_calc.rs` (criterion) and `benches/allocs.rs`
//! (allocation counts) do.

#![deny(missing_docs)]

use std::sync::Arc;

use rewarder_core::{Inputs, Limits, Policy, SigningKeys};
use rewarder_testkit::Scale;

/// The seed every benchmark generates its documents from.
pub const SEED: u64 = 0;

/// One scale's documents, raw and parsed.
pub struct Fixture {
    /// The scale.
    pub scale: Scale,
    /// Raw inputs document.
    pub inputs_raw: Vec<u8>,
    /// Raw policy document.
    pub policy_raw: Vec<u8>,
    /// Parsed inputs.
    pub inputs: Arc<Inputs>,
    /// Parsed policy.
    pub policy: Policy,
}

impl Fixture {
    /// Generates and parses the documents of `scale`.
    ///
    /// # Panics
    /// If the testkit's documents do not parse — a bug in the testkit or the parser.
    pub fn new(scale: Scale) -> Fixture {
        let (inputs_raw, policy_raw) = rewarder_testkit::generate(scale, "demo", SEED);
        let inputs = Arc::new(Inputs::parse(&inputs_raw, &Limits::UNBOUNDED).expect("testkit inputs parse"));
        let policy = Policy::parse(&policy_raw).expect("testkit policy parses");
        Fixture { scale, inputs_raw, policy_raw, inputs, policy }
    }
}

/// Fixed signing keys, with ML-DSA-65 when `pq`.
pub fn keys(pq: bool) -> SigningKeys {
    SigningKeys::from_seeds(&[0x11; 32], pq.then_some(&[0x22; 32]))
}
