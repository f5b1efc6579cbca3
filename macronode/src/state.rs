//! The macronode's durable quarantine queue (`STATE_PATH`, API.md §4.1): the core's
//! [`QueueStore`] in one SQLite file, so that a `202` survives a SIGKILL or an OOM kill.
//!
//! Two tables: `runs` holds one row per run with its record (registration and intents, a blob
//! the core encodes) in arrival order, and `cursors` what the ledger has answered of it. They
//! are apart because a cursor moves once per batch: updating a small row leaves the blob's
//! pages alone, where a row holding both would be rewritten whole whenever a counter grew a
//! byte. A run's two rows are written and deleted in one transaction.
//!
//! Every transaction is durable before it returns: WAL with `synchronous=FULL` (the WAL is
//! fsynced at each commit). Deleted rows are overwritten (`secure_delete`) and the WAL is
//! checkpointed and truncated after each delete, so no actor id of a settled run lingers on
//! the volume.
//!
//! The file carries this program's `application_id` and the schema version in `user_version`.
//! An older schema is migrated at open, in one transaction; a newer one, another program's
//! database, or a file that is not a sound SQLite database is refused with a message — the
//! node then exits 2 — and never reset: it may hold promises.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rewarder_core::service::{Cursor, DurableRun, QueueStore, StoreError};
use rusqlite::{Connection, params};

/// `PRAGMA application_id` of a queue file: "RWQ1".
pub const APPLICATION_ID: i32 = 0x5257_5131;

/// The schema, one step per version: step `i` brings a file of version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE runs (
        seq INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        epoch TEXT NOT NULL,
        payees INTEGER NOT NULL,
        record BLOB NOT NULL
    ) STRICT;
    CREATE TABLE cursors (
        run_id TEXT PRIMARY KEY,
        next INTEGER NOT NULL,
        accepted INTEGER NOT NULL,
        dup INTEGER NOT NULL
    ) STRICT;
"];

/// The page size of a new queue file.
const PAGE_BYTES: u32 = 16 * 1024;

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// The queue file.
pub struct SqliteQueue {
    db: Mutex<Connection>,
    /// Test-only crash point (see [`KillPoint`]).
    kill: KillPoint,
}

impl std::fmt::Debug for SqliteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteQueue").finish_non_exhaustive()
    }
}

fn sql_error(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError(format!("{what}: {e}"))
}

