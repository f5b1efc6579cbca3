//! Capability tokens of API.md §3: `Authorization: Bearer <JWT>`, HS256 compact JWS, the header's
//! `kid` naming one of `AUTH_KEYS`, claims `tenant`, `scope`, `exp` and optional `nbf`.
//!
//! Why not a JWT crate: `jsonwebtoken` — the usual choice — needs a crypto backend; its pure-Rust
//! one (`rust_crypto`) pulls `rsa`, `p256` and `p384` in with HMAC, for algorithms this API
//! refuses anyway (and `rsa` carries an unfixed timing advisory), and its other backend is
//! aws-lc (C). One algorithm over a three-part compact string is small enough to own: the
//! cryptography is RustCrypto's `hmac` + `sha2` (sha2 is already in the tree through
//! ed25519-dalek) and `base64ct`; the MAC is checked with `Mac::verify_slice`, a constant-time
//! comparison. Only `alg: "HS256"` is accepted, so `none` and algorithm confusion cannot occur.
//!
//! Time comes from the host's clock ([`super::Clock::unix_seconds`]) with no leeway: a token is
//! refused from its `exp` second on and before its `nbf` second. This module does not decide
//! which scope a route needs (the router does) and keeps no state.

use base64ct::{Base64UrlUnpadded, Encoding};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::error::{Code, Error};

/// Longest `Authorization` header value looked at; longer ones are refused unread.
pub const AUTH_TOKEN_MAX_BYTES: usize = 4096;

/// Seconds of clock skew tolerated around `exp` and `nbf`.
pub const CLOCK_LEEWAY_S: u64 = 0;

/// The tenant of every request when authentication is off.
pub const DEFAULT_TENANT: &str = "default";

/// Longest tenant name.
pub const TENANT_MAX_CHARS: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// What a token allows, as a small set of the scopes `compute`, `read` and `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scopes(u8);

impl Scopes {
    /// `compute`: store documents, run computes.
    pub(crate) const COMPUTE: Scopes = Scopes(1);
    /// `read`: results and proofs.
    pub(crate) const READ: Scopes = Scopes(2);
    /// `admin`: reload.
    pub(crate) const ADMIN: Scopes = Scopes(4);
    /// Every scope (authentication off).
    pub(crate) const ALL: Scopes = Scopes(7);

    /// Whether every scope of `other` is in `self`.
    pub(crate) fn contains(self, other: Scopes) -> bool {
        self.0 & other.0 == other.0
    }

    /// The wire name of a single scope.
    pub(crate) fn name(self) -> &'static str {
        match self.0 {
            1 => "compute",
            2 => "read",
            4 => "admin",
            _ => "compute read admin",
        }
    }

    /// A space-separated list of scope names; `None` when a name is unknown.
    fn parse(text: &str) -> Option<Scopes> {
        let mut scopes = Scopes(0);
        for name in text.split(' ').filter(|s| !s.is_empty()) {
            scopes.0 |= match name {
                "compute" => Scopes::COMPUTE.0,
                "read" => Scopes::READ.0,
                "admin" => Scopes::ADMIN.0,
                _ => return None,
            };
        }
        Some(scopes)
    }
}

/// Who is asking: the tenant whose data the request may touch, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    /// The tenant (`default` when authentication is off).
    pub(crate) tenant: String,
    /// The granted scopes.
    pub(crate) scopes: Scopes,
}

impl Principal {
    /// The principal of every request when authentication is off.
    pub(crate) fn anonymous() -> Principal {
        Principal { tenant: DEFAULT_TENANT.to_owned(), scopes: Scopes::ALL }
    }
}

