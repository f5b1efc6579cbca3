//! Amnesia (ARCHITECTURE.md rule 9): the only place the micronode writes is one directory of
//! its own on tmpfs, removed on exit; a crashed node's directory is removed by the next start.
//! [`AmnesiaDir`] is the [`Artifacts`] of the service: each artifact is one file there; a write
//! that fails, would pass the byte budget, or takes longer than [`AmnesiaDir::WRITE_BUDGET`]
//! is a spill ([`Kept::is_spilled`]), so the service keeps it in memory and counts
//! `amnesia_spill_total`; an artifact the service takes back ([`Artifacts::discard`]: a large
//! upload written beside its parse, then refused) is removed and its bytes leave the budget.
//!
//! `AMNESIA_DIR` names a *root* (default `/dev/shm`; a Kubernetes `emptyDir` with
//! `medium: Memory` works too), never the directory itself, so it cannot be turned against the
//! node:
//! - the root is refused if it is a symlink, if others may write to it without the sticky bit,
//!   or if it is not tmpfs (unless `AMNESIA_ALLOW_DISK`, which is logged as a warning);
//! - the node creates `rewarder-<pid>-<random>` inside it, mode 0700, and writes its files
//!   there with mode 0600, never following a symlink (`O_NOFOLLOW`);
//! - liveness is a lock (`flock`) on `.lock` inside that directory, held for the process's
//!   life, not a pid: pids repeat, and in a container every node is pid 1. At start, every
//!   `rewarder-*` directory of the root owned by this user whose lock nobody holds is removed
//!   (one without a lock file only once it is a minute old, so a node that is starting is
//!   never mistaken for a dead one).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use rewarder_core::service::{Artifacts, Kept};

/// The root used when `AMNESIA_DIR` is unset.
pub const DEFAULT_ROOT: &str = "/dev/shm";
/// The lock file whose `flock` says its directory's node is alive.
const LOCK_FILE: &str = ".lock";
/// Prefix of every node directory in a root.
const DIR_PREFIX: &str = "rewarder-";
/// A directory without a lock file younger than this may be a node between its `mkdir` and
/// its lock: left alone.
const UNLOCKED_GRACE: Duration = Duration::from_secs(60);
/// File systems that keep their files in memory only.
const MEMORY_FILESYSTEMS: [&str; 2] = ["tmpfs", "ramfs"];

/// The amnesia directory of one process.
#[derive(Debug)]
pub struct AmnesiaDir {
    path: PathBuf,
    bytes_max: u64,
    /// Bytes written so far (artifacts are content-addressed and never rewritten).
    bytes: Mutex<u64>,
    /// Held for the process's life: while it is locked, no other node removes the directory.
    _lock: File,
}

/// What [`AmnesiaDir::create`] did besides creating the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Directories of dead nodes removed from the root.
    pub removed: Vec<PathBuf>,
    /// The root is not in memory (allowed by `AMNESIA_ALLOW_DISK`): say so.
    pub on_disk: Option<String>,
}

impl AmnesiaDir {
    /// The slowest write still kept on tmpfs (PERFORMANCE §1.2: tmpfs p99 < 10 ms).
    pub const WRITE_BUDGET: Duration = Duration::from_millis(10);

    /// Checks `root` (default [`DEFAULT_ROOT`]), removes the directories of dead nodes in it,
    /// and creates this process's directory there. At most `bytes_max` bytes are written into
    /// it. A root on disk is refused unless `allow_disk`.
    pub fn create(root: Option<&Path>, allow_disk: bool, bytes_max: u64) -> io::Result<(AmnesiaDir, Swept)> {
        let root = root.unwrap_or(Path::new(DEFAULT_ROOT));
        let mut swept = Swept { on_disk: check_root(root, allow_disk)?, ..Swept::default() };
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).map_err(io::Error::other)?;
        let name = format!("{DIR_PREFIX}{}-{}", std::process::id(), hex::encode(random));
        let path = root.join(name);
        fs::DirBuilder::new().mode(0o700).create(&path)?;
        let lock = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path.join(LOCK_FILE))
            .and_then(|f| f.try_lock().map(|()| f).map_err(io::Error::from));
        let lock = match lock {
            Ok(lock) => lock,
            Err(e) => {
                let _ = fs::remove_dir_all(&path);
                return Err(e);
            }
        };
        let uid = fs::symlink_metadata(&path)?.uid();
        swept.removed = sweep(root, &path, uid);
        Ok((AmnesiaDir { path, bytes_max, bytes: Mutex::new(0), _lock: lock }, swept))
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

