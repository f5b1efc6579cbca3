//! The sealed-document uploads: `PUT /rewarder/inputs` and `PUT /rewarder/policies`.

use std::sync::Arc;

use serde_json::json;

use super::super::{Response, Service, lock};
use super::json_response;
use crate::error::Error;
use crate::inputs::Inputs;
use crate::policy::Policy;

/// Smallest upload whose content id is hashed, and whose raw bytes are written, beside its
/// parse: below it, the hash (tens of microseconds) costs less than handing it to another
/// thread.
const OVERLAP_HASH_BYTES_MIN: usize = 1 << 20;

impl Service {
    /// Keeps a new artifact with the host; counts a spill when the host could not.
    pub(crate) fn keep_artifact(&self, name: &str, bytes: &[u8]) {
        if self.artifacts.keep(name, bytes).is_spilled() {
            self.metrics.amnesia_spill();
        }
    }

    /// `PUT /rewarder/inputs`: `201 {"inputs_cid","epoch","actors","events"}`, `200` when the
    /// tenant already stored these exact bytes (found by content id, not parsed again).
    ///
    /// The bytes are hashed once. When the tenant holds a document of the same length (a
    /// re-upload, likely), they are hashed first and a stored one answers without a parse;
    /// otherwise a large document goes to [`Service::store_large_inputs`].
    pub(super) fn put_inputs(&self, tenant: &str, raw: &[u8]) -> Result<Response, Error> {
        let limits = &self.config.limits;
        let maybe_stored = lock(&self.documents).may_hold_inputs(tenant, raw.len());
        let cid = maybe_stored.then(|| crate::commit::content_id(raw));
        let stored = cid.as_ref().and_then(|cid| lock(&self.documents).inputs(tenant, cid));
        let (inputs, new) = match stored {
            Some(inputs) => (inputs, false),
            None if raw.len() >= OVERLAP_HASH_BYTES_MIN => self.store_large_inputs(tenant, raw, cid)?,
            None => {
                let span = phase_span!("parse", bytes = raw.len());
                let parsed = span.in_scope(|| match cid {
                    Some(cid) => Inputs::parse_with_cid(raw, limits, cid),
                    None => Inputs::parse(raw, limits),
                })?;
                let (inputs, new) =
                    lock(&self.documents).insert_inputs(tenant, Arc::new(parsed), raw.len())?;
                if new {
                    self.keep_artifact(inputs.cid(), raw);
                }
                (inputs, new)
            }
        };
        let body = json!({
            "inputs_cid": inputs.cid(),
            "epoch": inputs.epoch(),
            "actors": inputs.actor_count(),
            "events": inputs.event_count(),
        });
        Ok(json_response(if new { 201 } else { 200 }, &body))
    }

    /// Parses and stores a large inputs document the tenant does not hold: its content id is
    /// hashed (unless `cid` already is), then its raw bytes written to the host's
    /// [`Artifacts`], on the host's second thread while this one parses it
    /// ([`Inputs::parse_overlapped`]), so that the write (milliseconds for megabytes, even on
    /// tmpfs) is off the answer's path. Written before the service knows whether it stores
    /// the document, the artifact is taken back ([`Artifacts::discard`]) when the parse or the
    /// tenant's quota refuses it: a refused upload leaves nothing behind.
    ///
    /// [`Artifacts`]: crate::service::Artifacts
    /// [`Artifacts::discard`]: crate::service::Artifacts::discard
    fn store_large_inputs(
        &self,
        tenant: &str,
        raw: &[u8],
        cid: Option<String>,
    ) -> Result<(Arc<Inputs>, bool), Error> {
        let mut kept = None;
        let keep = &mut |cid: &str| kept = Some((cid.to_owned(), self.artifacts.keep(cid, raw)));
        let span = phase_span!("parse", bytes = raw.len());
        let parsed =
            span.in_scope(|| Inputs::parse_beside(raw, &self.config.limits, cid, &*self.overlap, keep));
        let stored = parsed.and_then(|parsed| {
            lock(&self.documents).insert_inputs(tenant, Arc::new(parsed), raw.len()).map_err(Error::from)
        });
        match (&stored, kept) {
            (Err(_), Some((name, kept))) if kept.is_written() => self.artifacts.discard(&name, raw.len()),
            (Ok((_, true)), Some((_, kept))) if kept.is_spilled() => self.metrics.amnesia_spill(),
            // Stored, or stored meanwhile by another request of the tenant: the artifact holds
            // the same bytes under the same name either way.
            _ => {}
        }
        stored
    }

    /// `PUT /rewarder/policies`: `201 {"policy_hash","policy_id"}`, `200` when already stored.
    pub(super) fn put_policy(&self, tenant: &str, raw: &[u8]) -> Result<Response, Error> {
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
}
