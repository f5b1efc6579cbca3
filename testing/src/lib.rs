//! Test peers for svc-rewarder: a deterministic generator of realistic inputs and policy
//! documents (CALCULUS.md §1) at fixed scales, for tests, benchmarks and load runs;
//! `ledger_sim`, the ledger side of API.md §4 with fault injection, for chaos tests; `node`, a
//! node binary run as a child process and spoken to in raw HTTP/1.1, for the integration tests
//! of the node crates; and `golden`, the list of the shared golden vectors.
//!
//! It does not compute rewards and is not a product ledger: the generator only produces bytes,
//! identical for the same `(scale, epoch, seed)` on every machine and crate version, and the
//! simulator only keeps what a test needs to check exactly-once delivery.
//!
//! ```
//! use rewarder_testkit::{Scale, generate};
//! let (inputs, policy) = generate(Scale::S, "demo", 7);
//! assert_eq!((inputs, policy), generate(Scale::S, "demo", 7));
//! ```

#![deny(missing_docs)]

pub mod ledger_sim;
pub mod node;

// The generator, its PRNG and the vectors' location live in `rewarder-gen` (std only, so the
// node binaries and core's tests need not link this kit); the kit's users find them here too.
pub use rewarder_gen::{ParseScaleError, Scale, generate, golden, is_valid_epoch, rng, vectors};
