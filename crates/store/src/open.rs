//! Opening the database: the writer's open (creating and migrating it) and the read-only
//! handle auditors and listing commands use, the connection settings, and the migrations.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::{Result, Store, StoreError, chain, lock};

/// The migration that introduces the tamper-evidence chain; the snapshots it finds are hashed
/// in its transaction ([`chain::backfill`]).
const CHAIN_MIGRATION: &str = include_str!("migrations/0005_chain.sql");

/// Migrations, in order; migration `i` brings the schema to `user_version = i + 1`.
// Keep this list in file-number order.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_snapshots.sql"),
    include_str!("migrations/0002_alerts.sql"),
    include_str!("migrations/0003_deliveries.sql"),
    include_str!("migrations/0004_auditor_views.sql"),
    CHAIN_MIGRATION,
    include_str!("migrations/0006_data_flow_views.sql"),
    include_str!("migrations/0007_audit_trail.sql"),
    include_str!("migrations/0008_collected_kinds.sql"),
    include_str!("migrations/0009_privacy_requests.sql"),
    include_str!("migrations/0010_real_workspaces.sql"),
    include_str!("migrations/0011_api_drift.sql"),
    include_str!("migrations/0012_messages.sql"),
    include_str!("migrations/0013_writer.sql"),
    include_str!("migrations/0014_access_changes.sql"),
    include_str!("migrations/0015_access_reviews.sql"),
    include_str!("migrations/0016_identity_views.sql"),
    include_str!("migrations/0017_data_controls.sql"),
    include_str!("migrations/0018_flows.sql"),
    include_str!("migrations/0019_flow_fields.sql"),
    include_str!("migrations/0020_finding_updates.sql"),
];

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`, without the writer
    /// lock: for tests and tools that own the file. Commands that write use
    /// [`Store::open_writer`].
    pub fn open(path: &Path) -> Result<Store> {
        Self::open_with(path, None)
    }

    /// Opens (creating if needed) and migrates the database guarded by `lock`, the writer lock
    /// this process holds on it (see [`lock`]). Migrations therefore never run in two
    /// processes at once; each stores the lock's holder on the snapshots it begins.
    pub fn open_writer(lock: Arc<lock::WriterLock>) -> Result<Store> {
        let path = lock.db().to_path_buf();
        Self::open_with(&path, Some(lock))
    }

    fn open_with(path: &Path, writer: Option<Arc<lock::WriterLock>>) -> Result<Store> {
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        let mode = enable_wal(&conn)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "SQLite refused WAL mode; readers may block the poller");
        }
        migrate(&mut conn)?;
        Ok(Store {
            conn,
            writer,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing database read-only: the one handle of the commands that only read
    /// (auditors' queries, `verify`, `report`, listings, `/healthz`). It never writes, not even
    /// a migration, and takes no lock, so it works while the daemon writes. Its connection is
    /// opened read-only and also refuses every write statement (`PRAGMA query_only`), so no
    /// command built on it needs a guard of its own.
    ///
    /// A database in WAL mode needs its `-shm` file to be read; in a directory this process
    /// cannot write (an auditor's read-only copy), SQLite cannot create it and the open fails.
    /// When no `-wal` file exists either (nothing is waiting to be checkpointed: the copy is
    /// the whole database), it is opened again as `immutable`, which reads the main file alone.
    /// With a `-wal` present that would silently ignore committed data, so the error stands.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        if !path.exists() {
            return Err(StoreError::Snapshot(format!(
                "no database at {}; run `segwatch poll` first or set [database] path",
                path.display()
            )));
        }
        let conn = match Self::read_only_connection(path, false) {
            Ok(conn) => conn,
            Err(e) if is_cannot_open(&e) => {
                let wal = sibling(path, "-wal");
                if wal.exists() {
                    return Err(StoreError::Snapshot(format!(
                        "cannot read {} read-only: SQLite must create its -shm file beside it \
                         ({e}), and {} may hold data not yet in the main file, so the file alone \
                         cannot be read; copy the database with `sqlite3 {} \".backup COPY\"` \
                         or read it where its directory is writable",
                        path.display(),
                        wal.display(),
                        path.display()
                    )));
                }
                tracing::debug!(
                    "cannot open {} with its -shm file ({e}); reading it as immutable",
                    path.display()
                );
                Self::read_only_connection(path, true)?
            }
            Err(e) => return Err(e.into()),
        };
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            return Err(StoreError::NeedsMigration {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        refuse_writes(&conn)?;
        Ok(Store {
            conn,
            writer: None,
            path: path.to_path_buf(),
        })
    }

    /// Makes this connection refuse every write from now on, as [`Store::open_read_only`]'s
    /// does: for the auditors' own SQL, which may run on a store opened for writing.
    pub(crate) fn refuse_writes(&self) -> Result<()> {
        Ok(refuse_writes(&self.conn)?)
    }

    /// Folds the WAL into the main file and truncates it, so that the file's size is what
    /// stays on disk (`segwatch bench` measures it).
    pub fn checkpoint_wal(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// A read-only connection, checked by reading the schema version (SQLite opens lazily:
    /// a missing `-shm` only shows at the first read).
    fn read_only_connection(path: &Path, immutable: bool) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if immutable {
            Connection::open_with_flags(
                format!("file:{}?immutable=1", uri_path(path)),
                flags | OpenFlags::SQLITE_OPEN_URI,
            )?
        } else {
            Connection::open_with_flags(path, flags)?
        };
        configure(&conn)?;
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?;
        Ok(conn)
    }
}

