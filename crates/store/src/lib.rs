//! The SQLite snapshot store: polls, resource versions and changes.
//!
//! Invariants (see ARCHITECTURE.md):
//! - A poll's results are written in one `IMMEDIATE` transaction; until it commits the snapshot
//!   is `running`, and a poll that fails (or a process that dies) never leaves a `complete` one.
//! - Snapshots are immutable once complete; versions are only ever closed (`valid_to` set), never
//!   edited, so any complete snapshot can be reconstructed exactly.
//! - The rows with `valid_to IS NULL` are exactly the last complete snapshot's resources: the
//!   diff base of the next poll.
//! - Every complete snapshot is sealed into its workspace's hash chain in its own commit
//!   transaction ([`chain`]); `segwatch verify` recomputes the chain.
//!
//! rusqlite is blocking; the work per poll is one short transaction, so callers run it inline.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use segwatch_core::alerts::{AlertEvent, AlertPlan, AlertRecord, AlertStatus};
use segwatch_core::diff::{ChangeOp, CurrentVersion, FieldChange, ResourceChange, SnapshotDelta};
use segwatch_core::model::{Attribution, KindStatus, KindStatuses, Quarantined, ResourceKind};
use segwatch_core::rules::Severity;
use segwatch_core::trail::{AuditEvent, Mark, TrailRead, format_time};

pub mod audit;
pub mod lock;
mod poll_inputs;
mod privacy;
mod report;
mod workspaces;

pub use poll_inputs::{PollInputs, PollLookup, PollReads};
pub use privacy::{NewPrivacyRequest, PrivacyRequestRecord};
pub use report::ChangeCount;
pub use workspaces::{CompletePoll, DeletionReport, FinishedPoll, StoredWorkspace, TableDeletion};
pub mod chain;

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
];

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// The file was written by a newer segwatch.
    #[error(
        "the database has schema version {found}, newer than this segwatch supports ({supported}); upgrade segwatch"
    )]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// A read-only command met a database that needs migrating.
    #[error(
        "the database has schema version {found} but this segwatch needs {supported}; run `segwatch poll` once to migrate it"
    )]
    NeedsMigration {
        /// Version in the file.
        found: i64,
        /// Version this build needs.
        supported: i64,
    },
    /// Another process holds the database's writer lock.
    #[error(transparent)]
    Lock(Box<lock::LockError>),
    /// A named snapshot does not exist or cannot be used.
    #[error("{0}")]
    Snapshot(String),
    /// Another poller committed for the same workspace while this poll ran.
    #[error(
        "another poller committed snapshot {found} for this workspace while this poll ran (expected base {expected:?}); only one poller per workspace may write to a database"
    )]
    Conflict {
        /// The base this poll diffed against.
        expected: Option<i64>,
        /// The latest complete snapshot found at commit time.
        found: i64,
    },
    /// A command named a workspace the database does not hold.
    #[error("the database holds no workspace named `{name}` (it holds: {})", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    UnknownWorkspace {
        /// The name given.
        name: String,
        /// The workspaces it holds, by name.
        known: Vec<String>,
    },
    /// A stored JSON column could not be read back.
    #[error("corrupt stored JSON in {what}: {cause}")]
    Json {
        /// Which row.
        what: String,
        /// The parse error.
        cause: serde_json::Error,
    },
}

impl From<lock::LockError> for StoreError {
    fn from(e: lock::LockError) -> Self {
        StoreError::Lock(Box::new(e))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// State of a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotStatus {
    /// The poll is in progress (or its process died; see [`Store::mark_interrupted`]).
    Running,
    /// Every kind was fetched in full and stored.
    Complete,
    /// The poll failed; `error` says why.
    Failed,
}

impl SnapshotStatus {
    fn parse(s: &str) -> SnapshotStatus {
        match s {
            "complete" => SnapshotStatus::Complete,
            "failed" => SnapshotStatus::Failed,
            _ => SnapshotStatus::Running,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotStatus::Running => "running",
            SnapshotStatus::Complete => "complete",
            SnapshotStatus::Failed => "failed",
        }
    }
}

/// One row of `snapshots`.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    /// Snapshot id (increasing).
    pub id: i64,
    /// When the poll started.
    pub started_at: String,
    /// When it finished, if it did.
    pub finished_at: Option<String>,
    /// Its state.
    pub status: SnapshotStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// The complete snapshot it was diffed against (none for the first, the baseline).
    pub base_snapshot_id: Option<i64>,
    /// Resources in the snapshot.
    pub resource_count: Option<i64>,
    /// Resources added since the base.
    pub added: Option<i64>,
    /// Resources removed since the base.
    pub removed: Option<i64>,
    /// Resources modified since the base.
    pub modified: Option<i64>,
    /// HTTP requests the poll made.
    pub api_requests: Option<i64>,
    /// Wall time of the poll.
    pub duration_ms: Option<i64>,
    /// Kinds it could not read in full (schema 10).
    pub kind_status: KindStatuses,
    /// Requests it spent confirming removals (schema 10).
    pub confirm_requests: Option<i64>,
}

/// A resource as stored in one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct StoredResource {
    /// Kind.
    pub kind: ResourceKind,
    /// Segment id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Canonical JSON body.
    pub body: String,
    /// Hex SHA-256 of the body.
    pub hash: String,
    /// When this version was first seen (start of the snapshot that stored it).
    pub seen_since: String,
}

/// Which snapshot a commit completes, and what is recorded with it.
#[derive(Debug, Clone, Copy)]
pub struct CommitTarget<'a> {
    /// The workspace (row id).
    pub workspace_id: i64,
    /// The `running` snapshot to complete.
    pub snapshot_id: i64,
    /// The complete snapshot it was diffed against; must still be the latest.
    pub base: Option<i64>,
    /// Segment's id of the workspace, recorded on the workspace row.
    pub segment_workspace_id: &'a str,
    /// Counters of the poll.
    pub stats: PollStats,
    /// What the poll read of the audit trail (its new events are stored), when it read it.
    pub trail: Option<&'a TrailRead>,
    /// The resource kinds the poll collected.
    pub kinds: &'a [ResourceKind],
    /// The kinds it could not read in full (stored in `snapshots.kind_status`).
    pub kind_status: &'a KindStatuses,
    /// Requests spent confirming removals.
    pub confirm_requests: u64,
    /// Items it could not understand (stored once each in `quarantine`).
    pub quarantine: &'a [Quarantined],
}

/// One row of the `quarantine` table.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineRow {
    /// Row id.
    pub id: i64,
    /// The snapshot that first read it.
    pub snapshot_id: i64,
    /// Its kind's name (`audit_event` for the trail).
    pub kind: String,
    /// The request path.
    pub path: String,
    /// Its index in the listing.
    pub position: i64,
    /// Why it could not be used.
    pub reason: String,
    /// The item as JSON text (possibly cut).
    pub raw: String,
    /// Whether `raw` was cut.
    pub truncated: bool,
}

/// A stored change with the bodies of its two sides.
#[derive(Debug, Clone)]
pub struct ChangeWithBodies {
    /// The change.
    pub change: ResourceChange,
    /// The version before (modified, removed).
    pub before: Option<serde_json::Value>,
    /// The version after (added, modified).
    pub after: Option<serde_json::Value>,
}

/// A stored change with the ids of the versions on its two sides.
struct StoredChange {
    change: ResourceChange,
    before_version: Option<i64>,
    after_version: Option<i64>,
}

/// Counters recorded with a completed snapshot.
#[derive(Debug, Clone, Copy)]
pub struct PollStats {
    /// Resources in the snapshot.
    pub resource_count: usize,
    /// HTTP requests made.
    pub api_requests: u64,
    /// Wall time of the whole poll.
    pub duration: Duration,
}

