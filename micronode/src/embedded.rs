//! The embedded node: the micronode's own service and transport on one background thread,
//! bound to loopback, started and stopped by a host program (the FFI library's
//! `EmbeddedNode`, so an app can run a node in-process).
//!
//! It is [`Node::start_flavor`] with [`Flavor::Embedded`], from the knob defaults and what the
//! app chose: it reads no environment, installs no signal handler or logger, prints nothing,
//! has no ledger (every run is a dry run) and answers `/version` with the `embedded` profile.
//! Where no amnesia directory can be created (an app sandbox without `/dev/shm` and an
//! unwritable temporary directory), stored documents and runs stay in memory only, which is
//! amnesia too: nothing is written.

use std::net::SocketAddr;
use std::sync::Arc;

use rewarder_core::service::{Clock, Service, auth};

use crate::clock::SystemClock;
use crate::config::{self, NodeConfig};
use crate::node::{Flavor, Node, NodeError};

/// What an app chooses about its embedded node; everything else takes the micronode defaults
/// of API.md §5.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppNodeOptions {
    /// The loopback port to bind; 0 picks a free one.
    pub port: u16,
    /// Sign with ML-DSA-65 too (`REQUIRE_PQ_ON`).
    pub require_pq: bool,
    /// `AUTH_KEYS` (`kid:hexkey,…`) when the app mints its own tokens; `None` = the node makes
    /// a key and one token at each start ([`AppNode::token`]).
    pub auth_keys: Option<String>,
    /// Serve without authentication, to any process of the device that can reach loopback:
    /// an explicit opt-out, never the default.
    pub open: bool,
}

/// The key id of the key an embedded node makes for itself.
const OWN_KID: &str = "embedded";
/// The lifetime of the token an embedded node mints for its app: longer than any process.
const OWN_TOKEN_LIFETIME_S: u64 = 10 * 365 * 24 * 3600;

/// A running embedded node. Dropping it stops it.
pub struct AppNode {
    node: Node,
    /// The bearer token of the node's own key; `None` with the app's keys or when open.
    token: Option<String>,
}

impl AppNode {
    /// Starts a node on `127.0.0.1:{options.port}` and returns once it accepts connections
    /// (the server thread runs in the background).
    ///
    /// Fails with [`NodeError::Config`] on unusable `auth_keys`, [`NodeError::AddrInUse`] when
    /// the port is taken, and [`NodeError::Runtime`] when the system refuses randomness for
    /// the keys, a socket or a thread.
    pub fn start(options: &AppNodeOptions) -> Result<AppNode, NodeError> {
        let defaults = NodeConfig::from_lookup(|_| None).map_err(|e| NodeError::Config(e.to_string()))?;
        let given = options
            .auth_keys
            .as_deref()
            .filter(|keys| !keys.is_empty())
            .map(config::parse_auth_keys)
            .transpose()
            .map_err(|e| NodeError::Config(e.to_string()))?;
        // Loopback is shared by every app of the device: unless the app brings its keys or
        // opts out, the node is private to the app that holds its token.
        let (auth_keys, token) = match given {
            Some(keys) => (Some(keys), None),
            None if options.open => (None, None),
            None => {
                let mut key = vec![0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| NodeError::Runtime(format!("no randomness for a key: {e}")))?;
                let exp = SystemClock::new().unix_seconds() + OWN_TOKEN_LIFETIME_S;
                let token = auth::mint(OWN_KID, &key, auth::DEFAULT_TENANT, "compute read admin", exp, None);
                (Some(vec![(OWN_KID.to_owned(), key)]), Some(token))
            }
        };
        let config = NodeConfig { auth_keys, require_pq_on: options.require_pq, ..defaults };
        let bind = SocketAddr::from(([127, 0, 0, 1], options.port));
        let node = Node::start_flavor(&config, bind, Flavor::Embedded, None)?;
        Ok(AppNode { node, token })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.node.port()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        self.node.url()
    }

    /// The token the app sends as `Authorization: Bearer …` (tenant `default`, every scope),
    /// made at this start; `None` when the app gave its own keys or opted out with `open`.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The service the node serves.
    pub fn service(&self) -> &Arc<Service> {
        self.node.service()
    }

    /// Stops accepting, answers the requests in flight, waits for the server thread and
    /// removes the amnesia directory. Idempotent; blocks until the server has drained.
    pub fn stop(&mut self) {
        if let Err(e) = self.node.stop() {
            tracing::error!(error = %e, "cannot stop the embedded node cleanly");
        }
    }
}

impl Drop for AppNode {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    fn get(port: u16, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn starts_on_a_free_port_answers_with_the_embedded_profile_and_stops_twice() {
        let mut node = AppNode::start(&AppNodeOptions::default()).unwrap();
        assert_ne!(node.port(), 0);
        assert_eq!(node.url(), format!("http://127.0.0.1:{}", node.port()));
        assert!(get(node.port(), "/readyz").starts_with("HTTP/1.1 200"));
        assert!(get(node.port(), "/version").contains("\"embedded\""));
        node.stop();
        node.stop();
        assert!(TcpStream::connect(("127.0.0.1", node.port())).is_err());
    }

    #[test]
    fn bad_auth_keys_are_a_config_error() {
        let options = AppNodeOptions { auth_keys: Some("k1:00".into()), ..AppNodeOptions::default() };
        assert!(matches!(AppNode::start(&options), Err(NodeError::Config(_))));
    }
}
