//! The transport-agnostic request handler of API.md: routing, authentication, tenant
//! isolation, the sealed stores, computes, proofs, metrics. A host (micronode, macronode,
//! embedded node) turns HTTP into a [`Request`] and a [`Response`] back into HTTP; nothing in
//! here touches a socket, a thread, the clock or the file system (those come in as traits).
//!
//! One request goes in two phases. The head phase ([`Service::admit`]), from the request line
//! and headers alone: [`router`] (404/405) → [`auth`] (401/403) → the tenant's token bucket
//! (429); a host reads the body only once it passed. The body phase ([`Service::answer`]): the
//! body cap (413) → the endpoint's handler (`handlers`, `compute`) over the bounded stores
//! (`store`, shared fairly between tenants by `fair` over `lru`), with `/metrics` fed by
//! [`metrics`]. The handler is `Sync` and holds its locks only around map operations, never
//! across a compute, so a pool of workers can share one.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use crate::error::{Code, Error};
use crate::inputs::Limits;
use crate::result::Rows;
use crate::sign::SigningKeys;

/// A `tracing` span for one phase of a request (`parse`, `compute`, `sign`, `egress`,
/// `egress_batch`), opened under the current span only while there is one: the host opens a
/// `request` span (with the correlation id) for the requests it traces, so an untraced
/// request, a test or the FFI pays one thread-local look-up and opens nothing.
macro_rules! phase_span {
    ($name:literal $(, $($fields:tt)+)?) => {{
        let parent = tracing::Span::current();
        if parent.is_disabled() {
            tracing::Span::none()
        } else {
            tracing::info_span!(parent: &parent, $name $(, $($fields)+)?)
        }
    }};
}

pub mod auth;
pub mod durable;
pub mod egress;
mod fair;
mod handlers;
mod inflight;
pub mod ledger;
mod lru;
pub mod metrics;
mod quarantine;
mod rate;
pub mod router;
mod store;

pub use durable::{Cursor, DurableRun, QueueStore, StoreError};
pub use egress::{DrainReport, EgressConfig};
pub use ledger::{
    Intent, IntentOutcome, Ledger, LedgerError, LedgerErrorKind, Pacer, Registration, RunRegistration,
    Verdict,
};
pub use metrics::{IntentResult, Metrics, ProcessProbe, ProcessStats, Rejection};

/// One HTTP request as the host received it, body already decoded (gzip removed) and bounded.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `PUT`, `POST`, …
    pub method: &'a str,
    /// Path and optional query, as on the request line (percent-encoded).
    pub url: &'a str,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// The decoded body.
    pub body: &'a [u8],
    /// The correlation id the host took from `X-Corr-ID` or generated.
    pub corr_id: &'a str,
}

/// A request head as the host parsed it: all the head phase ([`Service::admit`]) needs to
/// decide, before a byte of the body is read, whether the body is wanted at all.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    /// `GET`, `PUT`, `POST`, …
    pub method: &'a str,
    /// Path and optional query, as on the request line (percent-encoded).
    pub url: &'a str,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// The correlation id the host took from `X-Corr-ID` or generated.
    pub corr_id: &'a str,
}

/// A head the service accepted: routed, authenticated, within its tenant's rate. It owns what
/// it holds, so the body phase ([`Service::answer`]) may run on another thread once the host
/// has read the body.
#[derive(Debug)]
pub struct Admitted {
    routed: router::Routed<'static>,
    principal: Option<auth::Principal>,
    route: &'static str,
    body_max: usize,
}

impl Admitted {
    /// The most body bytes (decoded) this request may carry: more is `413 body_too_large`.
    pub fn body_max(&self) -> usize {
        self.body_max
    }

    /// The bounded route label (metrics, logs).
    pub fn route(&self) -> &'static str {
        self.route
    }

    /// Whether this is an open probe (`/healthz`, `/readyz`, `/metrics`, `/version`,
    /// `/rewarder/keys`): no scope, microseconds to answer, so a host answers it without queueing it behind
    /// computes.
    pub fn is_probe(&self) -> bool {
        self.routed.endpoint.scope().is_none()
    }
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// `application/json`; the Prometheus text type for `/metrics`; HTML for a compare report.
    pub content_type: &'static str,
    /// Seconds for a `Retry-After` header (429 and 503 always carry one).
    pub retry_after_s: Option<u32>,
    /// The body, or with [`Response::shared`] the body around the shared bytes.
    pub body: Vec<u8>,
    /// Bytes kept elsewhere that belong in the body at their offset (a stored run's rendered
    /// `allocations` array, most of a full answer): a host writes them from where they are
    /// kept instead of copying them into the body. [`Service::handle`] answers them spliced in.
    pub shared: Option<Shared>,
}

