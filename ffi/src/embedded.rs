//! The embedded node object (FFI.md "Object"): the micronode's own transport and service on
//! one background thread, bound to 127.0.0.1, amnesia on, no ledger (every run is a dry run).

use std::sync::{Arc, Mutex, PoisonError};

use rewarder_micronode::embedded::{self, AppNodeOptions};

use crate::error::RewarderError;
use crate::records::EmbeddedConfig;

/// A node running inside the app, serving API.md on `http://127.0.0.1:PORT` until stopped.
///
/// Starting it binds the port and spawns the server thread; requests are served on that
/// thread, never on the caller's. Signing keys are fresh per node (Ed25519, plus ML-DSA-65
/// with `require_pq`); stored documents and runs live in memory and a private temporary
/// directory removed at `stop`. Dropping (Kotlin `close()`/`destroy()`) stops it too.
#[derive(uniffi::Object)]
pub struct EmbeddedNode {
    /// Held under a lock because `stop` changes state and may be called from any thread.
    inner: Mutex<embedded::AppNode>,
    port: u16,
    base_url: String,
    token: Option<String>,
}

#[uniffi::export]
impl EmbeddedNode {
    /// Starts a node and returns once it accepts connections (typically a few milliseconds).
    ///
    /// Errors: `Invalid` (`bad_request`) for unusable `auth_keys`; `Io` when the port is
    /// taken or the system refuses a socket, a thread or randomness.
    #[uniffi::constructor]
    pub fn new(config: EmbeddedConfig) -> Result<Arc<Self>, RewarderError> {
        let node = embedded::AppNode::start(&AppNodeOptions::from(config))?;
        let (port, base_url, token) = (node.port(), node.url().to_owned(), node.token().map(str::to_owned));
        Ok(Arc::new(EmbeddedNode { inner: Mutex::new(node), port, base_url, token }))
    }

    /// The port the node is bound to (the one chosen when the config said 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The bearer token the app sends (`Authorization: Bearer <token>`, tenant `default`,
    /// every scope), made at this start so that no other app on the device can use the node;
    /// null when the config gave `auth_keys` (the app mints its own) or set `open`.
    pub fn token(&self) -> Option<String> {
        self.token.clone()
    }

    /// Stops accepting, answers the requests in flight, then returns. Blocks until the
    /// server thread has finished. Idempotent: a second call returns at once.
    pub fn stop(&self) {
        // A poisoned lock only means an earlier stop panicked; stopping again is still right.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).stop();
    }
}
