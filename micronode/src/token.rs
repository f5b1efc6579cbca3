//! `mint-token`, shared by the node binaries: issues a capability token (API.md §3) with one
//! of the keys of `AUTH_KEYS` from the environment.
//!
//! It checks the arguments and signs; it does not store or log the token.

use rewarder_core::service::auth;

use crate::config::parse_auth_keys;

/// Why no token was issued: a usage error (exit 2) or no usable clock (exit 1).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MintError {
    /// A bad argument or `AUTH_KEYS`.
    Usage(String),
    /// The system clock is before 1970.
    Clock,
}

impl std::fmt::Display for MintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MintError::Usage(m) => f.write_str(m),
            MintError::Clock => f.write_str("the system clock is before 1970"),
        }
    }
}

impl std::error::Error for MintError {}

/// A token for `tenant` with `scope`, valid for `ttl` seconds from now (and not before
/// `nbf_in` seconds from now when given), signed with `kid` of `AUTH_KEYS`.
pub fn mint_from_env(
    kid: &str,
    tenant: &str,
    scope: &str,
    ttl: u64,
    nbf_in: Option<u64>,
) -> Result<String, MintError> {
    if !auth::valid_tenant(tenant) {
        return Err(MintError::Usage(format!("--tenant {tenant:?}: 1-64 chars of [A-Za-z0-9._-]")));
    }
    if !auth::valid_scopes(scope) {
        return Err(MintError::Usage(format!(
            "--scope {scope:?}: a space-separated subset of \"compute read admin\""
        )));
    }
    let raw = std::env::var("AUTH_KEYS").unwrap_or_default();
    if raw.is_empty() {
        return Err(MintError::Usage("AUTH_KEYS: unset; mint-token signs with one of its keys".into()));
    }
    let keys = parse_auth_keys(&raw).map_err(|e| MintError::Usage(e.to_string()))?;
    let Some((_, key)) = keys.iter().find(|(k, _)| k == kid) else {
        return Err(MintError::Usage(format!("--kid {kid:?} is not in AUTH_KEYS")));
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| MintError::Clock)?
        .as_secs();
    Ok(auth::mint(kid, key, tenant, scope, now.saturating_add(ttl), nbf_in.map(|s| now.saturating_add(s))))
}