/// Bytes of an answer shared with the store (see [`Response::shared`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    /// Where in [`Response::body`] the bytes go.
    pub at: usize,
    /// The bytes: a run's rendered `allocations` array, in its pieces.
    pub rows: Arc<Rows>,
}

/// A host that sends a full compute answer while its `allocations` rows are still being
/// rendered (the HTTP server, with chunked framing). A new run's answer is known but for its
/// rows once the run is signed and handed to the ledger; the rows of a large run take
/// milliseconds to render, and sending each piece as it is done lets the answer move while
/// it is made.
///
/// [`Service::answer_streaming`] calls [`Stream::start`] at most once, then
/// [`Stream::piece`] for every piece of the rows, in order; the [`Response`] it then returns
/// is the whole answer as [`Service::answer`] gives it, of which the host has sent
/// `body[..shared.at]` and the rows, and owes `body[shared.at..]`. When `start` was not
/// called, nothing was sent.
pub trait Stream {
    /// The answer's status and its body up to the rows.
    fn start(&mut self, status: u16, before_rows: &[u8]);
    /// The next piece of the rows.
    fn piece(&mut self, piece: &Arc<Vec<u8>>);
}

/// The JSON content type.
pub const JSON: &str = "application/json";
/// The content type of a compare report (API.md §1.3).
pub const HTML: &str = "text/html; charset=utf-8";
/// The Prometheus text exposition 0.0.4 content type.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";

impl Response {
    /// The bytes of the whole body, shared ones included.
    pub fn body_len(&self) -> usize {
        self.body.len() + self.shared.as_ref().map_or(0, |s| s.rows.len())
    }

    /// The answer with its shared bytes copied into the body.
    pub fn spliced(mut self) -> Response {
        if let Some(s) = self.shared.take() {
            self.body = crate::result::spliced(&self.body, s.at, &s.rows);
        }
        self
    }

    /// The API.md §2 error envelope for `error`, with `Retry-After` on 429 and 503.
    pub fn error(error: &Error, corr_id: &str) -> Response {
        let status = error.status();
        let retry_after_s = match status {
            429 | 503 => {
                Some(error.details().get("retry_after").and_then(|v| v.as_u64()).unwrap_or(1) as u32)
            }
            _ => None,
        };
        Response {
            status,
            content_type: JSON,
            retry_after_s,
            body: error.envelope(corr_id).to_string().into_bytes(),
            shared: None,
        }
    }
}

/// Time, supplied by the host.
pub trait Clock: Send + Sync {
    /// Monotonic time since an arbitrary fixed origin (rate limits, latency).
    fn monotonic(&self) -> Duration;
    /// Seconds since the Unix epoch (token `exp` and `nbf`).
    fn unix_seconds(&self) -> u64;
}

/// Where a host keeps sealed documents and run records beside memory (the micronode's
/// amnesia directory). A spill ([`Kept::is_spilled`]: failed, or slower than the budget)
/// means the artifact could not be kept there: the service then keeps it in memory and counts
/// `amnesia_spill_total`.
pub trait Artifacts: Send + Sync {
    /// Keeps `bytes` under `name` (a content id or run id: `[a-z0-9:._-]`).
    fn keep(&self, name: &str, bytes: &[u8]) -> Kept;

    /// Takes back what [`Artifacts::keep`] wrote under `name` ([`Kept::is_written`]), and the
    /// `bytes_len` it counted: a large upload is written beside its parse, before the service
    /// knows whether it will store the document, and a refused one must leave nothing behind.
    /// A host that writes nothing has nothing to take back.
    fn discard(&self, _name: &str, _bytes_len: usize) {}
}

/// What [`Artifacts::keep`] did with an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Written by this call.
    Written,
    /// Written by this call, but slower than the host's budget: counted as a spill.
    WrittenLate,
    /// Nothing written by this call: the host already held it (an artifact of the same name
    /// and length), or keeps artifacts in memory only.
    Held,
    /// Not kept (the write failed, or would pass the host's byte budget): the service keeps
    /// it in memory and counts `amnesia_spill_total`.
    Spilled,
}