/// Whether `tenant` is a valid tenant name: 1–64 chars of `[A-Za-z0-9._-]`.
pub fn valid_tenant(tenant: &str) -> bool {
    (1..=TENANT_MAX_CHARS).contains(&tenant.len())
        && tenant.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `scopes` is a space-separated subset of `compute read admin`.
pub fn valid_scopes(scopes: &str) -> bool {
    Scopes::parse(scopes).is_some()
}

/// Issues an HS256 token (the binaries' `mint-token`): header `{"alg":"HS256","typ":"JWT","kid"}`,
/// claims `{"tenant","scope","exp"[,"nbf"]}`. It signs what it is given; check the tenant and
/// scopes with [`valid_tenant`] and [`valid_scopes`] first, or the node will refuse the token.
pub fn mint(kid: &str, key: &[u8], tenant: &str, scopes: &str, exp: u64, nbf: Option<u64>) -> String {
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let mut claims = serde_json::json!({"tenant": tenant, "scope": scopes, "exp": exp});
    if let (Some(nbf), Some(obj)) = (nbf, claims.as_object_mut()) {
        obj.insert("nbf".to_owned(), nbf.into());
    }
    let mut token = Base64UrlUnpadded::encode_string(header.to_string().as_bytes());
    token.push('.');
    token.push_str(&Base64UrlUnpadded::encode_string(claims.to_string().as_bytes()));
    let signature = hmac(key, token.as_bytes()).finalize().into_bytes();
    token.push('.');
    token.push_str(&Base64UrlUnpadded::encode_string(&signature));
    token
}

/// HMAC-SHA256 keyed with `key`, over `signing_input`.
fn hmac(key: &[u8], signing_input: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (RFC 2104 hashes long ones), so this never fails.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(signing_input);
    mac
}

/// The `AUTH_KEYS` of a node: tokens signed by any of them are accepted (rotation).
pub(crate) struct Keyring {
    keys: Vec<(String, Vec<u8>)>,
}

impl Keyring {
    /// A keyring of `(kid, key)` pairs.
    pub(crate) fn new(keys: Vec<(String, Vec<u8>)>) -> Keyring {
        Keyring { keys }
    }

    /// The principal of an `Authorization` header at `now` (Unix seconds), or `401`.
    pub(crate) fn authenticate(&self, authorization: Option<&str>, now: u64) -> Result<Principal, Error> {
        let value = authorization.ok_or_else(|| refuse("missing bearer token"))?;
        if value.len() > AUTH_TOKEN_MAX_BYTES {
            return Err(refuse("token too long"));
        }
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim_matches(' '),
            _ => return Err(refuse("authorization is not a bearer token")),
        };
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refuse("token is not a compact JWS"));
        };

        let header = json_object(header_b64, "token header")?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return Err(refuse("token algorithm must be HS256"));
        }
        if header.contains_key("crit") {
            return Err(refuse("token has critical header parameters"));
        }
        let kid =
            header.get("kid").and_then(Value::as_str).ok_or_else(|| refuse("token header has no kid"))?;
        let (_, key) =
            self.keys.iter().find(|(k, _)| k == kid).ok_or_else(|| refuse("unknown token key id"))?;

        let signature =
            Base64UrlUnpadded::decode_vec(signature_b64).map_err(|_| refuse("malformed token"))?;
        let signing_input_len = header_b64.len() + 1 + claims_b64.len();
        let signing_input = &token.as_bytes()[..signing_input_len];
        hmac(key, signing_input).verify_slice(&signature).map_err(|_| refuse("bad token signature"))?;

        // Only now, authenticated, are the claims read.
        let claims = json_object(claims_b64, "token claims")?;
        let tenant = claims.get("tenant").and_then(Value::as_str).filter(|t| valid_tenant(t));
        let tenant = tenant.ok_or_else(|| refuse("token tenant missing or invalid"))?;
        let scopes = claims.get("scope").and_then(Value::as_str).and_then(Scopes::parse);
        let scopes = scopes.ok_or_else(|| refuse("token scope missing or invalid"))?;
        let exp = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or_else(|| refuse("token exp missing or invalid"))?;
        let nbf = match claims.get("nbf") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| refuse("token nbf invalid"))?),
        };
        if now >= exp.saturating_add(CLOCK_LEEWAY_S) {
            return Err(refuse("token expired"));
        }
        if nbf.is_some_and(|nbf| now.saturating_add(CLOCK_LEEWAY_S) < nbf) {
            return Err(refuse("token not yet valid"));
        }
        Ok(Principal { tenant: tenant.to_owned(), scopes })
    }
}

fn refuse(message: &str) -> Error {
    Error::new(Code::Unauthenticated, message)
}