impl SqliteQueue {
    /// Opens (or creates) the queue file at `path`, migrating an older schema; refuses a newer
    /// schema, a foreign database and a damaged file.
    pub fn open(path: &Path) -> Result<SqliteQueue, StoreError> {
        open_with(path, MIGRATIONS)
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        // A panic inside a transaction rolls it back when the Transaction drops; the
        // connection itself stays usable.
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn open_with(path: &Path, migrations: &[&str]) -> Result<SqliteQueue, StoreError> {
    let refuse = |why: String| {
        StoreError(format!("{}: {why}; refusing to start rather than reset it", path.display()))
    };
    let mut db = Connection::open(path).map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
    // The first read of the header: a file that is not SQLite fails here.
    let header = db.query_row("PRAGMA application_id", [], |r| r.get::<_, i32>(0)).and_then(|app| {
        let version = db.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?;
        let objects = db.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))?;
        Ok((app, version, objects))
    });
    let (app, version, objects) = header.map_err(|e| refuse(format!("not a readable queue file ({e})")))?;
    let fresh = app == 0 && version == 0 && objects == 0;
    if !fresh && app != APPLICATION_ID {
        return Err(refuse(format!("a SQLite database of another program (application_id {app:#x})")));
    }
    let version = usize::try_from(version).map_err(|_| refuse(format!("schema version {version}")))?;
    if version > migrations.len() {
        return Err(refuse(format!(
            "written by a newer svc-rewarder (schema {version}; this build reads up to {})",
            migrations.len()
        )));
    }
    let check: String =
        db.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(|e| refuse(format!("damaged ({e})")))?;
    if check != "ok" {
        return Err(refuse(format!("damaged ({check})")));
    }
    if fresh {
        // Records are blobs of ~50 bytes per payee (0.5 MB at M): 16 KiB pages write a record
        // in a quarter of the pages (and system calls) 4 KiB pages take, while a cursor move
        // still writes one small page. Measured on tmpfs: insert + 10 cursor moves + delete +
        // checkpoint of an M record, 2.1 ms with 4 KiB pages, 1.2 ms with 16 KiB. Only a new
        // file takes it: a page size is fixed once the file is in WAL mode.
        db.execute_batch(&format!("PRAGMA page_size={PAGE_BYTES};")).map_err(sql_error("page_size"))?;
    }
    // Settings of the connection, not of the file: every open sets them. WAL must be set
    // outside a transaction.
    let mode: String =
        db.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(sql_error("journal_mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(refuse(format!("cannot use a write-ahead log (journal mode {mode})")));
    }
    db.execute_batch("PRAGMA synchronous=FULL; PRAGMA secure_delete=ON;").map_err(sql_error("pragmas"))?;
    if version < migrations.len() {
        let tx = db.transaction().map_err(sql_error("migration"))?;
        for step in &migrations[version..] {
            tx.execute_batch(step).map_err(sql_error("migration"))?;
        }
        tx.execute_batch(&format!(
            "PRAGMA application_id={APPLICATION_ID}; PRAGMA user_version={};",
            migrations.len()
        ))
        .map_err(sql_error("migration"))?;
        tx.commit().map_err(sql_error("migration"))?;
        tracing::info!(path = %path.display(), from = version, to = migrations.len(), "queue file schema migrated");
    }
    Ok(SqliteQueue { db: Mutex::new(db), kill: KillPoint::from_env() })
}

impl QueueStore for SqliteQueue {
    fn load(&self) -> Result<Vec<DurableRun>, StoreError> {
        let db = self.db();
        let mut query = db
            .prepare(
                "SELECT r.run_id, r.tenant, r.epoch, r.payees, c.next, c.accepted, c.dup, r.record
                 FROM runs r LEFT JOIN cursors c USING (run_id) ORDER BY r.seq",
            )
            .map_err(sql_error("load"))?;
        let rows = query
            .query_map([], |r| {
                let count = |i| r.get::<_, Option<i64>>(i).map(|v| v.unwrap_or(0).max(0) as u64);
                Ok(DurableRun {
                    run_id: r.get(0)?,
                    tenant: r.get(1)?,
                    epoch: r.get(2)?,
                    payees: r.get::<_, i64>(3)?.max(0) as u64,
                    // A run without a cursor row (impossible unless edited by hand) starts over.
                    cursor: Cursor { next: count(4)?, accepted: count(5)?, dup: count(6)? },
                    record: r.get(7)?,
                })
            })
            .map_err(sql_error("load"))?;
        rows.collect::<Result<_, _>>().map_err(sql_error("load"))
    }

    fn insert(&self, run: &DurableRun) -> Result<(), StoreError> {
        let result = (|| {
            let mut db = self.db();
            let tx = db.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO runs (run_id, tenant, epoch, payees, record) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run.run_id, run.tenant, run.epoch, clamp(run.payees), run.record],
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO cursors (run_id, next, accepted, dup) VALUES (?1, ?2, ?3, ?4)",
                params![
                    run.run_id,
                    clamp(run.cursor.next),
                    clamp(run.cursor.accepted),
                    clamp(run.cursor.dup)
                ],
            )?;
            tx.commit()
        })();
        result.map_err(logged("keep a run"))
    }

    fn advance(&self, run_id: &str, cursor: Cursor) -> Result<(), StoreError> {
        self.kill.reached();
        self.db()
            .execute(
                "UPDATE cursors SET next = ?2, accepted = ?3, dup = ?4 WHERE run_id = ?1",
                params![run_id, clamp(cursor.next), clamp(cursor.accepted), clamp(cursor.dup)],
            )
            .map(drop)
            .map_err(logged("move a cursor"))
    }

    fn remove(&self, run_id: &str) -> Result<(), StoreError> {
        let result = (|| {
            let mut db = self.db();
            let tx = db.transaction()?;
            tx.execute("DELETE FROM runs WHERE run_id = ?1", [run_id])?;
            tx.execute("DELETE FROM cursors WHERE run_id = ?1", [run_id])?;
            tx.commit()?;
            // Copies the deletion into the main file and empties the log, so the run's intents
            // are gone from both.
            db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        })();
        result.map_err(logged("delete a settled run"))
    }
}

/// SQLite integers are i64; counts beyond that do not exist here.
fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Logs a store failure where it happens (the core only decides whether it matters).
fn logged(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| {
        tracing::error!(error = %e, "durable queue: cannot {what}");
        StoreError(format!("cannot {what}: {e}"))
    }
}

