//! Where the golden vectors are (`testing/vectors/` in this repository: the one place every Rust
//! test finds them) and which cases they hold, for the tests that reproduce them.
//!
//! It reads directory names only: each test loads and checks the documents its own way.

use std::path::{Path, PathBuf};

/// The directory of the golden vectors, `testing/vectors/`, beside this crate's own directory.
pub fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors")
}

/// The directories of the golden cases (those with an `expected.json`), sorted; panics unless
/// the vectors are there, all of them.
pub fn cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(vectors())
        .expect("testing/vectors in the repository")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected.json").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 40, "expected the golden cases, found {}", dirs.len());
    dirs
}