pub(crate) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // FULL: a committed snapshot is audit evidence and must survive a power cut; the cost is one
    // fsync per poll.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

/// Turns on `PRAGMA query_only`: SQLite then refuses any statement that would change the
/// database (`SQLITE_READONLY`), whatever the file's permissions. The one place segwatch sets it.
fn refuse_writes(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "query_only", true)
}

/// How long opening a fresh database retries switching it to WAL while another connection
/// holds it (the same bound as the busy timeout).
const WAL_SWITCH_BOUND: Duration = Duration::from_secs(10);

/// Puts the database in WAL mode (a persistent property of the file) and returns the mode.
/// Switching takes an exclusive lock, and SQLite answers `SQLITE_BUSY` at once, without its
/// busy handler, when another connection holds the file (a second process opening a fresh
/// database at the same moment): retried, bounded. Once any connection switched it, the
/// current mode is read without a lock.
fn enable_wal(conn: &Connection) -> Result<String> {
    let deadline = std::time::Instant::now() + WAL_SWITCH_BOUND;
    loop {
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(mode);
        }
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Ok(mode) => return Ok(mode),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Applies the pending migrations up to schema `target` in one transaction: an upgrade happens
/// whole or not at all. When it introduces the hash chain, the snapshots already stored are
/// hashed at the end, once every later migration has added the columns the chain reads.
pub(crate) fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found >= target {
        return Ok(());
    }
    // `BEGIN IMMEDIATE` takes SQLite's write lock before anything is read, and the version is
    // read again under it: a process that raced us here (one that ignored the writer lock, or
    // an older segwatch) either migrated first, and we find nothing left to do, or waits for
    // our commit. Two processes never both run a migration from the same version.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found >= target {
        return Ok(());
    }
    let mut backfill = false;
    for sql in &MIGRATIONS[found as usize..target as usize] {
        tx.execute_batch(sql)?;
        backfill |= *sql == CHAIN_MIGRATION;
    }
    if backfill {
        chain::backfill(&tx)?;
    }
    tx.pragma_update(None, "user_version", target)?;
    tx.commit()?;
    tracing::info!(from = found, to = target, "migrated the database schema");
    Ok(())
}

/// Whether SQLite could not open or create a file a read needs (for a read-only WAL database:
/// its `-shm` file): `SQLITE_CANTOPEN`, or `SQLITE_READONLY` (`_CANTINIT`, `_RECOVERY`: it
/// would have to write to the read-only directory to read).
fn is_cannot_open(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly))
}

/// `path` with `suffix` appended to its file name (`-wal`, `-shm`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A path as the path part of an SQLite `file:` URI: `%`, `?` and `#` are escaped (SQLite
/// decodes `%HH`; the others would start the query or fragment).
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_idempotent_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(Store::open(&path).unwrap());
        let store = Store::open(&path).unwrap();
        let v: i64 = store
            .connection()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = store
            .connection()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        store
            .connection()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        drop(store);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn read_only_open_never_creates_or_migrates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.db");
        assert!(Store::open_read_only(&path).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn the_read_only_handle_refuses_writes_even_on_a_writable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        Store::open(&path).unwrap().workspace_id("default").unwrap();
        let store = Store::open_read_only(&path).unwrap();
        let query_only: bool = store
            .conn
            .query_row("PRAGMA query_only", [], |r| r.get(0))
            .unwrap();
        assert!(query_only);
        let err = store
            .conn
            .execute("DELETE FROM workspaces", [])
            .unwrap_err();
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::ReadOnly),
            "{err}"
        );
        assert_eq!(store.find_workspace("default").unwrap(), Some(1));
    }

    #[test]
    fn processes_racing_to_migrate_a_fresh_database_both_succeed() {
        // Stores opened without the writer lock, as a process that ignores it would: `BEGIN
        // IMMEDIATE` and the version read again under it keep the migration whole and single.
        for round in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.db");
            let start = std::sync::Arc::new(std::sync::Barrier::new(2));
            let openers: Vec<_> = (0..2)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        Store::open(&path).map(drop)
                    })
                })
                .collect();
            for opener in openers {
                opener
                    .join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("round {round}: {e}"));
            }
            let store = Store::open_read_only(&path).unwrap();
            let version: i64 = store
                .connection()
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(version, SCHEMA_VERSION);
        }
    }
}