/// A test-only crash point: with `REWARDER_TEST_KILL_AT_CURSOR=n`, the process aborts when
/// the core moves a cursor for the `n`-th time — after the ledger answered that batch, before
/// its cursor is kept: the worst moment of the send loop for a crash.
///
/// It exists in debug builds only (`cfg(debug_assertions)`): the integration tests run the
/// debug binary, and a release build neither reads the variable nor carries the branch, so no
/// environment can make a production node kill itself. A cargo feature would do the same but
/// would make the test command build the macronode twice.
struct KillPoint {
    #[cfg(debug_assertions)]
    at: Option<(u64, std::sync::atomic::AtomicU64)>,
}

impl KillPoint {
    fn from_env() -> KillPoint {
        #[cfg(debug_assertions)]
        {
            let at = std::env::var("REWARDER_TEST_KILL_AT_CURSOR").ok().and_then(|v| v.parse().ok());
            KillPoint { at: at.map(|n| (n, std::sync::atomic::AtomicU64::new(0))) }
        }
        #[cfg(not(debug_assertions))]
        KillPoint {}
    }

    fn reached(&self) {
        #[cfg(debug_assertions)]
        if let Some((n, seen)) = &self.at
            && seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == *n
        {
            eprintln!("REWARDER_TEST_KILL_AT_CURSOR: aborting at cursor move {n}");
            // Like a crash: no destructor runs, nothing more reaches the file.
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rewarder-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn run(id: &str, record: &[u8]) -> DurableRun {
        DurableRun {
            run_id: id.into(),
            tenant: "t".into(),
            epoch: format!("e-{id}"),
            payees: 3,
            cursor: Cursor::default(),
            record: record.to_vec(),
        }
    }

    #[test]
    fn rows_keep_their_order_cursor_and_record_across_opens() {
        let dir = scratch("rows");
        let path = dir.join("queue.db");
        let q = SqliteQueue::open(&path).unwrap();
        let page: u32 = q.db().query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        assert_eq!(page, PAGE_BYTES);
        q.insert(&run("b3:a", b"first")).unwrap();
        q.insert(&run("b3:b", b"second")).unwrap();
        q.insert(&DurableRun { record: b"other".to_vec(), ..run("b3:a", b"") }).unwrap();
        q.advance("b3:a", Cursor { next: 2, accepted: 1, dup: 1 }).unwrap();
        q.advance("b3:gone", Cursor { next: 9, accepted: 9, dup: 0 }).unwrap();
        drop(q);
        let q = SqliteQueue::open(&path).unwrap();
        let rows = q.load().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].run_id.as_str(), rows[0].record.as_slice()),
            ("b3:a", &b"first"[..]),
            "kept as first written"
        );
        assert_eq!(rows[0].cursor, Cursor { next: 2, accepted: 1, dup: 1 });
        assert_eq!(rows[1].cursor, Cursor::default());
        q.remove("b3:a").unwrap();
        assert_eq!(q.load().unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_removed_run_leaves_no_bytes_in_the_file_or_the_log() {
        let dir = scratch("wipe");
        let path = dir.join("queue.db");
        let q = SqliteQueue::open(&path).unwrap();
        let secret = b"acct:someone-identifiable".repeat(400);
        q.insert(&run("b3:a", &secret)).unwrap();
        q.advance("b3:a", Cursor { next: 1, accepted: 1, dup: 0 }).unwrap();
        q.remove("b3:a").unwrap();
        for name in ["queue.db", "queue.db-wal"] {
            let bytes = std::fs::read(dir.join(name)).unwrap_or_default();
            assert!(!bytes.windows(20).any(|w| w == &secret[..20]), "{name} still holds the record");
        }
        drop(q);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_older_schema_is_migrated_and_a_newer_one_refused() {
        let dir = scratch("schema");
        let path = dir.join("queue.db");
        let q = open_with(&path, &MIGRATIONS[..1]).unwrap();
        q.insert(&run("b3:a", b"kept")).unwrap();
        drop(q);
        // A later build with one more step migrates the file and keeps its rows.
        let next = [MIGRATIONS[0], "ALTER TABLE runs ADD COLUMN note TEXT;"];
        let q = open_with(&path, &next).unwrap();
        assert_eq!(q.load().unwrap()[0].record, b"kept");
        let version: i64 = q.db().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, 2);
        drop(q);
        // This build reads up to version 1: the migrated file is newer.
        let e = SqliteQueue::open(&path).unwrap_err();
        assert!(e.0.contains("newer svc-rewarder (schema 2; this build reads up to 1)"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
