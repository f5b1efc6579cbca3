//! `POST /rewarder/admin/reload`: the hot knobs read again.

use serde_json::{Value, json};

use super::super::{HotKnobs, Response, Service};
use super::json_response;
use crate::error::{Code, Error};

/// The knobs as JSON.
pub(crate) fn knobs_json(k: HotKnobs) -> Value {
    json!({
        "tenant_rps_max": k.tenant_rps_max,
        "max_inflight": k.max_inflight,
        "work_queue_max": k.work_queue_max,
        "ledger_quarantine_only": k.ledger_quarantine_only,
    })
}

impl Service {
    /// `POST /rewarder/admin/reload`: `200` with the knobs now in force, or — when the host
    /// refuses the new values — `400 bad_request` with the reason, the old knobs kept and
    /// listed under `details.kept`. 400 rather than 422: every 422 code names a field of a
    /// request document, while a refused reload is about the node's environment, which the
    /// request cannot fix; `bad_request` is the one generic client-facing code.
    pub(super) fn reload_endpoint(&self) -> Result<Response, Error> {
        match self.reload_now() {
            Ok(knobs) => Ok(json_response(200, &knobs_json(knobs))),
            Err(reason) => Err(Error::new(Code::BadRequest, format!("reload refused, knobs kept: {reason}"))
                .with_detail("kept", knobs_json(self.hot()))),
        }
    }
}
