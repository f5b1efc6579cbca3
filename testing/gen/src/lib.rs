//! The generator of svc-rewarder's realistic input and policy documents (CALCULUS.md §1) at
//! fixed scales, for the demo, tests, benchmarks and load runs; the SplitMix64 every test and
//! generator draws from; and `golden`, where the golden vectors are.
//!
//! It depends on nothing but std and writes documents as bytes, so the node binaries (whose
//! `demo` generates its epoch) and core's own tests use it without the test kit's ledger
//! simulator and harness, and without a dependency cycle through core. The same
//! `(scale, epoch, seed)` gives the same bytes on every machine and crate version.
//!
//! ```
//! use rewarder_gen::{Scale, generate};
//! let (inputs, policy) = generate(Scale::S, "demo", 7);
//! assert_eq!((inputs, policy), generate(Scale::S, "demo", 7));
//! ```

#![deny(missing_docs)]

pub mod golden;
pub mod rng;
pub mod vectors;

pub use vectors::{ParseScaleError, Scale, generate, is_valid_epoch};
