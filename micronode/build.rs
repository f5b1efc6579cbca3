//! Captures what `--version` and `GET /version` report about the build: the target triple and
//! the git revision. `REWARDER_GIT_REVISION` in the environment wins (a release workflow or a
//! source tarball sets it); else `git rev-parse` of the checkout; else `unknown` (no `.git`, no
//! git). Never fails the build.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_owned())
}

/// 7-40 hex digits, in lowercase, else `None`: only a revision reaches the binary.
fn revision(raw: &str) -> Option<String> {
    let raw = raw.trim().to_ascii_lowercase();
    ((7..=40).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_hexdigit())).then_some(raw)
}

fn main() {
    println!("cargo:rerun-if-env-changed=REWARDER_GIT_REVISION");
    let from_env = std::env::var("REWARDER_GIT_REVISION").ok().and_then(|r| revision(&r));
    let rev = from_env.or_else(|| {
        // Rebuild when HEAD moves: HEAD itself and the branch file it points to (both found
        // through git, so a worktree's .git file works too).
        for path in ["HEAD", "packed-refs"] {
            if let Some(p) = git(&["rev-parse", "--git-path", path]).filter(|p| Path::new(p).exists()) {
                println!("cargo:rerun-if-changed={p}");
            }
        }
        if let Some(p) = git(&["symbolic-ref", "-q", "HEAD"])
            .and_then(|r| git(&["rev-parse", "--git-path", &r]))
            .filter(|p| Path::new(p).exists())
        {
            println!("cargo:rerun-if-changed={p}");
        }
        git(&["rev-parse", "--short=12", "HEAD"]).and_then(|r| revision(&r))
    });
    println!("cargo:rustc-env=REWARDER_GIT_REVISION={}", rev.as_deref().unwrap_or("unknown"));
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=REWARDER_TARGET={target}");
}
