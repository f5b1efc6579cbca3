//! Routing of API.md §1: a request line to one endpoint with its decoded path parameters and
//! query, the scope it needs, and the bounded label it is counted under in metrics.
//!
//! Path parameters are split on the raw path and then percent-decoded, so an actor id may hold
//! any byte once encoded (`%2F`, `%25`, `%3F`, `%23`, …). The actor is everything after
//! `/proof/`, so an unencoded `/` inside it works too. The router knows nothing of tenants,
//! stores or tokens.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use super::auth::Scopes;
use crate::error::{Code, Error};

/// Label of a request that matched no route (metrics never see the raw path).
pub const UNMATCHED: &str = "unmatched";

/// Every route label, in the order of API.md §1 (the bounded `route` label set).
pub const ROUTE_LABELS: [&str; 13] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/version",
    "/rewarder/keys",
    "/rewarder/inputs",
    "/rewarder/policies",
    "/rewarder/epochs/{epoch}/compute",
    "/rewarder/epochs/{epoch}/compare",
    "/rewarder/epochs/{epoch}",
    "/rewarder/epochs/{epoch}/proof/{actor}",
    "/rewarder/admin/reload",
    UNMATCHED,
];

/// The endpoints of API.md §1, with their decoded path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint<'a> {
    /// `GET /healthz`.
    Healthz,
    /// `GET /readyz`.
    Readyz,
    /// `GET /metrics`.
    Metrics,
    /// `GET /version`.
    Version,
    /// `GET /rewarder/keys`.
    Keys,
    /// `PUT /rewarder/inputs`.
    PutInputs,
    /// `PUT /rewarder/policies`.
    PutPolicy,
    /// `POST /rewarder/epochs/{epoch}/compute`.
    Compute { epoch: Cow<'a, str> },
    /// `POST /rewarder/epochs/{epoch}/compare`; `html` when `?format=html` asks for the report.
    Compare { epoch: Cow<'a, str>, html: bool },
    /// `GET /rewarder/epochs/{epoch}`.
    Epoch { epoch: Cow<'a, str> },
    /// `GET /rewarder/epochs/{epoch}/proof/{actor}`.
    Proof { epoch: Cow<'a, str>, actor: Cow<'a, str> },
    /// `POST /rewarder/admin/reload`.
    Reload,
}

/// A routed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Routed<'a> {
    /// Which endpoint.
    pub(crate) endpoint: Endpoint<'a>,
    /// `?allocations=false` omits the allocation list (default true).
    pub(crate) with_allocations: bool,
}

impl Routed<'_> {
    /// The same route owning its parameters, so it can wait for its body on another thread.
    pub(crate) fn into_owned(self) -> Routed<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        let endpoint = match self.endpoint {
            Endpoint::Healthz => Endpoint::Healthz,
            Endpoint::Readyz => Endpoint::Readyz,
            Endpoint::Metrics => Endpoint::Metrics,
            Endpoint::Version => Endpoint::Version,
            Endpoint::Keys => Endpoint::Keys,
            Endpoint::PutInputs => Endpoint::PutInputs,
            Endpoint::PutPolicy => Endpoint::PutPolicy,
            Endpoint::Reload => Endpoint::Reload,
            Endpoint::Compute { epoch } => Endpoint::Compute { epoch: own(epoch) },
            Endpoint::Compare { epoch, html } => Endpoint::Compare { epoch: own(epoch), html },
            Endpoint::Epoch { epoch } => Endpoint::Epoch { epoch: own(epoch) },
            Endpoint::Proof { epoch, actor } => Endpoint::Proof { epoch: own(epoch), actor: own(actor) },
        };
        Routed { endpoint, with_allocations: self.with_allocations }
    }
}

impl Endpoint<'_> {
    /// The scope the endpoint needs; `None` for the open probes.
    pub(crate) fn scope(&self) -> Option<Scopes> {
        match self {
            Endpoint::Healthz | Endpoint::Readyz | Endpoint::Metrics | Endpoint::Version | Endpoint::Keys => {
                None
            }
            Endpoint::PutInputs
            | Endpoint::PutPolicy
            | Endpoint::Compute { .. }
            | Endpoint::Compare { .. } => Some(Scopes::COMPUTE),
            Endpoint::Epoch { .. } | Endpoint::Proof { .. } => Some(Scopes::READ),
            Endpoint::Reload => Some(Scopes::ADMIN),
        }
    }
}