impl Kept {
    /// Whether this call wrote the artifact ([`Artifacts::discard`] takes it back).
    pub fn is_written(self) -> bool {
        matches!(self, Kept::Written | Kept::WrittenLate)
    }

    /// Whether it counts as a spill.
    pub fn is_spilled(self) -> bool {
        matches!(self, Kept::WrittenLate | Kept::Spilled)
    }
}

/// Two pieces of work at once, where the host has a second thread to give: a node runs the
/// post-quantum signature (about a millisecond) beside storing, settling and rendering the
/// rest of the answer, so that `REQUIRE_PQ_ON` costs latency only where the two cannot
/// overlap, and hashes a large new upload (its content id) beside parsing it.
/// [`Sequential`] is the default.
pub trait Overlap: Send + Sync {
    /// Runs both to completion before returning.
    fn both(&self, side: &mut (dyn FnMut() + Send), main: &mut dyn FnMut());
}

/// [`Overlap`] without a second thread: `side`, then `main`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequential;

impl Overlap for Sequential {
    fn both(&self, side: &mut (dyn FnMut() + Send), main: &mut dyn FnMut()) {
        side();
        main();
    }
}

/// Re-reads the hot-reloadable knobs (`SIGHUP`, `POST /rewarder/admin/reload`).
pub trait Reload: Send + Sync {
    /// The new knobs, or why they are refused (the old ones are then kept).
    fn hot_knobs(&self) -> Result<HotKnobs, String>;
}

/// The knobs that change without a restart (API.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotKnobs {
    /// `TENANT_RPS_MAX`: per-tenant token-bucket rate.
    pub tenant_rps_max: u32,
    /// `MAX_INFLIGHT`: computes in flight beyond which `503 overloaded`.
    pub max_inflight: u32,
    /// `WORK_QUEUE_MAX`: the pool's queue bound (read by the macronode's dispatcher).
    pub work_queue_max: u32,
    /// `LEDGER_QUARANTINE_ONLY`: the operator's switch that queues intents without sending
    /// any (drills, incidents); `/readyz` and the `ledger_quarantine_only` gauge show it.
    pub ledger_quarantine_only: bool,
}

impl Default for HotKnobs {
    fn default() -> Self {
        HotKnobs {
            tenant_rps_max: 100,
            max_inflight: 512,
            work_queue_max: 4096,
            ledger_quarantine_only: false,
        }
    }
}

/// Which node serves (`/version`'s `profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// One request thread, amnesia.
    Micronode,
    /// A worker pool with admission control.
    Macronode,
    /// The micronode inside an app.
    Embedded,
}

impl Profile {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Micronode => "micronode",
            Profile::Macronode => "macronode",
            Profile::Embedded => "embedded",
        }
    }
}

/// What the host binary reports of its build in `/version` (API.md §1): core has no build of
/// its own to report, so the host passes the one it was compiled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Build {
    /// The target triple, e.g. `aarch64-unknown-linux-musl`.
    pub target: &'static str,
    /// The git revision built, or `unknown`.
    pub git_revision: &'static str,
}

/// Everything a service is built from that does not change while it runs.
pub struct Config {
    /// Which node this is.
    pub profile: Profile,
    /// `AUTH_KEYS` as `(kid, key bytes)`; `None` = authentication off (tenant `default`).
    pub auth_keys: Option<Vec<(String, Vec<u8>)>>,
    /// Bounds on documents (actors, events).
    pub limits: Limits,
    /// `REQ_BODY_MAX_BYTES`.
    pub req_body_max_bytes: usize,
    /// `INPUTS_MAX_BYTES`.
    pub inputs_max_bytes: usize,
    /// `RUNS_MAX`: stored runs kept; when full, the tenant holding the most runs loses its
    /// least recently used first (a tenant under its fair share never does).
    pub runs_max: usize,
    /// `RUNS_MAX_BYTES`: estimated bytes of stored runs kept, shared between tenants as
    /// `runs_max` is.
    pub runs_max_bytes: usize,
    /// `DOCUMENTS_MAX_BYTES`: estimated bytes of parsed documents kept per node; when full, the
    /// tenant holding the most bytes loses its least recently used first.
    pub documents_max_bytes: usize,
    /// `TENANT_STORE_MAX_BYTES`: estimated bytes of parsed documents one tenant keeps at most
    /// (its own least recently used make room; one document heavier is `413 quota_exceeded`);
    /// `None` = no quota.
    pub tenant_store_max_bytes: Option<usize>,
    /// `TENANT_RUNS_MAX`: stored runs one tenant keeps at most (its own least recently used
    /// make room); `None` = no quota.
    pub tenant_runs_max: Option<usize>,
    /// The signing keys (ML-DSA-65 present exactly when PQ is required).
    pub keys: SigningKeys,
    /// The hot knobs at start.
    pub hot: HotKnobs,
    /// Extra `/version` features of the host (e.g. `tls`, `gzip`).
    pub features: Vec<&'static str>,
}

