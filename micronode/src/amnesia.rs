//! Amnesia (ARCHITECTURE.md rule 9): the only place the micronode writes is one directory on
//! tmpfs, `AMNESIA_DIR` (default: a fresh `/dev/shm/rewarder-<pid>-<random>`), removed on
//! exit. [`AmnesiaDir`] is the [`Artifacts`] of the service: each artifact is one file there;
//! a write that fails, would pass the byte budget, or takes longer than
//! [`AmnesiaDir::WRITE_BUDGET`] answers `false`, so the service keeps it in memory and counts
//! `amnesia_spill_total`.
//!
//! It never deletes a directory it did not create or find empty.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rewarder_core::service::Artifacts;

/// The amnesia directory of one process.
#[derive(Debug)]
pub struct AmnesiaDir {
    path: PathBuf,
    bytes_max: u64,
    /// Bytes written so far (artifacts are content-addressed and never rewritten).
    bytes: Mutex<u64>,
}

impl AmnesiaDir {
    /// The slowest write still kept on tmpfs (PERFORMANCE §1.2: tmpfs p99 < 10 ms).
    pub const WRITE_BUDGET: Duration = Duration::from_millis(10);

    /// Creates the directory: `dir` when given (it must not exist, or be empty), else a fresh
    /// one under `/dev/shm` (the system temporary directory where there is no `/dev/shm`).
    /// At most `bytes_max` bytes are written into it.
    pub fn create(dir: Option<&Path>, bytes_max: u64) -> io::Result<AmnesiaDir> {
        let path = match dir {
            Some(dir) => {
                match fs::read_dir(dir) {
                    Ok(mut entries) => {
                        if entries.next().is_some() {
                            return Err(io::Error::new(
                                io::ErrorKind::AlreadyExists,
                                format!(
                                    "{} exists and is not empty; it would be removed on exit",
                                    dir.display()
                                ),
                            ));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(dir)?,
                    Err(e) => return Err(e),
                }
                dir.to_path_buf()
            }
            None => {
                let shm = Path::new("/dev/shm");
                let parent = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
                let mut random = [0u8; 6];
                getrandom::fill(&mut random).map_err(io::Error::other)?;
                let path = parent.join(format!("rewarder-{}-{}", std::process::id(), hex::encode(random)));
                fs::create_dir(&path)?;
                path
            }
        };
        set_private(&path);
        Ok(AmnesiaDir { path, bytes_max, bytes: Mutex::new(0) })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory and everything in it; idempotent.
    pub fn remove(&self) -> io::Result<()> {
        match fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Whether `name` is a safe file name (`[a-z0-9:._-]`, not starting with a dot).
    fn valid_name(name: &str) -> bool {
        (1..=200).contains(&name.len())
            && !name.starts_with('.')
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b':' | b'.' | b'_' | b'-')
            })
    }
}

#[cfg(unix)]
fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
}

#[cfg(not(unix))]
fn set_private(_: &Path) {}

impl Artifacts for AmnesiaDir {
    fn keep(&self, name: &str, bytes: &[u8]) -> bool {
        if !AmnesiaDir::valid_name(name) {
            return false;
        }
        let started = Instant::now();
        let path = self.path.join(name);
        if fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
            return true;
        }
        {
            // A poisoned lock only means another writer panicked; the count is still usable.
            let mut written = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
            if *written + bytes.len() as u64 > self.bytes_max {
                return false;
            }
            *written += bytes.len() as u64;
        }
        let wrote = fs::File::create(&path).and_then(|mut f| f.write_all(bytes));
        if wrote.is_err() {
            let _ = fs::remove_file(&path);
            let mut written = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
            *written = written.saturating_sub(bytes.len() as u64);
            return false;
        }
        started.elapsed() <= AmnesiaDir::WRITE_BUDGET
    }
}

impl Drop for AmnesiaDir {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::error!(dir = %self.path.display(), error = %e, "cannot remove the amnesia directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let mut r = [0u8; 6];
        getrandom::fill(&mut r).unwrap();
        std::env::temp_dir().join(format!("amnesia-test-{}", hex::encode(r)))
    }

    #[test]
    fn keeps_files_and_removes_the_directory_on_drop() {
        let path = scratch();
        let dir = AmnesiaDir::create(Some(&path), 1 << 20).unwrap();
        assert!(dir.keep("b3:abc", b"{}"));
        assert_eq!(fs::read(path.join("b3:abc")).unwrap(), b"{}");
        assert!(dir.keep("b3:abc", b"{}"), "rewriting the same artifact is free");
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn refuses_unsafe_names_and_the_byte_budget() {
        let path = scratch();
        let dir = AmnesiaDir::create(Some(&path), 8).unwrap();
        assert!(!dir.keep("../escape", b"x"));
        assert!(!dir.keep(".hidden", b"x"));
        assert!(!dir.keep("UPPER", b"x"));
        assert!(dir.keep("a", b"12345678"));
        assert!(!dir.keep("b", b"1"), "over the budget spills");
        assert!(!path.join("b").exists());
    }

    #[test]
    fn never_adopts_a_non_empty_directory() {
        let path = scratch();
        fs::create_dir(&path).unwrap();
        fs::write(path.join("precious"), b"x").unwrap();
        assert!(AmnesiaDir::create(Some(&path), 1).is_err());
        assert!(path.join("precious").exists());
        fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn the_default_lives_under_dev_shm() {
        let dir = AmnesiaDir::create(None, 1).unwrap();
        let path = dir.path().to_path_buf();
        if Path::new("/dev/shm").is_dir() {
            assert!(path.starts_with("/dev/shm"));
        }
        assert!(path.is_dir());
        dir.remove().unwrap();
        dir.remove().unwrap();
        assert!(!path.exists());
    }
}
