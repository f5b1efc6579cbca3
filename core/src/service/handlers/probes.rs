//! The open probes: `/healthz`, `/readyz`, `/version`, `/rewarder/keys`, `/metrics`. Their
//! bodies but `/readyz`'s and `/metrics`' are fixed at start.

use serde_json::{Value, json};

use super::super::{Build, Config, Response, Service, lock};
use super::json_response;

/// Seconds a client is told to wait before asking `/readyz` again when not ready.
const READY_RETRY_AFTER_S: u32 = 1;

/// The `/version` body: name, version, profile, features, whether PQ is required, public keys,
/// and the host binary's `build` (target triple, git revision) when the host gave one.
///
/// `features` lists what this node does beyond the baseline: `ml_dsa_65` when PQ signatures
/// are required, `auth` when tokens are checked, then the host's own (`tls`, `gzip`, …).
pub(crate) fn version_body(config: &Config, auth_on: bool, build: Option<&Build>) -> Vec<u8> {
    let pq = config.keys.ml_dsa_65_public_hex();
    let mut features: Vec<&str> = vec!["ed25519"];
    if pq.is_some() {
        features.push("ml_dsa_65");
    }
    if auth_on {
        features.push("auth");
    }
    features.extend(config.features.iter().copied());
    let mut public_keys = serde_json::Map::new();
    public_keys.insert("ed25519".into(), config.keys.ed25519_public_hex().into());
    if let Some(pq) = pq {
        public_keys.insert("ml_dsa_65".into(), pq.into());
    }
    let mut body = json!({
        "name": "svc-rewarder",
        "version": env!("CARGO_PKG_VERSION"),
        "profile": config.profile.as_str(),
        "features": features,
        "pq_required": pq.is_some(),
        "public_keys": public_keys,
    });
    if let (Some(build), Some(map)) = (build, body.as_object_mut()) {
        map.insert("build".into(), json!({"target": build.target, "git_revision": build.git_revision}));
    }
    body.to_string().into_bytes()
}

/// The `/rewarder/keys` body: `{"keys":[{"key_id","algorithm","public_key","status"}…]}`, the
/// active keys first (Ed25519, then ML-DSA-65 when PQ is on), then the retired ones.
pub(crate) fn keys_body(config: &Config) -> Vec<u8> {
    let keys: Vec<Value> = config
        .keys
        .published()
        .iter()
        .map(|p| {
            json!({
                "key_id": p.key.key_id(),
                "algorithm": p.key.algorithm(),
                "public_key": p.key.hex(),
                "status": p.status.as_str(),
            })
        })
        .collect();
    json!({ "keys": keys }).to_string().into_bytes()
}

impl Service {
    /// `200 {"ready":true,"degraded","ledger_degraded","details":[…],"profile"}` or
    /// `503 {"ready":false,"degraded":true,"missing":[…],"retry_after"}`.
    ///
    /// A ledger in brownout (API.md §4) keeps the node ready — it still computes and queues —
    /// and is reported as `degraded`, `ledger_degraded` and the detail `"ledger_degraded"`;
    /// the operator's quarantine-only switch likewise, as `ledger_quarantine_only` and the
    /// detail `"ledger_quarantine_only"`.
    pub(super) fn readyz(&self) -> Response {
        let missing = lock(&self.missing).clone();
        let ledger_degraded = self.metrics.ledger_degraded();
        let quarantine_only = self.metrics.ledger_quarantine_only();
        if missing.is_empty() {
            let details: Vec<&str> =
                [(ledger_degraded, "ledger_degraded"), (quarantine_only, "ledger_quarantine_only")]
                    .into_iter()
                    .filter_map(|(on, name)| on.then_some(name))
                    .collect();
            return json_response(
                200,
                &json!({
                    "ready": true,
                    "degraded": ledger_degraded || quarantine_only,
                    "ledger_degraded": ledger_degraded,
                    "ledger_quarantine_only": quarantine_only,
                    "details": details,
                    "profile": self.config.profile.as_str(),
                }),
            );
        }
        let body =
            json!({"ready": false, "degraded": true, "missing": missing, "retry_after": READY_RETRY_AFTER_S});
        Response { retry_after_s: Some(READY_RETRY_AFTER_S), ..json_response(503, &body) }
    }
}