/// A path's shape, before the method is considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape<'a> {
    Static(usize),
    Compute(&'a str),
    Compare(&'a str),
    Epoch(&'a str),
    Proof(&'a str, &'a str),
}

/// Where the static paths sit in [`ROUTE_LABELS`]: the probes, the keys and the uploads first,
/// the reload after the epoch routes.
const STATIC_HEAD: usize = 7;
const RELOAD: usize = 11;
const _: () = assert!(RELOAD + 2 == ROUTE_LABELS.len(), "reload comes last before unmatched");

impl Shape<'_> {
    /// Index into [`ROUTE_LABELS`].
    fn label_index(self) -> usize {
        match self {
            Shape::Static(i) => i,
            Shape::Compute(_) => 7,
            Shape::Compare(_) => 8,
            Shape::Epoch(_) => 9,
            Shape::Proof(..) => 10,
        }
    }

    /// The one method the shape answers to.
    fn method(self) -> &'static str {
        match self {
            Shape::Static(5 | 6) => "PUT",
            Shape::Static(RELOAD) | Shape::Compute(_) | Shape::Compare(_) => "POST",
            _ => "GET",
        }
    }
}

fn split_url(url: &str) -> (&str, &str) {
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    url.split_once('?').unwrap_or((url, ""))
}

fn shape(path: &str) -> Option<Shape<'_>> {
    if let Some(i) = ROUTE_LABELS[..STATIC_HEAD].iter().position(|l| *l == path) {
        return Some(Shape::Static(i));
    }
    if path == ROUTE_LABELS[RELOAD] {
        return Some(Shape::Static(RELOAD));
    }
    let rest = path.strip_prefix("/rewarder/epochs/")?;
    let (epoch, tail) = rest.split_once('/').unwrap_or((rest, ""));
    if epoch.is_empty() {
        return None;
    }
    match tail {
        "" if !rest.ends_with('/') => Some(Shape::Epoch(epoch)),
        "compute" => Some(Shape::Compute(epoch)),
        "compare" => Some(Shape::Compare(epoch)),
        _ => match tail.strip_prefix("proof/") {
            Some(actor) if !actor.is_empty() => Some(Shape::Proof(epoch, actor)),
            _ => None,
        },
    }
}

/// The bounded metrics label of a URL (or of a label already): a route template or
/// [`UNMATCHED`], whatever the method.
pub fn label(url: &str) -> &'static str {
    if let Some(known) = ROUTE_LABELS.iter().find(|l| **l == url) {
        return known;
    }
    let (path, _) = split_url(url);
    shape(path).map_or(UNMATCHED, |s| ROUTE_LABELS[s.label_index()])
}

fn decode<'a>(raw: &'a str, what: &str) -> Result<Cow<'a, str>, Error> {
    percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Error::new(Code::BadRequest, format!("{what} is not UTF-8 once percent-decoded")))
}

/// The decoded value of the last `key=value` pair of `query` named `name`, if any; a key or
/// value that does not decode is `400 bad_request` whatever its name.
fn query_value<'a>(query: &'a str, name: &str) -> Result<Option<Cow<'a, str>>, Error> {
    let mut found = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(key, "a query key")? == name {
            found = Some(decode(value, "a query value")?);
        }
    }
    Ok(found)
}

/// `allocations` (every route): `true`/`1` (the default) or `false`/`0`.
fn parse_allocations(query: &str) -> Result<bool, Error> {
    match query_value(query, "allocations")?.as_deref() {
        None | Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(_) => Err(Error::field(Code::BadRequest, "allocations", "allocations must be true or false")),
    }
}

/// `format` (the compare route only): `json` (the default) or `html`, the report.
fn parse_html(query: &str) -> Result<bool, Error> {
    match query_value(query, "format")?.as_deref() {
        None | Some("json") => Ok(false),
        Some("html") => Ok(true),
        Some(_) => Err(Error::field(Code::BadRequest, "format", "format must be json or html")),
    }
}