/// A connection to the snapshot database.
pub struct Store {
    conn: Connection,
    /// The writer lock this connection writes under ([`Store::open_writer`]); `None` for
    /// [`Store::open`] (tests and tools on a private file) and [`Store::open_read_only`].
    writer: Option<Arc<lock::WriterLock>>,
    /// The database file, to find its lock file.
    path: PathBuf,
}

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

    /// Opens an existing database read-only (for auditors and listing commands): it never
    /// writes, not even a migration, and takes no lock, so it works while the daemon writes.
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
        Ok(Store {
            conn,
            writer: None,
            path: path.to_path_buf(),
        })
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

    /// The underlying connection, for read-only queries in tests and tools.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The id of the workspace labelled `name`, creating it on first use.
    pub fn workspace_id(&mut self, name: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO workspaces (name, created_at) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
            params![name, now()],
        )?;
        Ok(self
            .conn
            .query_row("SELECT id FROM workspaces WHERE name = ?1", [name], |r| {
                r.get(0)
            })?)
    }

    /// The id of an existing workspace, for read-only commands.
    pub fn find_workspace(&self, name: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT id FROM workspaces WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Marks as failed ("interrupted") the polls of a workspace left `running` by a process
    /// that no longer holds the database's writer lock, i.e. that died or finished without
    /// recording its poll. Call before starting a poll.
    pub fn mark_interrupted(&mut self, workspace_id: i64) -> Result<usize> {
        // Under the writer lock (every command that polls), every `running` row is dead by
        // construction: a live poll is only ever run by the lock's holder, and we hold it, so
        // a row of another process is one whose process lost the lock, which only happens when
        // it ends (the kernel releases the lock of a dead process); and a row of this process
        // is one whose poll was abandoned, since polls of one workspace never overlap within a
        // process (the daemon runs one task per workspace, `poll` polls them in turn).
        //
        // Without the lock (a tool on its own file), ask the lock: rows whose recorded pid and
        // host are those of the current holder belong to a live poll and are left alone. Rows
        // from before schema 13 record no holder and are treated as dead, as they always were.
        let live = match self.writer {
            Some(_) => None,
            None => lock::current_holder(&self.path)?,
        };
        let (pid, host) = match &live {
            Some(h) => (Some(i64::from(h.pid)), Some(h.host.as_str())),
            None => (None, None),
        };
        Ok(self.conn.execute(
            "UPDATE snapshots SET status = 'failed', finished_at = ?2,
                error = 'interrupted: the process stopped before the poll finished'
             WHERE workspace_id = ?1 AND status = 'running'
               AND NOT (poller_pid IS ?3 AND poller_host IS ?4 AND ?3 IS NOT NULL)",
            params![workspace_id, now(), pid, host],
        )?)
    }

    /// Records the start of a poll, with the process that runs it, and returns its snapshot id.
    pub fn begin_snapshot(&mut self, workspace_id: i64) -> Result<i64> {
        let holder = match &self.writer {
            Some(lock) => lock.holder().clone(),
            None => lock::Holder::this_process("poll"),
        };
        self.conn.execute(
            "INSERT INTO snapshots (workspace_id, started_at, status, poller_pid, poller_host)
             VALUES (?1, ?2, 'running', ?3, ?4)",
            params![workspace_id, now(), i64::from(holder.pid), holder.host],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records a failed poll with its error. Nothing else of the poll was written.
    pub fn fail_snapshot(
        &mut self,
        snapshot_id: i64,
        error: &str,
        api_requests: u64,
        duration: Duration,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE snapshots SET status = 'failed', finished_at = ?2, error = ?3, api_requests = ?4,
                duration_ms = ?5 WHERE id = ?1",
            params![snapshot_id, now(), error, api_requests as i64, duration.as_millis() as i64],
        )?;
        Ok(())
    }

    /// The latest complete snapshot of a workspace.
    pub fn latest_complete(&self, workspace_id: i64) -> Result<Option<i64>> {
        Ok(self.conn.query_row(
            "SELECT max(id) FROM snapshots WHERE workspace_id = ?1 AND status = 'complete'",
            [workspace_id],
            |r| r.get(0),
        )?)
    }

    /// The complete snapshot just before `snapshot_id`.
    pub fn previous_complete(&self, workspace_id: i64, snapshot_id: i64) -> Result<Option<i64>> {
        Ok(self.conn.query_row(
            "SELECT max(id) FROM snapshots WHERE workspace_id = ?1 AND status = 'complete' AND id < ?2",
            params![workspace_id, snapshot_id],
            |r| r.get(0),
        )?)
    }

    /// The current version of every resource: the state of the latest complete snapshot.
    pub fn current_versions(
        &self,
        workspace_id: i64,
    ) -> Result<HashMap<(ResourceKind, String), CurrentVersion>> {
        let mut stmt = self.conn.prepare(
            "SELECT kind, resource_id, id, content_hash, name FROM resource_versions
             WHERE workspace_id = ?1 AND valid_to IS NULL",
        )?;
        let mut out = HashMap::new();
        let mut rows = stmt.query([workspace_id])?;
        while let Some(row) = rows.next()? {
            let kind = parse_kind(&row.get::<_, String>(0)?)?;
            out.insert(
                (kind, row.get(1)?),
                CurrentVersion {
                    version_id: row.get(2)?,
                    hash: row.get(3)?,
                    name: row.get(4)?,
                },
            );
        }
        Ok(out)
    }

    /// The parsed body of one stored version.
    pub fn version_value(&self, version_id: i64) -> Result<serde_json::Value> {
        let body: String = self
            .conn
            .prepare_cached("SELECT body FROM resource_versions WHERE id = ?1")?
            .query_row([version_id], |r| r.get(0))?;
        serde_json::from_str(&body).map_err(|cause| StoreError::Json {
            what: format!("resource_versions.body of version {version_id}"),
            cause,
        })
    }

    /// Writes a successful poll in one transaction: closes replaced versions, inserts new ones,
    /// records the changes, the alerts they raised and resolved, and marks the snapshot
    /// complete. Fails with [`StoreError::Conflict`] if the base is no longer the latest
    /// complete snapshot (or a finding to resolve is no longer open). Returns the ids of the
    /// inserted alerts, in the order of `alerts.opened`.
    pub fn commit_snapshot(
        &mut self,
        target: &CommitTarget<'_>,
        delta: &SnapshotDelta<'_>,
        alerts: &AlertPlan,
    ) -> Result<Vec<i64>> {
        let CommitTarget {
            workspace_id,
            snapshot_id,
            base,
            segment_workspace_id,
            stats,
            trail,
            kinds,
            kind_status,
            confirm_requests,
            quarantine,
        } = *target;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let latest: Option<i64> = tx.query_row(
            "SELECT max(id) FROM snapshots WHERE workspace_id = ?1 AND status = 'complete'",
            [workspace_id],
            |r| r.get(0),
        )?;
        if latest != base {
            return Err(StoreError::Conflict {
                expected: base,
                found: latest.unwrap_or_default(),
            });
        }
        {
            let mut close = tx.prepare_cached(
                "UPDATE resource_versions SET valid_to = ?1 WHERE id = ?2 AND valid_to IS NULL",
            )?;
            let old_ids = delta
                .modified
                .iter()
                .map(|(_, old)| *old)
                .chain(delta.removed.iter().copied())
                .chain(delta.untracked.iter().copied());
            for old in old_ids {
                if close.execute(params![snapshot_id, old])? != 1 {
                    return Err(StoreError::Snapshot(format!(
                        "version {old} was already closed; is another poller running?"
                    )));
                }
            }
        }
        let mut inserted = HashMap::with_capacity(delta.added.len() + delta.modified.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO resource_versions
                    (workspace_id, kind, resource_id, name, content_hash, body, valid_from)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for r in delta
                .added
                .iter()
                .copied()
                .chain(delta.modified.iter().map(|(r, _)| *r))
            {
                insert.execute(params![
                    workspace_id,
                    r.kind.as_str(),
                    r.id,
                    r.name,
                    r.hash,
                    r.body,
                    snapshot_id
                ])?;
                inserted.insert((r.kind, r.id.as_str()), tx.last_insert_rowid());
            }
        }
        let mut change_ids = Vec::with_capacity(delta.changes.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO changes (snapshot_id, workspace_id, kind, resource_id, name, op,
                    before_version_id, after_version_id, fields, text_diff,
                    actor, actor_email, event_type, event_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            for planned in &delta.changes {
                let c = &planned.change;
                let after = planned
                    .after
                    .and_then(|r| inserted.get(&(r.kind, r.id.as_str())));
                let fields = serde_json::to_string(&c.fields).expect("field changes serialise");
                insert.execute(params![
                    snapshot_id,
                    workspace_id,
                    c.kind.as_str(),
                    c.resource_id,
                    c.name,
                    c.op.as_str(),
                    planned.before_version,
                    after,
                    fields,
                    c.text_diff,
                    c.attribution.actor,
                    c.attribution.actor_email,
                    c.attribution.event_type,
                    c.attribution.event_id
                ])?;
                change_ids.push(tx.last_insert_rowid());
            }
        }
        if let Some(trail) = trail {
            write_trail(&tx, workspace_id, snapshot_id, trail)?;
        }
        let alert_ids = write_alerts(&tx, workspace_id, snapshot_id, alerts, &change_ids)?;
        write_quarantine(&tx, workspace_id, snapshot_id, quarantine)?;
        tx.execute(
            "UPDATE workspaces SET segment_id = ?2 WHERE id = ?1 AND segment_id IS NOT ?2",
            params![workspace_id, segment_workspace_id],
        )?;
        // Only a snapshot still `running` completes: one another process marked failed (a
        // writer without the lock, or an older segwatch) must not turn complete with an error.
        let completed = tx.execute(
            "UPDATE snapshots SET status = 'complete', finished_at = ?2, base_snapshot_id = ?3,
                resource_count = ?4, added = ?5, removed = ?6, modified = ?7, api_requests = ?8,
                duration_ms = ?9, collected_kinds = ?10, kind_status = ?11, confirm_requests = ?12
             WHERE id = ?1 AND status = 'running'",
            params![
                snapshot_id,
                now(),
                base,
                stats.resource_count as i64,
                delta.added.len() as i64,
                delta.removed.len() as i64,
                delta.modified.len() as i64,
                stats.api_requests as i64,
                stats.duration.as_millis() as i64,
                serde_json::to_string(&kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>())
                    .expect("kind names serialise"),
                (!kind_status.is_empty())
                    .then(|| serde_json::to_string(kind_status).expect("kind status serialises")),
                confirm_requests as i64
            ],
        )?;
        if completed != 1 {
            return Err(StoreError::Snapshot(format!(
                "snapshot {snapshot_id} is no longer running (another process marked it failed); \
                 only one process may write to a database"
            )));
        }
        // Last, so that it reads back exactly what this transaction wrote.
        let sealing = std::time::Instant::now();
        chain::seal(&tx, workspace_id, snapshot_id)?;
        tracing::debug!(
            snapshot = snapshot_id,
            elapsed_us = sealing.elapsed().as_micros() as u64,
            "sealed the snapshot into the chain"
        );
        tx.commit()?;
        Ok(alert_ids)
    }

    /// The deliveries due at `now` (pending, or failed and due for a retry), oldest first, as
    /// light keys without their alerts: the outbox plans its messages from these and loads the
    /// alerts a few at a time ([`Store::due_deliveries_by_id`]), so that a poll raising 100,000
    /// alerts never holds them all in memory.
    pub fn due_delivery_keys(
        &self,
        workspace_id: i64,
        now: &str,
        sink: Option<&str>,
    ) -> Result<Vec<DueKey>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.id, d.sink, d.snapshot_id, d.event, d.attempts, a.id, a.rule_id, a.severity, a.status
             FROM deliveries d JOIN alerts a ON a.id = d.alert_id
             WHERE d.workspace_id = ?1 AND d.status IN ('pending', 'failed') AND d.next_attempt_at <= ?2
               AND (?3 IS NULL OR d.sink = ?3)
             ORDER BY d.id",
        )?;
        let bad = |i: usize, e: String| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
        };
        let rows = stmt.query_map(params![workspace_id, now, sink], |r| {
            let resolved = r.get::<_, String>(3)? == "resolved";
            let severity: String = r.get(7)?;
            let status: String = r.get(8)?;
            let status = AlertStatus::parse(&status)
                .ok_or_else(|| bad(8, format!("unknown alert status `{status}`")))?;
            Ok(DueKey {
                id: r.get(0)?,
                sink: r.get(1)?,
                snapshot_id: r.get(2)?,
                resolved,
                attempts: r.get(4)?,
                alert_id: r.get(5)?,
                rule_id: r.get(6)?,
                severity: severity
                    .parse()
                    .map_err(|_| bad(7, format!("unknown severity `{severity}`")))?,
                // As of the event delivered: a finding raised then already resolved is announced
                // as raised.
                status: match (resolved, status) {
                    (false, AlertStatus::Resolved) => AlertStatus::Open,
                    (_, s) => s,
                },
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The due deliveries with these ids, with the alert each one carries, in the order of
    /// `ids` (ids that do not exist are skipped).
    pub fn due_deliveries_by_id(&self, ids: &[i64]) -> Result<Vec<DueDelivery>> {
        let sql = format!(
            "SELECT d.id, d.sink, d.snapshot_id, d.event, d.attempts, {} FROM deliveries d JOIN alerts a ON a.id = d.alert_id
             WHERE d.id = ?1",
            ALERT_FIELDS.split(", ").map(|c| format!("a.{}", c.trim())).collect::<Vec<_>>().join(", ")
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row = stmt
                .query_row([id], |r| {
                    Ok(DueDelivery {
                        id: r.get(0)?,
                        sink: r.get(1)?,
                        snapshot_id: r.get(2)?,
                        resolved: r.get::<_, String>(3)? == "resolved",
                        attempts: r.get(4)?,
                        alert: alert_row_at(r, 5)?,
                    })
                })
                .optional()?;
            out.extend(row);
        }
        Ok(out)
    }

    /// Marks deliveries `summarised`: their alerts were counted, not listed, in a summary
    /// message the sink confirmed (see `sinks::outbox`). They stay stored and listed.
    pub fn record_summarised(&mut self, ids: &[i64]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE deliveries SET status = 'summarised', sent_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
            )?;
            let at = now();
            for id in ids {
                stmt.execute(params![id, at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records the outcome of delivery attempts.
    pub fn record_delivery(&mut self, ids: &[i64], outcome: &DeliveryOutcome<'_>) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = match outcome {
                DeliveryOutcome::Sent => tx.prepare_cached(
                    "UPDATE deliveries SET status = 'sent', sent_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
                )?,
                DeliveryOutcome::Failed { .. } => tx.prepare_cached(
                    "UPDATE deliveries SET status = ?3, attempts = attempts + 1, next_attempt_at = ?2, last_error = ?4 WHERE id = ?1",
                )?,
            };
            for id in ids {
                match outcome {
                    DeliveryOutcome::Sent => stmt.execute(params![id, now()])?,
                    DeliveryOutcome::Failed {
                        next_attempt_at,
                        dead,
                        error,
                    } => stmt.execute(params![
                        id,
                        next_attempt_at,
                        if *dead { "dead" } else { "failed" },
                        error
                    ])?,
                };
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Deliveries of a workspace, newest first.
    pub fn deliveries(
        &self,
        workspace_id: i64,
        status: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT d.id, d.sink, d.alert_id, d.event, d.status, d.attempts, d.next_attempt_at, d.last_error,
                    d.created_at, d.sent_at, a.summary
             FROM deliveries d JOIN alerts a ON a.id = d.alert_id
             WHERE d.workspace_id = ?1 AND (?2 IS NULL OR d.status = ?2) ORDER BY d.id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![workspace_id, status, limit.min(i64::MAX as usize) as i64],
            |r| {
                Ok(DeliveryRow {
                    id: r.get(0)?,
                    sink: r.get(1)?,
                    alert_id: r.get(2)?,
                    event: r.get(3)?,
                    status: r.get(4)?,
                    attempts: r.get(5)?,
                    next_attempt_at: r.get(6)?,
                    last_error: r.get(7)?,
                    created_at: r.get(8)?,
                    sent_at: r.get(9)?,
                    summary: r.get(10)?,
                })
            },
        )?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Puts a failed or dead delivery back in the queue, due now. Returns whether it existed in
    /// a state that can be retried.
    pub fn retry_delivery(&mut self, workspace_id: i64, id: i64) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ?3
             WHERE id = ?1 AND workspace_id = ?2 AND status IN ('failed', 'dead')",
            params![id, workspace_id, now()],
        )? == 1)
    }

    /// Counts for health checks and metrics, straight from the tables.
    pub fn metrics(&self, workspace_id: i64) -> Result<StoreMetrics> {
        let grouped = |sql: &str| -> Result<Vec<(String, i64)>> {
            let mut stmt = self.conn.prepare(sql)?;
            let rows = stmt.query_map([workspace_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        };
        // The last complete poll, read once: when, how long, what it could not read.
        type LastComplete = (String, Option<i64>, Option<String>, Option<i64>);
        let last: Option<LastComplete> = self
            .conn
            .query_row(
                "SELECT finished_at, duration_ms, kind_status, confirm_requests FROM snapshots
                 WHERE workspace_id = ?1 AND status = 'complete' ORDER BY id DESC LIMIT 1",
                [workspace_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let (last_success, kind_status, last_confirm_requests) = match last {
            Some((at, ms, status, confirms)) => {
                let status = parse_kind_status(status, "the last complete snapshot")?;
                (Some((at, ms)), status, confirms)
            }
            None => (None, KindStatuses::new(), None),
        };
        let quarantined = self.conn.query_row(
            "SELECT count(*) FROM quarantine WHERE workspace_id = ?1",
            [workspace_id],
            |r| r.get(0),
        )?;
        let last_poll: Option<(String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT status, error FROM snapshots WHERE workspace_id = ?1 AND status != 'running'
                 ORDER BY id DESC LIMIT 1",
                [workspace_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(StoreMetrics {
            polls_by_status: grouped(
                "SELECT status, count(*) FROM snapshots WHERE workspace_id = ?1 GROUP BY status",
            )?,
            resources_by_kind: grouped(
                "SELECT kind, count(*) FROM resource_versions WHERE workspace_id = ?1 AND valid_to IS NULL GROUP BY kind",
            )?,
            open_findings_by_severity: grouped(
                "SELECT severity, count(*) FROM alerts WHERE workspace_id = ?1 AND status = 'open' GROUP BY severity",
            )?,
            deliveries_by_status: grouped(
                "SELECT status, count(*) FROM deliveries WHERE workspace_id = ?1 GROUP BY status",
            )?,
            last_success_at: last_success.as_ref().map(|(at, _)| at.clone()),
            last_success_duration_ms: last_success.and_then(|(_, ms)| ms),
            last_poll_status: last_poll.as_ref().map(|(s, _)| s.clone()),
            last_poll_error: last_poll.and_then(|(_, e)| e),
            kind_status,
            last_confirm_requests,
            quarantined,
            undelivered: {
                let mut stmt = self.conn.prepare(
                    "SELECT sink, count(*), min(created_at) FROM deliveries
                     WHERE workspace_id = ?1 AND status IN ('pending', 'failed')
                     GROUP BY sink ORDER BY sink",
                )?;
                let rows =
                    stmt.query_map([workspace_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<std::result::Result<_, _>>()?
            },
        })
    }

    /// When the workspace's current run of failed polls began, if its last finished poll
    /// failed: the end of the last complete poll, or the start of the first poll ever. With it,
    /// the last failed snapshot and its error.
    pub fn failing_since(&self, workspace_id: i64) -> Result<Option<FailingPolls>> {
        let last: Option<(i64, String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT id, status, error FROM snapshots WHERE workspace_id = ?1 AND status != 'running'
                 ORDER BY id DESC LIMIT 1",
                [workspace_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((snapshot_id, status, error)) = last else {
            return Ok(None);
        };
        if status != "failed" {
            return Ok(None);
        }
        let since: String = self.conn.query_row(
            "SELECT coalesce(
                (SELECT finished_at FROM snapshots WHERE workspace_id = ?1 AND status = 'complete'
                 ORDER BY id DESC LIMIT 1),
                (SELECT min(started_at) FROM snapshots WHERE workspace_id = ?1))",
            [workspace_id],
            |r| r.get(0),
        )?;
        Ok(Some(FailingPolls {
            since,
            snapshot_id,
            error: error.unwrap_or_default(),
        }))
    }

    /// The open finding of `rule_id` in a workspace, if any (for segwatch's own alerts, which
    /// have one subject per workspace).
    pub fn open_alert_of_rule(
        &self,
        workspace_id: i64,
        rule_id: &str,
    ) -> Result<Option<AlertRecord>> {
        Ok(self
            .alerts(
                workspace_id,
                &AlertFilter {
                    status: Some(AlertStatus::Open),
                    rule_id: Some(rule_id.to_string()),
                    ..AlertFilter::default()
                },
            )?
            .into_iter()
            .next())
    }

    /// Writes alerts raised outside a snapshot commit (segwatch's own, after a failed poll)
    /// with their queued deliveries, in one transaction; returns the new alerts' ids.
    pub fn record_alerts(
        &mut self,
        workspace_id: i64,
        snapshot_id: i64,
        alerts: &AlertPlan,
    ) -> Result<Vec<i64>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids = write_alerts(&tx, workspace_id, snapshot_id, alerts, &[])?;
        tx.commit()?;
        Ok(ids)
    }

    /// Applies the retention policy to a workspace, in one transaction:
    /// - failed polls that finished before `failed_before` are deleted, unless an alert or
    ///   delivery refers to them (segwatch's own failing-polls alert does);
    /// - quiet complete snapshots (nothing stored, closed, changed, alerted or delivered) that
    ///   finished before `quiet_before` are replaced by a tombstone in `pruned_snapshots` that
    ///   keeps their chain link verifiable (the contract in `docs/EVIDENCE.md`); the next
    ///   snapshot's `base_snapshot_id` is re-pointed to the pruned one's base, whose state was
    ///   the same.
    ///
    /// Versions, changes, alerts and deliveries are never deleted, so every state and change
    /// stays reconstructible. The workspace's latest complete snapshot (the next diff base) and
    /// the newest row of the table (so SQLite never reuses an id) are always kept.
    pub fn prune(&mut self, workspace_id: i64, policy: &Retention) -> Result<PruneReport> {
        if policy.failed_before.is_none() && policy.quiet_before.is_none() {
            // Runs after every poll: with nothing to prune, take no write lock.
            return Ok(PruneReport::default());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let newest: i64 = tx.query_row("SELECT coalesce(max(id), 0) FROM snapshots", [], |r| {
            r.get(0)
        })?;
        let mut report = PruneReport::default();
        if let Some(before) = &policy.failed_before {
            report.failed_polls = tx.execute(
                "DELETE FROM snapshots
                 WHERE workspace_id = ?1 AND status = 'failed' AND finished_at < ?2 AND id < ?3
                   AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.snapshot_id = snapshots.id
                                    OR a.resolved_snapshot_id = snapshots.id)
                   AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.snapshot_id = snapshots.id)
                   AND NOT EXISTS (SELECT 1 FROM audit_reads r WHERE r.snapshot_id = snapshots.id)
                   AND NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.snapshot_id = snapshots.id)",
                params![workspace_id, before, newest],
            )?;
        }
        if let Some(before) = &policy.quiet_before {
            let quiet: Vec<i64> = {
                let mut stmt = tx.prepare(
                    "SELECT s.id FROM snapshots s
                     WHERE s.workspace_id = ?1 AND s.status = 'complete' AND s.finished_at < ?2
                       AND s.id < ?3 AND s.chain_hash IS NOT NULL
                       AND s.added = 0 AND s.removed = 0 AND s.modified = 0
                       AND s.id < (SELECT max(id) FROM snapshots
                                   WHERE workspace_id = ?1 AND status = 'complete')
                       AND NOT EXISTS (SELECT 1 FROM resource_versions v WHERE v.valid_from = s.id)
                       AND NOT EXISTS (SELECT 1 FROM resource_versions v WHERE v.valid_to = s.id)
                       AND NOT EXISTS (SELECT 1 FROM changes c WHERE c.snapshot_id = s.id)
                       AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.snapshot_id = s.id)
                       AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.resolved_snapshot_id = s.id)
                       AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.snapshot_id = s.id)
                       AND NOT EXISTS (SELECT 1 FROM rule_state r WHERE r.evaluated_snapshot_id = s.id)
                       AND NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.snapshot_id = s.id)
                       AND s.kind_status IS NULL
                       AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.snapshot_id = s.id)
                     ORDER BY s.id",
                )?;
                stmt.query_map(params![workspace_id, before, newest], |r| r.get(0))?
                    .collect::<std::result::Result<_, _>>()?
            };
            let at = now();
            for id in &quiet {
                // Oldest first, so a run of quiet snapshots re-points each base in turn.
                tx.execute(
                    "INSERT INTO pruned_snapshots
                        (id, workspace_id, started_at, finished_at, resource_count, chain_hash, pruned_at)
                     SELECT id, workspace_id, started_at, finished_at, resource_count, chain_hash, ?2
                     FROM snapshots WHERE id = ?1",
                    params![id, at],
                )?;
                tx.execute(
                    "UPDATE snapshots SET base_snapshot_id =
                        (SELECT base_snapshot_id FROM snapshots WHERE id = ?1)
                     WHERE base_snapshot_id = ?1",
                    [id],
                )?;
                // Where that poll's audit-trail read ended is superseded by every later read.
                tx.execute("DELETE FROM audit_reads WHERE snapshot_id = ?1", [id])?;
                tx.execute("DELETE FROM snapshots WHERE id = ?1", [id])?;
            }
            report.quiet_snapshots = quiet.len();
        }
        if policy.dry_run {
            tx.rollback()?;
        } else {
            tx.commit()?;
        }
        Ok(report)
    }

    /// The resource kinds a complete snapshot collected (see migration 0008; snapshots from
    /// before it collected the seven kinds segwatch always reads).
    pub fn collected_kinds(&self, snapshot_id: i64) -> Result<Vec<ResourceKind>> {
        let text: Option<String> = self.conn.query_row(
            "SELECT collected_kinds FROM snapshots WHERE id = ?1",
            [snapshot_id],
            |r| r.get(0),
        )?;
        let Some(text) = text else {
            return Ok(ResourceKind::ALL[..7].to_vec());
        };
        let names: Vec<String> = serde_json::from_str(&text).map_err(|e| {
            StoreError::Snapshot(format!("snapshot {snapshot_id}: bad collected_kinds: {e}"))
        })?;
        names.iter().map(|n| parse_kind(n)).collect()
    }

    /// The kinds a complete snapshot vouches for: those it collected, less those unavailable
    /// that it had never read (a kind unavailable since the first poll is simply absent). A
    /// kind the next poll reads that is not among them is a baseline of its own.
    pub fn known_kinds(&self, snapshot_id: i64) -> Result<Vec<ResourceKind>> {
        let status = self.kind_status(snapshot_id)?;
        Ok(self
            .collected_kinds(snapshot_id)?
            .into_iter()
            .filter(|k| {
                !matches!(
                    status.get(k),
                    Some(KindStatus::Unavailable { carried: false, .. })
                )
            })
            .collect())
    }

    /// Items quarantined by a workspace's polls, newest first.
    pub fn quarantined(&self, workspace_id: i64, limit: usize) -> Result<Vec<QuarantineRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, snapshot_id, kind, path, position, reason, raw, truncated
             FROM quarantine WHERE workspace_id = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![workspace_id, limit as i64], |r| {
            Ok(QuarantineRow {
                id: r.get(0)?,
                snapshot_id: r.get(1)?,
                kind: r.get(2)?,
                path: r.get(3)?,
                position: r.get(4)?,
                reason: r.get(5)?,
                raw: r.get(6)?,
                truncated: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The kinds a complete snapshot could not read in full (migration 0010; empty when it read
    /// every kind, and for snapshots from before it).
    pub fn kind_status(&self, snapshot_id: i64) -> Result<KindStatuses> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT kind_status FROM snapshots WHERE id = ?1",
                [snapshot_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        parse_kind_status(text, &format!("snapshot {snapshot_id}"))
    }

    /// Open compliance findings of a workspace.
    pub fn open_findings(&self, workspace_id: i64) -> Result<Vec<AlertRecord>> {
        self.alerts(
            workspace_id,
            &AlertFilter {
                status: Some(AlertStatus::Open),
                ..AlertFilter::default()
            },
        )
    }

    /// Alerts of a workspace matching `filter`, newest first.
    pub fn alerts(&self, workspace_id: i64, filter: &AlertFilter) -> Result<Vec<AlertRecord>> {
        let mut sql = format!("{ALERT_COLUMNS} WHERE workspace_id = ?1");
        let mut args: Vec<rusqlite::types::Value> = vec![workspace_id.into()];
        if let Some(status) = filter.status {
            args.push(status.as_str().to_string().into());
            sql.push_str(&format!(" AND status = ?{}", args.len()));
        }
        if let Some(rule) = &filter.rule_id {
            args.push(rule.clone().into());
            sql.push_str(&format!(" AND rule_id = ?{}", args.len()));
        }
        if let Some(snapshot) = filter.snapshot_id {
            args.push(snapshot.into());
            sql.push_str(&format!(
                " AND (snapshot_id = ?{n} OR resolved_snapshot_id = ?{n})",
                n = args.len()
            ));
        }
        sql.push_str(" ORDER BY id DESC");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), alert_row)?;
        let mut out = Vec::new();
        for row in rows {
            let alert = row?;
            if filter.min_severity.is_none_or(|min| alert.severity >= min) {
                out.push(alert);
            }
        }
        if let Some(limit) = filter.limit {
            out.truncate(limit);
        }
        Ok(out)
    }

    /// Each rule's fingerprint when it was last evaluated for the workspace.
    pub fn rule_states(&self, workspace_id: i64) -> Result<HashMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT rule_id, fingerprint FROM rule_state WHERE workspace_id = ?1")?;
        let rows = stmt.query_map([workspace_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// When each current resource version was first seen: the start of the snapshot that stored it.
    pub fn seen_since(
        &self,
        workspace_id: i64,
    ) -> Result<HashMap<(ResourceKind, String), chrono::DateTime<chrono::Utc>>> {
        let mut stmt = self.conn.prepare(
            "SELECT v.kind, v.resource_id, s.started_at FROM resource_versions v
             JOIN snapshots s ON s.id = v.valid_from
             WHERE v.workspace_id = ?1 AND v.valid_to IS NULL",
        )?;
        let mut rows = stmt.query([workspace_id])?;
        let mut out = HashMap::new();
        while let Some(row) = rows.next()? {
            let started: String = row.get(2)?;
            let at = chrono::DateTime::parse_from_rfc3339(&started).map_err(|e| {
                StoreError::Snapshot(format!("bad timestamp `{started}` in snapshots: {e}"))
            })?;
            out.insert(
                (parse_kind(&row.get::<_, String>(0)?)?, row.get(1)?),
                at.with_timezone(&chrono::Utc),
            );
        }
        Ok(out)
    }

    /// Snapshots of a workspace, newest first.
    pub fn snapshots(&self, workspace_id: i64, limit: usize) -> Result<Vec<SnapshotInfo>> {
        let sql = format!("{SNAPSHOT_COLUMNS} WHERE workspace_id = ?1 ORDER BY id DESC LIMIT ?2");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(
            params![workspace_id, limit.min(i64::MAX as usize) as i64],
            snapshot_row,
        )?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// One snapshot, which must belong to the workspace.
    pub fn snapshot(&self, workspace_id: i64, snapshot_id: i64) -> Result<SnapshotInfo> {
        let sql = format!("{SNAPSHOT_COLUMNS} WHERE workspace_id = ?1 AND id = ?2");
        self.conn
            .query_row(&sql, params![workspace_id, snapshot_id], snapshot_row)
            .optional()?
            .ok_or_else(|| {
                StoreError::Snapshot(format!("no snapshot {snapshot_id} in this workspace"))
            })
    }

    /// Every resource exactly as it was in a complete snapshot, sorted by kind and id.
    pub fn resources_at(&self, workspace_id: i64, snapshot_id: i64) -> Result<Vec<StoredResource>> {
        let info = self.snapshot(workspace_id, snapshot_id)?;
        if info.status != SnapshotStatus::Complete {
            return Err(StoreError::Snapshot(format!(
                "snapshot {snapshot_id} is {}, not complete: it holds no resources",
                info.status.as_str()
            )));
        }
        let mut stmt = self.conn.prepare(
            "SELECT v.kind, v.resource_id, v.name, v.body, v.content_hash, s.started_at
             FROM resource_versions v JOIN snapshots s ON s.id = v.valid_from
             WHERE v.workspace_id = ?1 AND v.valid_from <= ?2 AND (v.valid_to IS NULL OR v.valid_to > ?2)
             ORDER BY v.kind, v.resource_id",
        )?;
        let mut rows = stmt.query(params![workspace_id, snapshot_id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(StoredResource {
                kind: parse_kind(&row.get::<_, String>(0)?)?,
                id: row.get(1)?,
                name: row.get(2)?,
                body: row.get(3)?,
                hash: row.get(4)?,
                seen_since: row.get(5)?,
            });
        }
        out.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        Ok(out)
    }

    /// The changes of a snapshot with the bodies of their two sides.
    pub fn change_bodies(&self, snapshot_id: i64) -> Result<Vec<ChangeWithBodies>> {
        let mut out = Vec::new();
        for stored in self.change_rows(snapshot_id)? {
            out.push(ChangeWithBodies {
                before: stored
                    .before_version
                    .map(|id| self.version_value(id))
                    .transpose()?,
                after: stored
                    .after_version
                    .map(|id| self.version_value(id))
                    .transpose()?,
                change: stored.change,
            });
        }
        Ok(out)
    }

    /// The audit trail mark left by the workspace's latest complete poll that read the trail.
    pub fn audit_mark(&self, workspace_id: i64) -> Result<Option<Mark>> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT mark_at, mark_event_ids FROM audit_reads WHERE workspace_id = ?1
                 ORDER BY snapshot_id DESC LIMIT 1",
                [workspace_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((at, ids)) = row else {
            return Ok(None);
        };
        Ok(Some(Mark {
            at: parse_time(&at, "audit_reads.mark_at")?,
            ids: serde_json::from_str(&ids).map_err(|cause| StoreError::Json {
                what: "audit_reads.mark_event_ids".into(),
                cause,
            })?,
        }))
    }

    /// Whether the workspace already stored the audit event `event_id`.
    pub fn has_audit_event(&self, workspace_id: i64, event_id: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM audit_events WHERE workspace_id = ?1 AND event_id = ?2")?
            .query_row(params![workspace_id, event_id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Stored audit events of a workspace with a timestamp in `[from, to]`, oldest first.
    pub fn audit_events_between(
        &self,
        workspace_id: i64,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<AuditEvent>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT event_id, occurred_at, type, actor, actor_email, resource_id, resource_type,
                resource_name, body
             FROM audit_events WHERE workspace_id = ?1 AND occurred_at >= ?2 AND occurred_at <= ?3
             ORDER BY occurred_at, id",
        )?;
        let mut rows = stmt.query(params![workspace_id, format_time(from), format_time(to)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let at: String = r.get(1)?;
            out.push(AuditEvent {
                id: r.get(0)?,
                occurred_at: parse_time(&at, "audit_events.occurred_at")?,
                event_type: r.get(2)?,
                actor: r.get(3)?,
                actor_email: r.get(4)?,
                resource_id: r.get(5)?,
                resource_type: r.get(6)?,
                resource_name: r.get(7)?,
                body: r.get(8)?,
            });
        }
        Ok(out)
    }

    /// The changes recorded for a snapshot against its base.
    pub fn changes_of(&self, snapshot_id: i64) -> Result<Vec<ResourceChange>> {
        Ok(self
            .change_rows(snapshot_id)?
            .into_iter()
            .map(|c| c.change)
            .collect())
    }

    /// Changes with their before and after version ids, sorted by kind and resource id.
    fn change_rows(&self, snapshot_id: i64) -> Result<Vec<StoredChange>> {
        let mut stmt = self.conn.prepare(
            "SELECT kind, resource_id, name, op, fields, text_diff, id, before_version_id, after_version_id,
                actor, actor_email, event_type, event_id
             FROM changes WHERE snapshot_id = ?1",
        )?;
        let mut rows = stmt.query([snapshot_id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let fields: String = row.get(4)?;
            let change_id: i64 = row.get(6)?;
            let fields: Vec<FieldChange> =
                serde_json::from_str(&fields).map_err(|cause| StoreError::Json {
                    what: format!("changes.fields of change {change_id}"),
                    cause,
                })?;
            let op: String = row.get(3)?;
            let change = ResourceChange {
                kind: parse_kind(&row.get::<_, String>(0)?)?,
                resource_id: row.get(1)?,
                name: row.get(2)?,
                op: op.parse::<ChangeOp>().map_err(|_| {
                    StoreError::Snapshot(format!("change {change_id} has unknown op `{op}`"))
                })?,
                fields,
                text_diff: row.get(5)?,
                attribution: Attribution {
                    actor: row.get(9)?,
                    actor_email: row.get(10)?,
                    event_type: row.get(11)?,
                    event_id: row.get(12)?,
                },
            };
            out.push(StoredChange {
                change,
                before_version: row.get(7)?,
                after_version: row.get(8)?,
            });
        }
        out.sort_by(|a, b| {
            (a.change.kind, &a.change.resource_id).cmp(&(b.change.kind, &b.change.resource_id))
        });
        Ok(out)
    }
}

/// Which alerts [`Store::alerts`] returns.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Only this status.
    pub status: Option<AlertStatus>,
    /// Only this severity or higher.
    pub min_severity: Option<Severity>,
    /// Only this rule.
    pub rule_id: Option<String>,
    /// Only alerts raised or resolved by this snapshot.
    pub snapshot_id: Option<i64>,
    /// At most this many (newest first).
    pub limit: Option<usize>,
}

fn write_alerts(
    tx: &rusqlite::Transaction<'_>,
    workspace_id: i64,
    snapshot_id: i64,
    alerts: &AlertPlan,
    change_ids: &[i64],
) -> Result<Vec<i64>> {
    let at = now();
    let mut ids = Vec::with_capacity(alerts.opened.len());
    let mut insert = tx.prepare_cached(
        "INSERT INTO alerts (workspace_id, rule_id, rule_kind, severity, title, resource_kind, resource_id,
            resource_name, snapshot_id, change_id, status, opened_at, summary, explanation, remediation, tags,
            actor, actor_email, event_type, event_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )?;
    for a in &alerts.opened {
        let status = if a.rule_kind == "change" {
            AlertStatus::Fired
        } else {
            AlertStatus::Open
        };
        let change_id = a.change_index.map(|i| change_ids[i]);
        insert.execute(params![
            workspace_id,
            a.rule_id,
            a.rule_kind,
            a.severity.as_str(),
            a.title,
            a.resource_kind.as_str(),
            a.resource_id,
            a.resource_name,
            snapshot_id,
            change_id,
            status.as_str(),
            at,
            a.summary,
            a.explanation.to_string(),
            a.remediation,
            serde_json::to_string(&a.tags).expect("tags serialise"),
            a.attribution.actor,
            a.attribution.actor_email,
            a.attribution.event_type,
            a.attribution.event_id
        ])?;
        ids.push(tx.last_insert_rowid());
    }
    let mut resolve = tx.prepare_cached(
        "UPDATE alerts SET status = 'resolved', resolved_at = ?2, resolved_snapshot_id = ?3, resolution = ?4
         WHERE id = ?1 AND status = 'open'",
    )?;
    for r in &alerts.resolved {
        if resolve.execute(params![r.alert.id, at, snapshot_id, r.resolution.as_str()])? != 1 {
            return Err(StoreError::Snapshot(format!(
                "finding {} was no longer open; is another poller running?",
                r.alert.id
            )));
        }
    }
    let mut state = tx.prepare_cached(
        "INSERT INTO rule_state (workspace_id, rule_id, fingerprint, evaluated_snapshot_id) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (workspace_id, rule_id) DO UPDATE SET fingerprint = excluded.fingerprint,
            evaluated_snapshot_id = excluded.evaluated_snapshot_id
         WHERE fingerprint IS NOT excluded.fingerprint",
    )?;
    for (rule, fingerprint) in &alerts.rule_states {
        state.execute(params![workspace_id, rule, fingerprint, snapshot_id])?;
    }
    let mut queue = tx.prepare_cached(
        "INSERT INTO deliveries (workspace_id, sink, snapshot_id, alert_id, event, status, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6) ON CONFLICT (sink, alert_id, event) DO NOTHING",
    )?;
    for (event, sink) in &alerts.deliveries {
        let (alert_id, name) = match *event {
            AlertEvent::Opened(i) => (ids[i], "raised"),
            AlertEvent::Resolved(i) => (alerts.resolved[i].alert.id, "resolved"),
        };
        queue.execute(params![workspace_id, sink, snapshot_id, alert_id, name, at])?;
    }
    let mut drop_state =
        tx.prepare_cached("DELETE FROM rule_state WHERE workspace_id = ?1 AND rule_id = ?2")?;
    for rule in &alerts.dropped_rules {
        drop_state.execute(params![workspace_id, rule])?;
    }
    Ok(ids)
}

/// Stores a poll's new audit events and its read of the trail (with the mark the next poll
/// starts from).
/// Stores the items a poll could not understand; one already stored (same kind and content)
/// is not stored again.
fn write_quarantine(
    tx: &rusqlite::Transaction<'_>,
    workspace_id: i64,
    snapshot_id: i64,
    items: &[Quarantined],
) -> Result<usize> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO quarantine
            (workspace_id, snapshot_id, kind, path, position, reason, raw, truncated, raw_sha256)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut stored = 0;
    for q in items {
        stored += insert.execute(params![
            workspace_id,
            snapshot_id,
            q.kind.as_str(),
            q.path,
            q.position as i64,
            q.reason,
            q.raw,
            q.truncated,
            q.raw_sha256
        ])?;
    }
    Ok(stored)
}

fn write_trail(
    tx: &rusqlite::Transaction<'_>,
    workspace_id: i64,
    snapshot_id: i64,
    trail: &TrailRead,
) -> Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO audit_events (workspace_id, event_id, occurred_at, type, actor, actor_email,
            resource_id, resource_type, resource_name, body, snapshot_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (workspace_id, event_id) DO NOTHING",
    )?;
    let mut stored = 0i64;
    for e in &trail.new_events {
        stored += insert.execute(params![
            workspace_id,
            e.id,
            format_time(e.occurred_at),
            e.event_type,
            e.actor,
            e.actor_email,
            e.resource_id,
            e.resource_type,
            e.resource_name,
            e.body,
            snapshot_id
        ])? as i64;
    }
    tx.execute(
        "INSERT INTO audit_reads (snapshot_id, workspace_id, start_time, end_time, events_read,
            events_new, mark_at, mark_event_ids)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            snapshot_id,
            workspace_id,
            format_time(trail.start),
            format_time(trail.end),
            trail.events_read as i64,
            stored,
            format_time(trail.mark.at),
            serde_json::to_string(&trail.mark.ids).expect("ids serialise")
        ],
    )?;
    Ok(())
}

/// The columns [`alert_row_at`] reads, in order.
macro_rules! alert_fields {
    () => {
        "id, rule_id, rule_kind, severity, title, resource_kind, resource_id, resource_name, snapshot_id, \
         change_id, status, opened_at, resolved_at, resolved_snapshot_id, resolution, summary, explanation, \
         remediation, tags, actor, actor_email, event_type, event_id"
    };
}
const ALERT_FIELDS: &str = alert_fields!();
const ALERT_COLUMNS: &str = concat!("SELECT ", alert_fields!(), " FROM alerts");

/// What [`Store::prune`] deletes: records older than these instants (RFC 3339); `None` keeps
/// them forever.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    /// Failed (and interrupted) polls that finished before this.
    pub failed_before: Option<String>,
    /// Quiet complete snapshots that finished before this.
    pub quiet_before: Option<String>,
    /// Count what would go, delete nothing.
    pub dry_run: bool,
}

/// What one [`Store::prune`] deleted (or would delete, in a dry run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Failed-poll records.
    pub failed_polls: usize,
    /// Quiet complete snapshots replaced by a tombstone.
    pub quiet_snapshots: usize,
}

/// A workspace whose last finished poll failed.
#[derive(Debug, Clone)]
pub struct FailingPolls {
    /// Since when no poll has completed (RFC 3339).
    pub since: String,
    /// The last failed snapshot.
    pub snapshot_id: i64,
    /// Its error.
    pub error: String,
}

/// Counts read by `/healthz` and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct StoreMetrics {
    /// Polls per status.
    pub polls_by_status: Vec<(String, i64)>,
    /// Current resources per kind.
    pub resources_by_kind: Vec<(String, i64)>,
    /// Open findings per severity.
    pub open_findings_by_severity: Vec<(String, i64)>,
    /// Deliveries per status.
    pub deliveries_by_status: Vec<(String, i64)>,
    /// When the last complete poll finished.
    pub last_success_at: Option<String>,
    /// How long it took.
    pub last_success_duration_ms: Option<i64>,
    /// Status of the last finished poll.
    pub last_poll_status: Option<String>,
    /// Its error, if it failed.
    pub last_poll_error: Option<String>,
    /// Kinds the last complete poll could not read in full.
    pub kind_status: KindStatuses,
    /// Requests the last complete poll spent confirming removals.
    pub last_confirm_requests: Option<i64>,
    /// Items in quarantine.
    pub quarantined: i64,
    /// Per sink: deliveries not yet confirmed (pending or failed, to be retried) and when the
    /// oldest of them was queued.
    pub undelivered: Vec<(String, i64, String)>,
}

/// A delivery that is due, without its alert: what the outbox plans messages with.
#[derive(Debug, Clone)]
pub struct DueKey {
    /// Row id.
    pub id: i64,
    /// The sink's name.
    pub sink: String,
    /// The poll that queued it.
    pub snapshot_id: i64,
    /// Whether it delivers the alert's resolution (else its raising).
    pub resolved: bool,
    /// Attempts so far.
    pub attempts: u32,
    /// The alert.
    pub alert_id: i64,
    /// The alert's rule.
    pub rule_id: String,
    /// The alert's severity.
    pub severity: segwatch_core::rules::Severity,
    /// The alert's status as of the event delivered.
    pub status: AlertStatus,
}

/// A delivery that is due, with its alert.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// Row id.
    pub id: i64,
    /// The sink's name.
    pub sink: String,
    /// The poll that queued it.
    pub snapshot_id: i64,
    /// Whether it delivers the alert's resolution (else its raising).
    pub resolved: bool,
    /// Attempts so far.
    pub attempts: u32,
    /// The alert, as stored now.
    pub alert: AlertRecord,
}

/// What a delivery attempt came to.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome<'a> {
    /// The sink confirmed.
    Sent,
    /// It failed; retried at `next_attempt_at` unless `dead`.
    Failed {
        /// When to try again.
        next_attempt_at: &'a str,
        /// Whether to give up.
        dead: bool,
        /// The error, kept for operators.
        error: &'a str,
    },
}

/// One row of `deliveries`, for listing.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRow {
    /// Row id.
    pub id: i64,
    /// The sink's name.
    pub sink: String,
    /// The alert.
    pub alert_id: i64,
    /// `raised` or `resolved`.
    pub event: String,
    /// `pending`, `failed`, `sent`, `summarised` or `dead`.
    pub status: String,
    /// Attempts so far.
    pub attempts: u32,
    /// When it is due.
    pub next_attempt_at: String,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: String,
    /// When it was sent.
    pub sent_at: Option<String>,
    /// The alert's summary.
    pub summary: String,
}

fn alert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRecord> {
    alert_row_at(r, 0)
}

/// Reads an alert from the row's columns starting at `at` (in `ALERT_FIELDS` order).
fn alert_row_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<AlertRecord> {
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let severity: String = r.get(at + 3)?;
    let kind: String = r.get(at + 5)?;
    let status: String = r.get(at + 10)?;
    let explanation: String = r.get(at + 16)?;
    let tags: String = r.get(at + 18)?;
    Ok(AlertRecord {
        id: r.get(at)?,
        rule_id: r.get(at + 1)?,
        rule_kind: r.get(at + 2)?,
        severity: severity
            .parse()
            .map_err(|_| bad(at + 3, format!("unknown severity `{severity}`")))?,
        title: r.get(at + 4)?,
        resource_kind: kind
            .parse()
            .map_err(|e: segwatch_core::model::UnknownKind| bad(at + 5, e.to_string()))?,
        resource_id: r.get(at + 6)?,
        resource_name: r.get(at + 7)?,
        snapshot_id: r.get(at + 8)?,
        change_id: r.get(at + 9)?,
        status: AlertStatus::parse(&status)
            .ok_or_else(|| bad(at + 10, format!("unknown status `{status}`")))?,
        opened_at: r.get(at + 11)?,
        resolved_at: r.get(at + 12)?,
        resolved_snapshot_id: r.get(at + 13)?,
        resolution: r.get(at + 14)?,
        summary: r.get(at + 15)?,
        explanation: serde_json::from_str(&explanation).map_err(|e| bad(at + 16, e.to_string()))?,
        remediation: r.get(at + 17)?,
        tags: serde_json::from_str(&tags).map_err(|e| bad(at + 18, e.to_string()))?,
        attribution: Attribution {
            actor: r.get(at + 19)?,
            actor_email: r.get(at + 20)?,
            event_type: r.get(at + 21)?,
            event_id: r.get(at + 22)?,
        },
    })
}

const SNAPSHOT_COLUMNS: &str =
    "SELECT id, started_at, finished_at, status, error, base_snapshot_id,
    resource_count, added, removed, modified, api_requests, duration_ms, kind_status,
    confirm_requests FROM snapshots";

fn snapshot_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SnapshotInfo> {
    Ok(SnapshotInfo {
        id: r.get(0)?,
        started_at: r.get(1)?,
        finished_at: r.get(2)?,
        status: SnapshotStatus::parse(&r.get::<_, String>(3)?),
        error: r.get(4)?,
        base_snapshot_id: r.get(5)?,
        resource_count: r.get(6)?,
        added: r.get(7)?,
        removed: r.get(8)?,
        modified: r.get(9)?,
        api_requests: r.get(10)?,
        duration_ms: r.get(11)?,
        kind_status: r
            .get::<_, Option<String>>(12)?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default(),
        confirm_requests: r.get(13)?,
    })
}

/// `snapshots.kind_status` as stored (NULL: every kind read in full).
fn parse_kind_status(text: Option<String>, snapshot: &str) -> Result<KindStatuses> {
    match text {
        None => Ok(KindStatuses::new()),
        Some(text) => serde_json::from_str(&text).map_err(|cause| StoreError::Json {
            what: format!("snapshots.kind_status of {snapshot}"),
            cause,
        }),
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // FULL: a committed snapshot is audit evidence and must survive a power cut; the cost is one
    // fsync per poll.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
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

fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Applies the pending migrations up to schema `target` in one transaction: an upgrade happens
/// whole or not at all. When it introduces the hash chain, the snapshots already stored are
/// hashed at the end, once every later migration has added the columns the chain reads.
fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
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

fn parse_kind(s: &str) -> Result<ResourceKind> {
    s.parse().map_err(|e: segwatch_core::model::UnknownKind| {
        StoreError::Snapshot(format!("stored row: {e}"))
    })
}

fn parse_time(text: &str, what: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| StoreError::Snapshot(format!("bad timestamp `{text}` in {what}: {e}")))
}

/// Now as stored: RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests_drift;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use segwatch_core::alerts::AlertPlan;
    use segwatch_core::diff::plan;
    use segwatch_core::model::Resource;

    pub(crate) fn user(id: &str, role: &str) -> Resource {
        Resource::new(
            ResourceKind::User,
            id.into(),
            format!("{id}@acme.io"),
            json!({"id": id, "email": format!("{id}@acme.io"), "permissions": [{"roleId": role, "roleName": role, "resources": []}]}),
        )
    }

    fn stats(n: usize) -> PollStats {
        PollStats {
            resource_count: n,
            api_requests: 1,
            duration: Duration::from_millis(5),
        }
    }

    /// Runs the store half of a poll, as `poll::Poller` does.
    fn commit(store: &mut Store, ws: i64, resources: &[Resource]) -> Result<(i64, usize)> {
        commit_with(store, ws, resources, &AlertPlan::default())
    }

    /// [`commit`] with the alerts the rules would have planned.
    pub(crate) fn commit_with(
        store: &mut Store,
        ws: i64,
        resources: &[Resource],
        alerts: &AlertPlan,
    ) -> Result<(i64, usize)> {
        let id = store.begin_snapshot(ws)?;
        let base = store.latest_complete(ws)?;
        let current = store.current_versions(ws)?;
        let delta = plan(resources, &current, base.is_none(), |v| {
            store.version_value(v)
        })?;
        let n = delta.changes.len();
        let target = CommitTarget {
            workspace_id: ws,
            snapshot_id: id,
            base,
            segment_workspace_id: "seg-ws",
            stats: stats(resources.len()),
            trail: None,
            kinds: &ResourceKind::ALL,
            kind_status: &Default::default(),
            confirm_requests: 0,
            quarantine: &[],
        };
        store.commit_snapshot(&target, &delta, alerts)?;
        Ok((id, n))
    }

    fn count(store: &Store, table: &str) -> i64 {
        store
            .connection()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

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
    fn storage_grows_with_changes_and_every_snapshot_reconstructs() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let ws = store.workspace_id("default").unwrap();
        let first = vec![user("a", "r1"), user("b", "r1"), user("c", "r1")];
        let (s1, n1) = commit(&mut store, ws, &first).unwrap();
        assert_eq!(n1, 0, "a baseline records no changes");
        let (s2, n2) = commit(&mut store, ws, &first).unwrap();
        assert_eq!(n2, 0);
        assert_eq!(
            (count(&store, "resource_versions"), count(&store, "changes")),
            (3, 0)
        );

        let second = vec![user("a", "owner"), user("c", "r1"), user("d", "r1")];
        let (s3, n3) = commit(&mut store, ws, &second).unwrap();
        assert_eq!(n3, 3, "a modified, b removed, d added");
        assert_eq!(count(&store, "resource_versions"), 5);
        let ops: Vec<_> = store
            .changes_of(s3)
            .unwrap()
            .iter()
            .map(|c| (c.resource_id.clone(), c.op))
            .collect();
        assert_eq!(
            ops,
            vec![
                ("a".to_string(), ChangeOp::Modified),
                ("b".into(), ChangeOp::Removed),
                ("d".into(), ChangeOp::Added)
            ]
        );

        let hashes = |rs: &[Resource]| {
            rs.iter()
                .map(|r| (r.id.clone(), r.body.clone()))
                .collect::<Vec<_>>()
        };
        let stored = |s| {
            store
                .resources_at(ws, s)
                .unwrap()
                .into_iter()
                .map(|r| (r.id, r.body))
                .collect::<Vec<_>>()
        };
        assert_eq!(stored(s1), hashes(&first));
        assert_eq!(stored(s2), hashes(&first));
        assert_eq!(stored(s3), hashes(&second));
        let info = store.snapshot(ws, s3).unwrap();
        assert_eq!(
            (
                info.added,
                info.removed,
                info.modified,
                info.base_snapshot_id
            ),
            (Some(1), Some(1), Some(1), Some(s2))
        );
    }

    #[test]
    fn failed_and_interrupted_polls_are_never_a_base() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let ws = store.workspace_id("default").unwrap();
        let (good, _) = commit(&mut store, ws, &[user("a", "r1")]).unwrap();
        let failed = store.begin_snapshot(ws).unwrap();
        store
            .fail_snapshot(failed, "boom", 3, Duration::from_millis(1))
            .unwrap();
        let _killed = store.begin_snapshot(ws).unwrap();
        assert_eq!(store.mark_interrupted(ws).unwrap(), 1);
        assert_eq!(store.latest_complete(ws).unwrap(), Some(good));
        let statuses: Vec<_> = store
            .snapshots(ws, 10)
            .unwrap()
            .iter()
            .map(|s| s.status)
            .collect();
        assert_eq!(
            statuses,
            vec![
                SnapshotStatus::Failed,
                SnapshotStatus::Failed,
                SnapshotStatus::Complete
            ]
        );
        assert!(store.resources_at(ws, failed).is_err());
        let (_, n) = commit(&mut store, ws, &[user("a", "r1")]).unwrap();
        assert_eq!(n, 0, "the next good poll diffs against the last good one");
    }

    #[test]
    fn a_concurrent_commit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let ws = store.workspace_id("default").unwrap();
        let stale = store.begin_snapshot(ws).unwrap();
        commit(&mut store, ws, &[user("a", "r1")]).unwrap();
        let resources = [user("b", "r1")];
        let delta = plan(&resources, &HashMap::new(), true, |v| {
            store.version_value(v)
        })
        .unwrap();
        let err = store
            .commit_snapshot(
                &CommitTarget {
                    workspace_id: ws,
                    snapshot_id: stale,
                    base: None,
                    segment_workspace_id: "seg-ws",
                    stats: stats(1),
                    trail: None,
                    kinds: &ResourceKind::ALL,
                    kind_status: &Default::default(),
                    confirm_requests: 0,
                    quarantine: &[],
                },
                &delta,
                &AlertPlan::default(),
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        assert_eq!(
            count(&store, "resource_versions"),
            1,
            "the refused commit wrote nothing"
        );
    }

    #[test]
    fn read_only_open_never_creates_or_migrates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.db");
        assert!(Store::open_read_only(&path).is_err());
        assert!(!path.exists());
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

    #[test]
    fn only_polls_whose_process_lost_the_lock_are_marked_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let lock = Arc::new(lock::WriterLock::acquire(&path, "run", Duration::ZERO).unwrap());
        let mut writer = Store::open_writer(lock.clone()).unwrap();
        let ws = writer.workspace_id("default").unwrap();
        let live = writer.begin_snapshot(ws).unwrap();
        let (pid, host): (i64, String) = writer
            .connection()
            .query_row(
                "SELECT poller_pid, poller_host FROM snapshots WHERE id = ?1",
                [live],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (pid, host),
            (i64::from(std::process::id()), lock::host_name())
        );
        // A row of a process that is gone (another pid, not the lock's holder).
        let mut other = Store::open(&path).unwrap();
        let dead = other.begin_snapshot(ws).unwrap();
        other
            .connection()
            .execute("UPDATE snapshots SET poller_pid = 1 WHERE id = ?1", [dead])
            .unwrap();

        // A store without the lock leaves the holder's live poll alone.
        assert_eq!(other.mark_interrupted(ws).unwrap(), 1);
        let status = |store: &Store, id| store.snapshot(ws, id).unwrap().status;
        assert_eq!(
            (status(&other, live), status(&other, dead)),
            (SnapshotStatus::Running, SnapshotStatus::Failed)
        );
        // Once the holder is gone, its row is dead too.
        drop(writer);
        drop(lock);
        assert_eq!(other.mark_interrupted(ws).unwrap(), 1);
        assert_eq!(status(&other, live), SnapshotStatus::Failed);
    }

    #[test]
    fn a_snapshot_marked_failed_meanwhile_does_not_complete() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let ws = store.workspace_id("default").unwrap();
        let id = store.begin_snapshot(ws).unwrap();
        assert_eq!(store.mark_interrupted(ws).unwrap(), 1);
        let resources = [user("a", "r1")];
        let delta = plan(&resources, &HashMap::new(), true, |v| {
            store.version_value(v)
        })
        .unwrap();
        let target = CommitTarget {
            workspace_id: ws,
            snapshot_id: id,
            base: None,
            segment_workspace_id: "seg-ws",
            stats: stats(1),
            trail: None,
            kinds: &ResourceKind::ALL,
            kind_status: &Default::default(),
            confirm_requests: 0,
            quarantine: &[],
        };
        let err = store
            .commit_snapshot(&target, &delta, &AlertPlan::default())
            .unwrap_err();
        assert!(err.to_string().contains("no longer running"), "{err}");
        let info = store.snapshot(ws, id).unwrap();
        assert_eq!(info.status, SnapshotStatus::Failed);
    }
}
