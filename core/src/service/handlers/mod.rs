//! The route table: a routed, admitted request goes to its handler, one file per route
//! family, each holding its routes whole:
//! - [`probes`]: `/healthz`, `/readyz`, `/version`, `/rewarder/keys`, `/metrics` (open);
//! - [`documents`]: `PUT /rewarder/inputs`, `PUT /rewarder/policies`;
//! - [`runs`]: `POST /rewarder/epochs/{epoch}/compute`, `GET /rewarder/epochs/{epoch}`,
//!   `GET …/proof/{actor}`, and the what-if `POST …/compare` beside them;
//! - [`admin`]: `POST /rewarder/admin/reload`.
//!
//! The ledger step of a compute is not a route: it is `super::egress`.

mod admin;
mod documents;
mod probes;
mod runs;

use serde_json::{Value, json};

use super::auth::Principal;
use super::router::{Endpoint, Routed};
use super::{JSON, PROMETHEUS_TEXT, Response, Service, Stream};
use crate::error::{Code, Error};

pub(crate) use probes::{keys_body, version_body};

/// A JSON response.
pub(crate) fn json_response(status: u16, body: &Value) -> Response {
    Response {
        status,
        content_type: JSON,
        retry_after_s: None,
        body: body.to_string().into_bytes(),
        shared: None,
    }
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
        stream: Option<&mut dyn Stream>,
    ) -> Result<Response, Error> {
        match &routed.endpoint {
            Endpoint::Healthz => Ok(json_response(200, &json!({"status": "ok"}))),
            Endpoint::Readyz => Ok(self.readyz()),
            Endpoint::Version => Ok(Response {
                status: 200,
                content_type: JSON,
                retry_after_s: None,
                body: self.version_body.clone(),
                shared: None,
            }),
            Endpoint::Keys => Ok(Response {
                status: 200,
                content_type: JSON,
                retry_after_s: None,
                body: self.keys_body.clone(),
                shared: None,
            }),
            Endpoint::Metrics => Ok(Response {
                status: 200,
                content_type: PROMETHEUS_TEXT,
                retry_after_s: None,
                body: self.metrics_text().into_bytes(),
                shared: None,
            }),
            Endpoint::PutInputs => self.put_inputs(tenant(principal)?, body),
            Endpoint::PutPolicy => self.put_policy(tenant(principal)?, body),
            Endpoint::Compute { epoch } => {
                self.compute(tenant(principal)?, epoch, body, routed.with_allocations, stream)
            }
            Endpoint::Compare { epoch, html } => self.compare(tenant(principal)?, epoch, body, *html),
            Endpoint::Epoch { epoch } => {
                self.epoch_result(tenant(principal)?, epoch, routed.with_allocations)
            }
            Endpoint::Proof { epoch, actor } => self.proof(tenant(principal)?, epoch, actor),
            Endpoint::Reload => self.reload_endpoint(),
        }
    }
}