/// Routes a request line: `404 not_found`, `405 method_not_allowed` (with `details.allow`),
/// or `400 bad_request` for a path or query that does not decode.
pub(crate) fn route<'a>(method: &str, url: &'a str) -> Result<Routed<'a>, Error> {
    let (path, query) = split_url(url);
    let shape = shape(path).ok_or_else(|| Error::new(Code::NotFound, "no route for this path"))?;
    // HEAD is answered wherever GET is (RFC 9110 §9.3.2): the same answer, whose body the host
    // leaves out.
    let head_of_get = method == "HEAD" && shape.method() == "GET";
    if method != shape.method() && !head_of_get {
        return Err(Error::new(Code::MethodNotAllowed, format!("{method} is not allowed here"))
            .with_detail("allow", shape.method()));
    }
    let endpoint = match shape {
        Shape::Static(0) => Endpoint::Healthz,
        Shape::Static(1) => Endpoint::Readyz,
        Shape::Static(2) => Endpoint::Metrics,
        Shape::Static(3) => Endpoint::Version,
        Shape::Static(4) => Endpoint::Keys,
        Shape::Static(5) => Endpoint::PutInputs,
        Shape::Static(6) => Endpoint::PutPolicy,
        Shape::Static(_) => Endpoint::Reload,
        Shape::Compute(epoch) => Endpoint::Compute { epoch: decode(epoch, "the epoch")? },
        Shape::Compare(epoch) => {
            Endpoint::Compare { epoch: decode(epoch, "the epoch")?, html: parse_html(query)? }
        }
        Shape::Epoch(epoch) => Endpoint::Epoch { epoch: decode(epoch, "the epoch")? },
        Shape::Proof(epoch, actor) => {
            Endpoint::Proof { epoch: decode(epoch, "the epoch")?, actor: decode(actor, "the actor")? }
        }
    };
    Ok(Routed { endpoint, with_allocations: parse_allocations(query)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(method: &str, url: &str) -> Endpoint<'static> {
        let url: &'static str = Box::leak(url.to_owned().into_boxed_str());
        route(method, url).unwrap().endpoint
    }

    fn err(method: &str, url: &str) -> Code {
        route(method, url).unwrap_err().code()
    }

    #[test]
    fn every_route_of_the_table() {
        assert_eq!(ok("GET", "/healthz"), Endpoint::Healthz);
        assert_eq!(ok("GET", "/readyz"), Endpoint::Readyz);
        assert_eq!(ok("GET", "/metrics"), Endpoint::Metrics);
        assert_eq!(ok("GET", "/version"), Endpoint::Version);
        assert_eq!(ok("GET", "/rewarder/keys"), Endpoint::Keys);
        assert_eq!(ok("PUT", "/rewarder/inputs"), Endpoint::PutInputs);
        assert_eq!(ok("PUT", "/rewarder/policies"), Endpoint::PutPolicy);
        assert_eq!(ok("POST", "/rewarder/epochs/e1/compute"), Endpoint::Compute { epoch: "e1".into() });
        assert_eq!(
            ok("POST", "/rewarder/epochs/e1/compare"),
            Endpoint::Compare { epoch: "e1".into(), html: false }
        );
        assert_eq!(ok("GET", "/rewarder/epochs/2026-11-29"), Endpoint::Epoch { epoch: "2026-11-29".into() });
        assert_eq!(
            ok("GET", "/rewarder/epochs/e1/proof/acct:bob"),
            Endpoint::Proof { epoch: "e1".into(), actor: "acct:bob".into() }
        );
        assert_eq!(ok("POST", "/rewarder/admin/reload"), Endpoint::Reload);
    }

    #[test]
    fn actor_ids_are_percent_decoded_and_may_hold_slashes() {
        assert_eq!(
            ok("GET", "/rewarder/epochs/e1/proof/a%2Fb%25c%3Fd%23e%20"),
            Endpoint::Proof { epoch: "e1".into(), actor: "a/b%c?d#e ".into() }
        );
        assert_eq!(
            ok("GET", "/rewarder/epochs/e1/proof/a/b/c?allocations=false"),
            Endpoint::Proof { epoch: "e1".into(), actor: "a/b/c".into() }
        );
        assert_eq!(ok("GET", "/rewarder/epochs/e%3A1"), Endpoint::Epoch { epoch: "e:1".into() });
        assert_eq!(err("GET", "/rewarder/epochs/e1/proof/%FF"), Code::BadRequest);
    }

    #[test]
    fn unknown_paths_and_wrong_methods() {
        for path in [
            "/",
            "/healthz/",
            "/rewarder",
            "/rewarder/epochs/",
            "/rewarder/epochs//compute",
            "/rewarder/epochs/e1/",
            "/rewarder/epochs/e1/proof/",
            "/rewarder/epochs/e1/other",
        ] {
            assert_eq!(err("GET", path), Code::NotFound, "{path}");
        }
        let e = route("GET", "/rewarder/epochs/e1/compute").unwrap_err();
        assert_eq!(e.code(), Code::MethodNotAllowed);
        assert_eq!(e.details()["allow"], "POST");
        assert_eq!(err("POST", "/healthz"), Code::MethodNotAllowed);
        assert_eq!(err("GET", "/rewarder/inputs"), Code::MethodNotAllowed);
        assert_eq!(err("POST", "/rewarder/keys"), Code::MethodNotAllowed);
        assert_eq!(err("get", "/healthz"), Code::MethodNotAllowed);
    }

    #[test]
    fn the_allocations_query() {
        let r = |url: &'static str| route("POST", url).map(|r| r.with_allocations);
        assert_eq!(r("/rewarder/epochs/e/compute"), Ok(true));
        assert_eq!(r("/rewarder/epochs/e/compute?allocations=false"), Ok(false));
        assert_eq!(r("/rewarder/epochs/e/compute?x=1&allocations=0&y"), Ok(false));
        assert_eq!(r("/rewarder/epochs/e/compute?allocations=true"), Ok(true));
        assert_eq!(r("/rewarder/epochs/e/compute?allocations=nope").unwrap_err().code(), Code::BadRequest);
    }

    #[test]
    fn the_format_query_chooses_the_compare_report_and_only_there() {
        let html = |url: &'static str| match route("POST", url).map(|r| r.endpoint) {
            Ok(Endpoint::Compare { html, .. }) => Ok(html),
            other => Err(other.map_err(|e| e.code())),
        };
        assert_eq!(html("/rewarder/epochs/e/compare"), Ok(false));
        assert_eq!(html("/rewarder/epochs/e/compare?format=json"), Ok(false));
        assert_eq!(html("/rewarder/epochs/e/compare?format=json&format=html"), Ok(true));
        assert_eq!(html("/rewarder/epochs/e/compare?format=%68tml"), Ok(true));
        let e = route("POST", "/rewarder/epochs/e/compare?format=pdf").unwrap_err();
        assert_eq!((e.code(), e.details()["field"].as_str()), (Code::BadRequest, Some("format")));
        assert!(route("POST", "/rewarder/epochs/e/compute?format=pdf").is_ok());
        assert_eq!(err("GET", "/rewarder/epochs/e/compare"), Code::MethodNotAllowed);
    }

    #[test]
    fn labels_are_bounded_templates() {
        assert_eq!(
            label("/rewarder/epochs/e1/compute?allocations=false"),
            "/rewarder/epochs/{epoch}/compute"
        );
        assert_eq!(label("/rewarder/epochs/e1/proof/acct:x"), "/rewarder/epochs/{epoch}/proof/{actor}");
        assert_eq!(label("/rewarder/epochs/e1/compare?format=html"), "/rewarder/epochs/{epoch}/compare");
        assert_eq!(label("/rewarder/admin/reload"), "/rewarder/admin/reload");
        assert_eq!(label("/rewarder/epochs/{epoch}"), "/rewarder/epochs/{epoch}");
        assert_eq!(label("/nope/secret-actor"), UNMATCHED);
        assert_eq!(label("/healthz"), "/healthz");
        assert_eq!(label(UNMATCHED), UNMATCHED);
    }
}