fn json_object(b64: &str, what: &str) -> Result<Map<String, Value>, Error> {
    let malformed = || refuse(&format!("malformed {what}"));
    let bytes = Base64UrlUnpadded::decode_vec(b64).map_err(|_| malformed())?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn ring() -> Keyring {
        Keyring::new(vec![("k1".into(), b"secret-one".to_vec()), ("k2".into(), b"secret-two".to_vec())])
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    fn code(r: Result<Principal, Error>) -> Code {
        r.unwrap_err().code()
    }

    #[test]
    fn minted_tokens_authenticate_with_any_listed_key() {
        for (kid, key) in [("k1", &b"secret-one"[..]), ("k2", &b"secret-two"[..])] {
            let t = mint(kid, key, "tenant-b", "compute read", NOW + 60, Some(NOW - 1));
            let p = ring().authenticate(Some(&bearer(&t)), NOW).unwrap();
            assert_eq!(p.tenant, "tenant-b");
            assert!(p.scopes.contains(Scopes::COMPUTE) && p.scopes.contains(Scopes::READ));
            assert!(!p.scopes.contains(Scopes::ADMIN));
        }
        let t = mint("k1", b"secret-one", "t", "admin", NOW + 1, None);
        assert!(ring().authenticate(Some(&format!("bearer  {t}")), NOW).is_ok());
    }

    #[test]
    fn expiry_and_not_before_are_enforced_to_the_second() {
        let t = mint("k1", b"secret-one", "t", "read", NOW, None);
        assert_eq!(code(ring().authenticate(Some(&bearer(&t)), NOW)), Code::Unauthenticated);
        assert!(ring().authenticate(Some(&bearer(&t)), NOW - 1).is_ok());
        let t = mint("k1", b"secret-one", "t", "read", NOW + 10, Some(NOW + 1));
        assert!(ring().authenticate(Some(&bearer(&t)), NOW).is_err());
        assert!(ring().authenticate(Some(&bearer(&t)), NOW + 1).is_ok());
    }

    #[test]
    fn forged_unknown_kid_and_malformed_tokens_are_refused() {
        let forged = mint("k1", b"not-the-key", "t", "read", NOW + 60, None);
        let unknown = mint("k9", b"secret-one", "t", "read", NOW + 60, None);
        let bad_tenant = mint("k1", b"secret-one", "has space", "read", NOW + 60, None);
        let bad_scope = mint("k1", b"secret-one", "t", "read root", NOW + 60, None);
        let good = mint("k1", b"secret-one", "t", "read", NOW + 60, None);
        let (head, rest) = good.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let other_claims =
            Base64UrlUnpadded::encode_string(br#"{"tenant":"x","scope":"admin","exp":9999999999}"#);
        let swapped = format!("{head}.{other_claims}.{sig}");
        let none_alg =
            format!("{}.{}.", Base64UrlUnpadded::encode_string(br#"{"alg":"none","kid":"k1"}"#), {
                Base64UrlUnpadded::encode_string(br#"{"tenant":"x","scope":"admin","exp":9999999999}"#)
            });
        for header in [
            None,
            Some(bearer(&forged)),
            Some(bearer(&unknown)),
            Some(bearer(&bad_tenant)),
            Some(bearer(&bad_scope)),
            Some(bearer(&swapped)),
            Some(bearer(&none_alg)),
            Some(format!("Basic {good}")),
            Some(good.clone()),
            Some(bearer("a.b")),
            Some(bearer("a.b.c.d")),
            Some(bearer("!!!.???.***")),
            Some(bearer(&"x".repeat(AUTH_TOKEN_MAX_BYTES))),
            Some("Bearer é.é.é".to_owned()),
        ] {
            assert_eq!(
                code(ring().authenticate(header.as_deref(), NOW)),
                Code::Unauthenticated,
                "{header:?}"
            );
        }
    }

    #[test]
    fn tenant_and_scope_syntax() {
        assert!(valid_tenant("tenant-b.prod_1"));
        assert!(valid_tenant(&"a".repeat(64)));
        assert!(!valid_tenant(&"a".repeat(65)));
        assert!(!valid_tenant(""));
        assert!(!valid_tenant("a/b"));
        assert!(valid_scopes("compute read admin"));
        assert!(valid_scopes(""));
        assert!(!valid_scopes("write"));
        assert_eq!(Scopes::parse("read  admin"), Some(Scopes(6)));
    }
}