/// The handler: `Sync`, so a pool of workers may share one.
pub struct Service {
    config: Config,
    clock: Arc<dyn Clock>,
    artifacts: Arc<dyn Artifacts>,
    reload: Arc<dyn Reload>,
    overlap: Arc<dyn Overlap>,
    /// `None` = authentication off.
    keyring: Option<auth::Keyring>,
    hot: RwLock<HotKnobs>,
    documents: Mutex<store::Documents>,
    runs: Mutex<store::Runs>,
    buckets: Mutex<rate::TenantBuckets>,
    inflight: inflight::InflightLimit,
    metrics: Metrics,
    /// Host components marked not ready (`/readyz` lists them under `missing`).
    missing: Mutex<Vec<&'static str>>,
    /// The `/version` body, fixed at start.
    version_body: Vec<u8>,
    /// The `/rewarder/keys` body, fixed at start.
    keys_body: Vec<u8>,
    /// The ledger side ([`Service::with_ledger`]); `None` = compute-only, every run dry.
    egress: Option<egress::Egress>,
    /// The host's measure of its process ([`Service::with_process_probe`]).
    process: Option<Arc<dyn ProcessProbe>>,
}

impl Service {
    /// A service from its configuration and the host's capabilities.
    ///
    /// The auth keys move out of `config` into the service's keyring (one copy of secrets).
    pub fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        artifacts: Arc<dyn Artifacts>,
        reload: Arc<dyn Reload>,
    ) -> Service {
        let mut config = config;
        let keyring = config.auth_keys.take().map(auth::Keyring::new);
        let version_body = handlers::version_body(&config, keyring.is_some(), None);
        let keys_body = handlers::keys_body(&config);
        let metrics = Metrics::new(config.profile);
        metrics.set_hot(&config.hot);
        Service {
            keyring,
            hot: RwLock::new(config.hot),
            documents: Mutex::new(store::Documents::new(
                config.documents_max_bytes,
                config.tenant_store_max_bytes,
            )),
            runs: Mutex::new(store::Runs::new(
                config.runs_max,
                config.runs_max_bytes,
                config.tenant_runs_max,
            )),
            buckets: Mutex::new(rate::TenantBuckets::new()),
            inflight: inflight::InflightLimit::default(),
            metrics,
            missing: Mutex::new(Vec::new()),
            version_body,
            keys_body,
            egress: None,
            process: None,
            config,
            clock,
            artifacts,
            reload,
            overlap: Arc::new(Sequential),
        }
    }

    /// The same service, overlapping signatures with the rest of an answer on the host's
    /// threads (see [`Overlap`]).
    pub fn with_overlap(mut self, overlap: Arc<dyn Overlap>) -> Service {
        self.overlap = overlap;
        self
    }

    /// The same service, with the host binary's [`Build`] under `build` in `/version`.
    pub fn with_build(mut self, build: &Build) -> Service {
        self.version_body = handlers::version_body(&self.config, self.keyring.is_some(), Some(build));
        self
    }

    /// The same service, appending the host's `process_*` series to `/metrics` (see
    /// [`ProcessProbe`]).
    pub fn with_process_probe(mut self, probe: Arc<dyn ProcessProbe>) -> Service {
        self.process = Some(probe);
        self
    }

    /// The body cap for a request line, so the host can refuse before reading (`413`):
    /// `INPUTS_MAX_BYTES` for `PUT /rewarder/inputs`, `REQ_BODY_MAX_BYTES` otherwise.
    pub fn body_limit(&self, method: &str, url: &str) -> usize {
        let path = url.split('?').next().unwrap_or(url);
        if method == "PUT" && path == "/rewarder/inputs" {
            self.config.inputs_max_bytes
        } else {
            self.config.req_body_max_bytes
        }
    }

    /// Answers one request: [`Service::admit`] then [`Service::answer`], for hosts that hold
    /// the whole request at once (the FFI, tests, fuzzing). Never panics on input; every
    /// error is the JSON envelope. Counts the response under `http_requests_total` itself.
    pub fn handle(&self, request: &Request<'_>) -> Response {
        let head = Head {
            method: request.method,
            url: request.url,
            authorization: request.authorization,
            corr_id: request.corr_id,
        };
        match self.admit(&head) {
            Ok(admitted) => self.answer(&admitted, request.body, request.corr_id).spliced(),
            Err(refused) => refused,
        }
    }

    /// The head phase: routes (`404`, `405`, `400` for an undecodable path), authenticates
    /// (`401`, `403`), and takes a token from the tenant's bucket (`429`), from the head alone.
    /// A refusal is the answer to send (already counted); the host then reads no body.
    pub fn admit(&self, head: &Head<'_>) -> Result<Admitted, Response> {
        let route = router::label(head.url);
        let admitted = router::route(head.method, head.url).and_then(|routed| {
            let principal = match routed.endpoint.scope() {
                None => None,
                Some(scope) => Some(self.authorize(head.authorization, scope)?),
            };
            Ok(Admitted {
                routed: routed.into_owned(),
                principal,
                route,
                body_max: self.body_limit(head.method, head.url),
            })
        });
        admitted.map_err(|error| {
            let response = Response::error(&error, head.corr_id);
            self.metrics.http(route, response.status);
            response
        })
    }

    /// The body phase: runs the admitted request's handler over its decoded body. Counts the
    /// response under `http_requests_total`. A full result may come with [`Response::shared`].
    pub fn answer(&self, admitted: &Admitted, body: &[u8], corr_id: &str) -> Response {
        self.answer_to(admitted, body, corr_id, None)
    }

    /// [`Service::answer`], sending a new run's full answer through `stream` while its rows
    /// are rendered (see [`Stream`]).
    pub fn answer_streaming(
        &self,
        admitted: &Admitted,
        body: &[u8],
        corr_id: &str,
        stream: &mut dyn Stream,
    ) -> Response {
        self.answer_to(admitted, body, corr_id, Some(stream))
    }

    fn answer_to(
        &self,
        admitted: &Admitted,
        body: &[u8],
        corr_id: &str,
        stream: Option<&mut dyn Stream>,
    ) -> Response {
        let served = if body.len() > admitted.body_max {
            Err(Error::new(Code::BodyTooLarge, format!("the body exceeds {} bytes", admitted.body_max)))
        } else {
            self.serve(&admitted.routed, admitted.principal.as_ref(), body, stream)
        };
        let response = served.unwrap_or_else(|error| Response::error(&error, corr_id));
        self.metrics.http(admitted.route, response.status);
        response
    }

    /// Records an HTTP exchange the host answered itself (framing errors, oversize bodies),
    /// so `http_requests_total` counts every response. `route` may be the request's URL or
    /// one of [`router::ROUTE_LABELS`]; either way it is counted under its bounded template
    /// (or `unmatched`), never as a raw path.
    pub fn record_http(&self, route: &str, status: u16) {
        self.metrics.http(router::label(route), status);
    }

    /// The bounded metrics/log label of a URL: its route template or `unmatched`.
    pub fn route_label(url: &str) -> &'static str {
        router::label(url)
    }

    /// The metrics, for the host's setters (`queue_depth`, `rejected_total`, ledger series).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The Prometheus text exposition (what `GET /metrics` answers).
    pub fn metrics_text(&self) -> String {
        let process = self.process.as_ref().and_then(|p| p.sample());
        self.metrics.render(self.inflight.current(), self.ready(), process.as_ref())
    }

    /// The hot knobs in force (the macronode's dispatcher reads `work_queue_max` here).
    pub fn hot(&self) -> HotKnobs {
        *self.hot.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Re-reads the hot knobs through [`Reload::hot_knobs`] (SIGHUP, `POST /rewarder/admin/reload`):
    /// on success they replace the old ones at once and are returned; on refusal the old ones
    /// stay in force and the reason is returned for the host to log.
    pub fn reload_now(&self) -> Result<HotKnobs, String> {
        let knobs = self.reload.hot_knobs()?;
        let mut hot = self.hot.write().unwrap_or_else(PoisonError::into_inner);
        *hot = knobs;
        self.metrics.set_hot(&knobs);
        Ok(knobs)
    }

    /// Whether `/readyz` answers 200: keys and stores are up by construction, so the node is
    /// ready unless the host marked a component missing ([`Service::mark_missing`]). A
    /// degraded ledger does not make it unready (it can still compute).
    pub fn ready(&self) -> bool {
        lock(&self.missing).is_empty()
    }

    /// Marks a host component (e.g. `"amnesia_dir"`, `"ledger_client"`) missing or back;
    /// while any is missing `/readyz` answers `503` listing them.
    pub fn mark_missing(&self, component: &'static str, missing: bool) {
        let mut list = lock(&self.missing);
        list.retain(|c| *c != component);
        if missing {
            list.push(component);
        }
    }

    /// Authenticates, checks the scope, then takes a token from the tenant's bucket.
    fn authorize(&self, authorization: Option<&str>, scope: auth::Scopes) -> Result<auth::Principal, Error> {
        let principal = match &self.keyring {
            None => auth::Principal::anonymous(),
            Some(ring) => ring.authenticate(authorization, self.clock.unix_seconds())?,
        };
        if !principal.scopes.contains(scope) {
            return Err(Error::new(Code::Forbidden, format!("the token lacks the {} scope", scope.name()))
                .with_detail("scope", scope.name()));
        }
        let rate = self.hot().tenant_rps_max;
        let admitted = lock(&self.buckets).admit(&principal.tenant, self.clock.monotonic(), rate);
        if let Err(retry_after) = admitted {
            self.metrics.reject(Rejection::RateLimited);
            return Err(Error::new(Code::RateLimited, "tenant request rate exceeded")
                .with_detail("retry_after", retry_after));
        }
        Ok(principal)
    }
}

