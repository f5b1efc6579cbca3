//! The fuzz targets of svc-rewarder, as a library the `fuzz_targets/` binaries call.
//!
//! The targets themselves live in `targets.rs` so that the stable corpus regression test
//! (`micronode/tests/abuse.rs`) can include the very same file with `#[path]`. This crate does
//! not run anything by itself: `cargo +nightly fuzz run <target>` does (see `README.md`).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod targets;
