//! The endpoints that do not compute: the open probes (`/healthz`, `/readyz`, `/version`,
//! `/metrics`), the published signing keys (`/rewarder/keys`), the sealed-document uploads and the knob reload — plus the dispatch of a
//! routed, admitted request to its handler. Computes, comparisons, results and proofs are in
//! `compute`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::auth::Principal;
use super::router::{Endpoint, Routed};
use super::{Build, Config, HotKnobs, JSON, PROMETHEUS_TEXT, Response, Service, lock};
use crate::error::{Code, Error};
use crate::inputs::Inputs;
use crate::policy::Policy;

/// Smallest upload whose content id is hashed beside its parse: below it, the hash (tens of
/// microseconds) costs less than handing it to another thread.
const OVERLAP_HASH_BYTES_MIN: usize = 1 << 20;

/// Seconds a client is told to wait before asking `/readyz` again when not ready.
pub(crate) const READY_RETRY_AFTER_S: u32 = 1;

/// A JSON response.
pub(crate) fn json_response(status: u16, body: &Value) -> Response {
    Response { status, content_type: JSON, retry_after_s: None, body: body.to_string().into_bytes() }
}

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

/// The knobs as JSON.
pub(crate) fn knobs_json(k: HotKnobs) -> Value {
    json!({
        "tenant_rps_max": k.tenant_rps_max,
        "max_inflight": k.max_inflight,
        "work_queue_max": k.work_queue_max,
        "ledger_quarantine_only": k.ledger_quarantine_only,
    })
}

/// The tenant of an admitted request (every endpoint with a scope has a principal).
fn tenant(principal: Option<&Principal>) -> Result<&str, Error> {
    principal
        .map(|p| p.tenant.as_str())
        .ok_or_else(|| Error::new(Code::Internal, "no principal for a tenant route"))
}

impl Service {
    /// Runs the handler of a routed request whose scope is already checked.
    pub(crate) fn serve(
        &self,
        routed: &Routed<'_>,
        principal: Option<&Principal>,
        body: &[u8],
    ) -> Result<Response, Error> {
        match &routed.endpoint {
            Endpoint::Healthz => Ok(json_response(200, &json!({"status": "ok"}))),
            Endpoint::Readyz => Ok(self.readyz()),
            Endpoint::Version => Ok(Response {
                status: 200,
                content_type: JSON,
                retry_after_s: None,
                body: self.version_body.clone(),
            }),
            Endpoint::Keys => Ok(Response {
                status: 200,
                content_type: JSON,
                retry_after_s: None,
                body: self.keys_body.clone(),
            }),
            Endpoint::Metrics => Ok(Response {
                status: 200,
                content_type: PROMETHEUS_TEXT,
                retry_after_s: None,
                body: self.metrics_text().into_bytes(),
            }),
            Endpoint::PutInputs => self.put_inputs(tenant(principal)?, body),
            Endpoint::PutPolicy => self.put_policy(tenant(principal)?, body),
            Endpoint::Compute { epoch } => {
                self.compute(tenant(principal)?, epoch, body, routed.with_allocations)
            }
            Endpoint::Compare { epoch, html } => self.compare(tenant(principal)?, epoch, body, *html),
            Endpoint::Epoch { epoch } => {
                self.epoch_result(tenant(principal)?, epoch, routed.with_allocations)
            }
            Endpoint::Proof { epoch, actor } => self.proof(tenant(principal)?, epoch, actor),
            Endpoint::Reload => self.reload_endpoint(),
        }
    }

