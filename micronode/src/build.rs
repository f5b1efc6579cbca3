//! What a binary says about its build: version, target triple and git revision, captured at
//! build time by `build.rs` (`REWARDER_GIT_REVISION` when set, else `git rev-parse`, else
//! `unknown`). `--version` prints [`VERSION_LINE`]; `GET /version` carries [`TARGET`] and
//! [`GIT_REVISION`] under `build`.

/// The crate version (the workspace's semver).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The target triple the binary was built for, e.g. `aarch64-unknown-linux-musl`.
pub const TARGET: &str = env!("REWARDER_TARGET");
/// The git revision built (12 hex digits), or `unknown` when built outside a checkout.
pub const GIT_REVISION: &str = env!("REWARDER_GIT_REVISION");
/// What `--version` prints after the program name.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (target ",
    env!("REWARDER_TARGET"),
    ", git ",
    env!("REWARDER_GIT_REVISION"),
    ")"
);
/// The same, as core's `/version` takes it.
pub const BUILD: rewarder_core::service::Build =
    rewarder_core::service::Build { target: TARGET, git_revision: GIT_REVISION };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_line_names_version_target_and_revision() {
        assert_eq!(VERSION_LINE, format!("{VERSION} (target {TARGET}, git {GIT_REVISION})"));
        assert!(TARGET.contains('-'), "{TARGET}");
        assert!(
            GIT_REVISION == "unknown"
                || (GIT_REVISION.len() >= 7 && GIT_REVISION.bytes().all(|b| b.is_ascii_hexdigit())),
            "{GIT_REVISION}"
        );
    }
}