/// Refuses a root that could redirect or expose the node's files; `Some(fs type)` when it is
/// on disk and that is allowed.
fn check_root(root: &Path, allow_disk: bool) -> io::Result<Option<String>> {
    let refuse =
        |why: String| io::Error::new(io::ErrorKind::InvalidInput, format!("{}: {why}", root.display()));
    let meta = fs::symlink_metadata(root).map_err(|e| refuse(format!("cannot be read ({e})")))?;
    if meta.file_type().is_symlink() {
        return Err(refuse("is a symlink; name the directory it points to".into()));
    }
    if !meta.is_dir() {
        return Err(refuse("is not a directory".into()));
    }
    let mode = meta.permissions().mode();
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Err(refuse(format!(
            "others may write to it and it has no sticky bit (mode {:o})",
            mode & 0o7777
        )));
    }
    let fs_type = filesystem_of(root).unwrap_or_else(|| "unknown".into());
    if MEMORY_FILESYSTEMS.contains(&fs_type.as_str()) {
        Ok(None)
    } else if allow_disk {
        Ok(Some(fs_type))
    } else {
        Err(refuse(format!(
            "is on {fs_type}, not tmpfs: tenant documents would reach a disk (set AMNESIA_ALLOW_DISK=true to accept that)"
        )))
    }
}