    /// `200 {"ready":true,"degraded","ledger_degraded","details":[…],"profile"}` or
    /// `503 {"ready":false,"degraded":true,"missing":[…],"retry_after"}`.
    ///
    /// A ledger in brownout (API.md §4) keeps the node ready — it still computes and queues —
    /// and is reported as `degraded`, `ledger_degraded` and the detail `"ledger_degraded"`;
    /// the operator's quarantine-only switch likewise, as `ledger_quarantine_only` and the
    /// detail `"ledger_quarantine_only"`.
    fn readyz(&self) -> Response {
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

    /// Keeps a new artifact with the host; counts a spill when the host could not.
    pub(crate) fn keep_artifact(&self, name: &str, bytes: &[u8]) {
        if !self.artifacts.keep(name, bytes) {
            self.metrics.amnesia_spill();
        }
    }

    /// `PUT /rewarder/inputs`: `201 {"inputs_cid","epoch","actors","events"}`, `200` when the
    /// tenant already stored these exact bytes (found by content id, not parsed again).
    ///
    /// The bytes are hashed once. When the tenant holds a document of the same length (a
    /// re-upload, likely), they are hashed first and a stored one answers without a parse;
    /// otherwise a large document is hashed on the host's second thread while this one
    /// parses it ([`Inputs::parse_overlapped`]).
    fn put_inputs(&self, tenant: &str, raw: &[u8]) -> Result<Response, Error> {
        let limits = &self.config.limits;
        let maybe_stored = lock(&self.documents).may_hold_inputs(tenant, raw.len());
        let cid = maybe_stored.then(|| crate::commit::content_id(raw));
        let stored = cid.as_ref().and_then(|cid| lock(&self.documents).inputs(tenant, cid));
        let (inputs, new) = match stored {
            Some(inputs) => (inputs, false),
            None => {
                let span = phase_span!("parse", bytes = raw.len());
                let parsed = span.in_scope(|| match cid {
                    Some(cid) => Inputs::parse_with_cid(raw, limits, cid),
                    None if raw.len() >= OVERLAP_HASH_BYTES_MIN => {
                        Inputs::parse_overlapped(raw, limits, &*self.overlap)
                    }
                    None => Inputs::parse(raw, limits),
                })?;
                lock(&self.documents).insert_inputs(tenant, Arc::new(parsed), raw.len())?
            }
        };
        if new {
            self.keep_artifact(inputs.cid(), raw);
        }
        let body = json!({
            "inputs_cid": inputs.cid(),
            "epoch": inputs.epoch(),
            "actors": inputs.actor_count(),
            "events": inputs.event_count(),
        });
        Ok(json_response(if new { 201 } else { 200 }, &body))
    }

    /// `PUT /rewarder/policies`: `201 {"policy_hash","policy_id"}`, `200` when already stored.
    fn put_policy(&self, tenant: &str, raw: &[u8]) -> Result<Response, Error> {
        let hash = crate::commit::content_id(raw);
        let stored = lock(&self.documents).policy(tenant, &hash);
        let (policy, new) = match stored {
            Some(policy) => (policy, false),
            None => {
                let parsed =
                    Arc::new(phase_span!("parse", bytes = raw.len()).in_scope(|| Policy::parse(raw))?);
                lock(&self.documents).insert_policy(tenant, parsed, raw.len())?
            }
        };
        if new {
            self.keep_artifact(policy.hash(), raw);
        }
        let body = json!({"policy_hash": policy.hash(), "policy_id": policy.policy_id()});
        Ok(json_response(if new { 201 } else { 200 }, &body))
    }

    /// `POST /rewarder/admin/reload`: `200` with the knobs now in force, or — when the host
    /// refuses the new values — `400 bad_request` with the reason, the old knobs kept and
    /// listed under `details.kept`. 400 rather than 422: every 422 code names a field of a
    /// request document, while a refused reload is about the node's environment, which the
    /// request cannot fix; `bad_request` is the one generic client-facing code.
    fn reload_endpoint(&self) -> Result<Response, Error> {
        match self.reload_now() {
            Ok(knobs) => Ok(json_response(200, &knobs_json(knobs))),
            Err(reason) => Err(Error::new(Code::BadRequest, format!("reload refused, knobs kept: {reason}"))
                .with_detail("kept", knobs_json(self.hot()))),
        }
    }
}