/// Locks a mutex, going on past a poisoned one: every critical section here leaves its map
/// consistent between operations, and a handler must answer rather than panic again.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Still;
    impl Clock for Still {
        fn monotonic(&self) -> Duration {
            Duration::from_secs(1)
        }
        fn unix_seconds(&self) -> u64 {
            1_800_000_000
        }
    }
    impl Artifacts for Still {
        fn keep(&self, _: &str, _: &[u8]) -> Kept {
            Kept::Held
        }
    }
    impl Reload for Still {
        fn hot_knobs(&self) -> Result<HotKnobs, String> {
            Err("no".into())
        }
    }

    fn service() -> Service {
        let config = Config {
            profile: Profile::Macronode,
            auth_keys: None,
            limits: Limits::UNBOUNDED,
            req_body_max_bytes: 1 << 20,
            inputs_max_bytes: 1 << 20,
            runs_max: 8,
            runs_max_bytes: usize::MAX,
            documents_max_bytes: 1 << 20,
            tenant_store_max_bytes: None,
            tenant_runs_max: None,
            keys: SigningKeys::from_seeds(&[1; 32], None),
            hot: HotKnobs::default(),
            features: Vec::new(),
        };
        Service::new(config, Arc::new(Still), Arc::new(Still), Arc::new(Still))
    }

    #[test]
    fn invariant_violations_are_counted_apart_from_other_failures() {
        let s = service();
        s.count_failed_run(&Error::new(Code::InvariantViolation, "conservation"));
        s.count_failed_run(&Error::new(Code::Internal, "other"));
        let text = s.metrics_text();
        assert!(text.contains("reward_invariant_fail_total 1\n"), "{text}");
        assert!(text.contains("reward_runs_total{status=\"invariant_violation\"} 1\n"));
        assert!(text.contains("reward_runs_total{status=\"error\"} 1\n"));
    }

    #[test]
    fn host_components_mark_readiness() {
        let s = service();
        assert!(s.ready());
        s.mark_missing("ledger_client", true);
        s.mark_missing("ledger_client", true);
        assert!(!s.ready());
        assert_eq!(*lock(&s.missing), vec!["ledger_client"]);
        s.mark_missing("ledger_client", false);
        assert!(s.ready());
    }

    #[test]
    fn a_refused_reload_keeps_the_knobs() {
        let s = service();
        assert_eq!(s.reload_now(), Err("no".to_owned()));
        assert_eq!(s.hot(), HotKnobs::default());
    }
}