/// The file system type of the mount holding `path` (`/proc/self/mountinfo`, longest mount
/// point that contains it).
fn filesystem_of(path: &Path) -> Option<String> {
    let path = fs::canonicalize(path).ok()?;
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter_map(|line| {
            // id parent major:minor root MOUNT_POINT options … - FS_TYPE source super-options
            let mut fields = line.split(' ');
            let mount_point = unescape_mount(fields.nth(4)?);
            let (_, after) = line.split_once(" - ")?;
            let fs_type = after.split(' ').next()?;
            path.starts_with(&mount_point).then(|| (mount_point.as_os_str().len(), fs_type.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs_type)| fs_type)
}

/// A mount point as mountinfo writes it (space, tab, newline and backslash octal-escaped).
fn unescape_mount(field: &str) -> PathBuf {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    PathBuf::from(out)
}

/// Removes every node directory of `root` (but `own`) that belongs to `uid` and whose lock
/// nobody holds; returns what it removed.
fn sweep(root: &Path, own: &Path, uid: u32) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let named = entry.file_name().to_str().is_some_and(|n| n.starts_with(DIR_PREFIX));
        // lstat: a symlink is never followed, nor removed through.
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        if !named || path == own || !meta.is_dir() || meta.uid() != uid {
            continue;
        }
        let lock = OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW).open(path.join(LOCK_FILE));
        let dead = match lock {
            Ok(file) => file.try_lock().is_ok(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age > UNLOCKED_GRACE),
            Err(_) => false,
        };
        if dead && fs::remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

impl Artifacts for AmnesiaDir {
    fn keep(&self, name: &str, bytes: &[u8]) -> Kept {
        if !AmnesiaDir::valid_name(name) {
            return Kept::Spilled;
        }
        let started = Instant::now();
        let path = self.path.join(name);
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64) {
            return Kept::Held;
        }
        {
            // A poisoned lock only means another writer panicked; the count is still usable.
            let mut written = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
            if *written + bytes.len() as u64 > self.bytes_max {
                return Kept::Spilled;
            }
            *written += bytes.len() as u64;
        }
        let wrote = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .and_then(|mut f| f.write_all(bytes));
        if wrote.is_err() {
            self.discard(name, bytes.len());
            return Kept::Spilled;
        }
        if started.elapsed() <= AmnesiaDir::WRITE_BUDGET { Kept::Written } else { Kept::WrittenLate }
    }

    fn discard(&self, name: &str, bytes_len: usize) {
        if !AmnesiaDir::valid_name(name) {
            return;
        }
        let _ = fs::remove_file(self.path.join(name));
        let mut written = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        *written = written.saturating_sub(bytes_len as u64);
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

    /// A fresh root under /dev/shm (tmpfs), mode 0700, removed by the caller.
    fn shm_root() -> PathBuf {
        let mut r = [0u8; 6];
        getrandom::fill(&mut r).unwrap();
        let root = Path::new(DEFAULT_ROOT).join(format!("amnesia-test-{}", hex::encode(r)));
        fs::DirBuilder::new().mode(0o700).create(&root).unwrap();
        root
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn keeps_private_files_and_removes_the_directory_on_drop() {
        let root = shm_root();
        let (dir, _) = AmnesiaDir::create(Some(&root), false, 1 << 20).unwrap();
        let path = dir.path().to_path_buf();
        assert!(path.starts_with(&root));
        assert_eq!(mode(&path), 0o700);
        assert_eq!(dir.keep("b3:abc", b"{}"), Kept::Written);
        assert_eq!(fs::read(path.join("b3:abc")).unwrap(), b"{}");
        assert_eq!(mode(&path.join("b3:abc")), 0o600);
        assert_eq!(dir.keep("b3:abc", b"{}"), Kept::Held, "rewriting the same artifact is free");
        drop(dir);
        assert!(!path.exists());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn refuses_unsafe_names_and_the_byte_budget() {
        let root = shm_root();
        let (dir, _) = AmnesiaDir::create(Some(&root), false, 8).unwrap();
        assert_eq!(dir.keep("../escape", b"x"), Kept::Spilled);
        assert_eq!(dir.keep(".hidden", b"x"), Kept::Spilled);
        assert_eq!(dir.keep("UPPER", b"x"), Kept::Spilled);
        assert_eq!(dir.keep("a", b"12345678"), Kept::Written);
        assert_eq!(dir.keep("b", b"1"), Kept::Spilled, "over the budget spills");
        assert!(!dir.path().join("b").exists());
        drop(dir);
        fs::remove_dir_all(&root).unwrap();
    }

    /// A document refused after its artifact was written beside its parse is taken back: the
    /// file goes, and so do its bytes from the budget.
    #[test]
    fn a_discarded_artifact_leaves_no_file_and_gives_its_bytes_back() {
        let root = shm_root();
        let (dir, _) = AmnesiaDir::create(Some(&root), false, 8).unwrap();
        assert_eq!(dir.keep("a", b"12345678"), Kept::Written);
        dir.discard("a", 8);
        assert!(!dir.path().join("a").exists());
        assert_eq!(dir.keep("b", b"12345678"), Kept::Written, "the budget is whole again");
        drop(dir);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_symlinked_a_shared_or_a_disk_root_is_refused() {
        let root = shm_root();
        let link = root.with_extension("link");
        std::os::unix::fs::symlink(&root, &link).unwrap();
        let err = AmnesiaDir::create(Some(&link), false, 1).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        fs::remove_file(&link).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        let err = AmnesiaDir::create(Some(&root), false, 1).unwrap_err();
        assert!(err.to_string().contains("sticky"), "{err}");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(AmnesiaDir::create(Some(&root), false, 1).is_ok(), "a sticky shared root, like /dev/shm");
        fs::remove_dir_all(&root).unwrap();
        // The current directory of the test is on the build's disk, not tmpfs.
        let disk = std::env::current_dir().unwrap();
        if filesystem_of(&disk).is_some_and(|t| !MEMORY_FILESYSTEMS.contains(&t.as_str())) {
            let err = AmnesiaDir::create(Some(&disk), false, 1).unwrap_err();
            assert!(err.to_string().contains("not tmpfs"), "{err}");
            let (dir, swept) = AmnesiaDir::create(Some(&disk), true, 1).unwrap();
            assert!(swept.on_disk.is_some());
            drop(dir);
        }
    }

    #[test]
    fn a_dead_nodes_directory_is_swept_and_a_live_one_is_kept() {
        let root = shm_root();
        let (live, _) = AmnesiaDir::create(Some(&root), false, 1).unwrap();
        // A dead node: its directory and lock file remain, nobody holds the lock.
        let dead = root.join("rewarder-1-dead");
        fs::DirBuilder::new().mode(0o700).create(&dead).unwrap();
        fs::write(dead.join(LOCK_FILE), b"").unwrap();
        fs::write(dead.join("b3:doc"), b"tenant data").unwrap();
        // Not ours to touch: another prefix, and a symlink named like a node directory.
        fs::create_dir(root.join("other")).unwrap();
        std::os::unix::fs::symlink(root.join("other"), root.join("rewarder-1-link")).unwrap();
        let (next, swept) = AmnesiaDir::create(Some(&root), false, 1).unwrap();
        assert_eq!(swept.removed, vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(live.path().is_dir(), "a live node's directory stays");
        assert!(root.join("other").is_dir() && root.join("rewarder-1-link").exists());
        drop((live, next));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount("/a\\040b/c\\134d"), PathBuf::from("/a b/c\\d"));
    }
}
