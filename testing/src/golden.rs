//! Where the shared golden vectors are (`../shared/vectors` beside the repository) and which
//! cases they hold, for the tests that reproduce them.
//!
//! It reads directory names only: each test loads and checks the documents its own way.

use std::path::{Path, PathBuf};

/// The directory of the shared vectors.
pub fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors")
}

/// The directories of the golden cases (those with an `expected.json`), sorted; panics unless
/// the vectors are there, all of them.
pub fn cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(vectors())
        .expect("../shared/vectors beside the repository")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected.json").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 40, "expected the shared golden cases, found {}", dirs.len());
    dirs
}
