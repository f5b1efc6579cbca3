//! The one HTTP server of every node (micronode, macronode, embedded): HTTP/1.1 on
//! `httparse`, TLS through rustls' buffers, one I/O thread for every connection and a
//! fixed set of compute threads behind a bounded work queue.
//!
//! - [`framing`]: heads, chunked bodies and answer heads, without I/O;
//! - `wire_io`: bytes in and out of a non-blocking socket, plain or TLS;
//! - `conn`: one connection's state machine (head → admission → body → compute → answer →
//!   keep-alive or lingering close);
//! - `out`: the bytes a connection owes its client, written from where they are kept;
//! - `workers`: the compute threads and the work queue;
//! - `server`: the readiness loop, accept, deadlines, stop and drain.
//!
//! Per request: the head is parsed and bounded; the service's head phase decides route,
//! authentication and rate (a refusal is answered before any body byte is read); the body
//! cap, content type and encoding are checked; the body is read under its deadline and the
//! held-bytes budget; the open probes are answered on the I/O thread; anything else is queued
//! for a compute thread (`503 overloaded` when `WORK_QUEUE_MAX` already wait), which inflates
//! gzip under both caps and runs the body phase (a panic is `500 internal`). The answer's
//! head and body leave in one vectored write; a new run's full answer (HTTP/1.1) leaves with
//! chunked framing while its rows are rendered, piece by piece.

mod conn;
pub mod framing;
mod out;
mod server;
mod wire_io;
mod workers;

pub use server::{RunningServer, Server, ServerHandle, ServerOptions, TransportLimits};
