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
//!
//! Every SQL statement of segwatch lives in this crate, one file per group of tables: `open`
//! (connections, migrations), `snapshots` (workspaces, snapshots, versions, changes), `commit`
//! (a poll's transaction, quarantine), `alerts` (alerts, rule state), `deliveries` (the outbox),
//! `metrics`, `retention`, `trail` (audit events and reads), [`chain`], `privacy`, `report`,
//! `access_reviews` (imported access reviews, sealed as chain links),
//! `workspaces`, and [`audit`] (the auditors' read-only queries).

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::Connection;

use segwatch_core::model::ResourceKind;
use segwatch_core::time::Timestamp;

mod access;
mod access_reviews;
mod alerts;
pub mod audit;
pub mod chain;
mod commit;
mod deliveries;
mod flow_fields;
pub mod lock;
mod metrics;
mod open;
mod poll_inputs;
mod privacy;
mod report;
mod retention;
mod snapshots;
mod trail;
mod workspaces;

pub use access_reviews::{
    GrantIdentity, NewAccessReview, NewDecision, RecordedReview, ReviewFacts, RevokeDecision,
};
pub use alerts::AlertFilter;
pub use commit::{CommitTarget, PollStats, QuarantineRow};
pub use deliveries::{
    DeliveryEvent, DeliveryOutcome, DeliveryRow, DeliveryStatus, DueDelivery, DueKey,
    FindingUpdate, UnknownDeliveryStatus,
};
pub use metrics::{FailingPolls, RowCounts, StoreMetrics};
pub use open::SCHEMA_VERSION;
pub use poll_inputs::{PollInputs, PollLookup, PollReads};
pub use privacy::{NewPrivacyRequest, PrivacyRequestRecord};
pub use report::ChangeCount;
pub use retention::{PruneReport, Retention};
pub use snapshots::{ChangeWithBodies, SnapshotInfo, SnapshotStatus, StoredResource};
pub use workspaces::{CompletePoll, DeletionReport, FinishedPoll, StoredWorkspace, TableDeletion};

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
    /// The underlying connection, for the assertions of tests: the application reaches the
    /// database only through the methods of this crate, so this exists only in its unit tests
    /// and with the `test-support` feature (which segwatch enables for its integration tests).
    #[cfg(any(test, feature = "test-support"))]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

fn parse_kind(s: &str) -> Result<ResourceKind> {
    s.parse().map_err(|e: segwatch_core::model::UnknownKind| {
        StoreError::Snapshot(format!("stored row: {e}"))
    })
}

fn parse_time(text: &str, what: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    Timestamp::parse(text)
        .map(Timestamp::as_datetime)
        .map_err(|e| StoreError::Snapshot(format!("bad timestamp `{text}` in {what}: {e}")))
}

/// Now as stored: RFC 3339 UTC with milliseconds ([`Timestamp`]'s format).
pub fn now() -> String {
    Timestamp::now().to_string()
}

/// Reads a stored time column: the one place a row's text becomes a [`Timestamp`] (the
/// orphan rule keeps `FromSql` off a core type, so the SQL boundary converts here).
pub(crate) fn time_col(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Timestamp> {
    let text: String = r.get(i)?;
    Timestamp::parse(&text).map_err(|e| bad_time(i, &text, e))
}

/// [`time_col`] for a nullable column.
pub(crate) fn opt_time_col(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<Timestamp>> {
    let text: Option<String> = r.get(i)?;
    text.map(|text| Timestamp::parse(&text).map_err(|e| bad_time(i, &text, e)))
        .transpose()
}

fn bad_time(i: usize, text: &str, e: chrono::ParseError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        i,
        rusqlite::types::Type::Text,
        format!("bad timestamp `{text}`: {e}").into(),
    )
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_drift;
