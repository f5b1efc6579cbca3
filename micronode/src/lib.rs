//! svc-rewarder for small devices and auditors: the one HTTP transport of every node (the
//! gate, the bounded work queue and the tiny_http dispatcher, [`server`]), the one ledger
//! client and its drain thread ([`ledger`]), the node process around them (environment
//! configuration, amnesia directory, signals, [`node`] — the macronode runs the same process
//! with another [`node::Flavor`]), the offline `compute` command and the `demo`.
//!
//! It holds no domain logic: routing, authentication, parsing, the calculus and the
//! commitments are `rewarder-core`'s. The macronode and the embedded node reuse [`server`]
//! with another worker count; they do not copy it.

#![deny(missing_docs)]

pub mod amnesia;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod embedded;
mod gate;
pub mod keys;
pub mod ledger;
pub mod node;
pub mod offline;
pub mod overlap;
mod queue;
pub mod server;
pub mod tls;
pub mod token;
pub mod wire;

pub use server::{GateLimits, RunningServer, Server, ServerHandle, ServerOptions};
