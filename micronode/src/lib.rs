//! svc-rewarder for small devices and auditors: the one HTTP server of every node (one I/O
//! thread over every connection, compute threads behind a bounded work queue, [`http`]), the one ledger
//! client and its drain thread ([`ledger`]), the node process around them (environment
//! configuration, amnesia directory, signals, [`node`] — the macronode runs the same process
//! with another [`node::Flavor`]), the offline `compute`, `compare` and `verify` commands and the `demo`.
//!
//! It holds no domain logic: routing, authentication, parsing, the calculus and the
//! commitments are `rewarder-core`'s. The macronode and the embedded node reuse [`http`]
//! with another worker count; they do not copy it.

#![deny(missing_docs)]

pub mod amnesia;
pub mod build;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod embedded;
pub mod healthcheck;
pub mod http;
pub mod keys;
pub mod knobs;
pub mod ledger;
pub mod node;
pub mod offline;
pub mod overlap;
pub mod process;
pub mod tls;
pub mod token;
pub mod trace;
pub mod verify_cmd;
pub mod whatif;
pub mod wire;

pub use http::{RunningServer, Server, ServerHandle, ServerOptions, TransportLimits};
