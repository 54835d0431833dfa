//! Read-only answers to an auditor's questions, over the snapshot database: arbitrary SQL that
//! cannot write, the history of one resource, the changes observed between two instants and
//! the exact state at an instant.
//!
//! Time has one meaning here, the same as in the `audit_*` views (docs/SCHEMA.md): a complete
//! snapshot is observed at its `finished_at`, and the state at an instant `T` is the state of
//! the latest complete snapshot observed at or before `T`. A resource version is valid from its
//! first snapshot's observation time until (not including) the observation time of the
//! snapshot that replaced or removed it.
//!
//! Nothing here writes: the commands open the store with [`Store::open_read_only`], whose
//! connection refuses writes (`PRAGMA query_only`); [`ReadOnlyQuery`] turns the same guard on
//! for a store opened otherwise and refuses any statement SQLite reports as writing; the other
//! functions only `SELECT`.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
/// One value of a query result, as SQLite holds it.
pub use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use crate::{Store, StoreError, opt_time_col, time_col};
use segwatch_core::diff::{ChangeOp, FieldChange};
use segwatch_core::model::ResourceKind;
use segwatch_core::time::Timestamp;

/// Errors of audit queries.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// SQLite refused or failed a statement (syntax, unknown table or column, …).
    #[error("SQL error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The statement would change the database.
    #[error(
        "refused: this statement would write to the database, and auditing is read-only (use SELECT, WITH or read-only PRAGMAs)"
    )]
    WouldWrite,
    /// More than one statement was given.
    #[error("give one SQL statement at a time (found more after the first `;`)")]
    MultipleStatements,
    /// Nothing but whitespace or comments.
    #[error("the SQL is empty")]
    EmptyQuery,
    /// No resource of this kind ever had this id or name.
    #[error("no {kind} with id or name `{key}` was ever observed in this workspace")]
    NotFound {
        /// The kind searched.
        kind: ResourceKind,
        /// The id or name given.
        key: String,
    },
    /// Several resources of this kind had this name.
    #[error(
        "{} {kind}s have been named `{name}`; name one by id:\n{}",
        candidates.len(),
        candidates.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n")
    )]
    Ambiguous {
        /// The kind searched.
        kind: ResourceKind,
        /// The name given.
        name: String,
        /// Every resource that had it.
        candidates: Vec<Candidate>,
    },
    /// The workspace has no complete snapshot at all.
    #[error("this workspace has no complete snapshot yet: run `segwatch poll`")]
    NoSnapshot,
    /// The instant is before the first complete snapshot, so nothing was observed yet.
    #[error(
        "nothing was observed at or before {at}: the first complete snapshot of this workspace was observed at {first}"
    )]
    BeforeFirstSnapshot {
        /// The instant asked for.
        at: String,
        /// When the first complete snapshot was observed.
        first: String,
    },
    /// An interval whose end is not after its start.
    #[error("the interval is empty: the end ({until}) is not after the start ({since})")]
    EmptyInterval {
        /// Start.
        since: String,
        /// End.
        until: String,
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

type Result<T> = std::result::Result<T, AuditError>;

/// A resource that matched a name, listed when the name is ambiguous.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// Segment's id.
    pub id: String,
    /// Its latest name.
    pub name: String,
    /// Whether it exists in the latest complete snapshot.
    pub current: bool,
    /// When its latest version was first observed.
    pub last_version_at: Timestamp,
}

impl std::fmt::Display for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {} since {})",
            self.id,
            self.name,
            if self.current { "current" } else { "removed" },
            self.last_version_at
        )
    }
}

/// A string that is not an instant the commands accept.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is not a time; use RFC 3339 (2026-03-01T09:30:00Z), YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS] (UTC)"
)]
pub struct BadInstant(pub String);

/// Parses an instant: RFC 3339 with any offset, `YYYY-MM-DD` (midnight UTC), or
/// `YYYY-MM-DD HH:MM[:SS[.fff]]` (UTC; `T` may replace the space).
pub fn parse_instant(text: &str) -> std::result::Result<DateTime<Utc>, BadInstant> {
    let s = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(t.and_utc());
        }
    }
    Err(BadInstant(text.to_string()))
}

/// An instant as the database stores times: RFC 3339 UTC with milliseconds, which sorts as
/// text. Sub-millisecond digits are dropped, which keeps `<=` and `>` comparisons with stored
/// (millisecond) times exact.
pub fn format_instant(t: DateTime<Utc>) -> String {
    Timestamp::from(t).to_string()
}

/// One SQL statement prepared on a connection that cannot write.
pub struct ReadOnlyQuery<'c> {
    stmt: rusqlite::Statement<'c>,
    columns: Vec<String>,
}

impl<'c> ReadOnlyQuery<'c> {
    /// Prepares `sql` after making the store's connection refuse writes (`PRAGMA query_only`,
    /// for the rest of its life, as [`Store::open_read_only`]'s already does). Refuses several statements and any statement SQLite reports as
    /// writing, before it runs.
    pub fn prepare(store: &'c Store, sql: &str) -> Result<ReadOnlyQuery<'c>> {
        store.refuse_writes()?;
        let conn = &store.conn;
        let stmt = conn.prepare(sql).map_err(|e| match e {
            rusqlite::Error::MultipleStatement => AuditError::MultipleStatements,
            rusqlite::Error::Empty => AuditError::EmptyQuery,
            e => AuditError::Sql(e),
        })?;
        if !stmt.readonly() {
            return Err(AuditError::WouldWrite);
        }
        let columns = stmt.column_names().map(String::from).collect();
        Ok(ReadOnlyQuery { stmt, columns })
    }

    /// The result's column names, in order (possibly repeated, as SQL allows).
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Runs the statement and calls `on_row` with each row's values, in order; returns the
    /// number of rows.
    pub fn for_each_row<E: From<AuditError>>(
        &mut self,
        mut on_row: impl FnMut(&[SqlValue]) -> std::result::Result<(), E>,
    ) -> std::result::Result<usize, E> {
        let width = self.columns.len();
        let mut rows = self.stmt.query([]).map_err(AuditError::Sql)?;
        let mut values = Vec::with_capacity(width);
        let mut count = 0;
        while let Some(row) = rows.next().map_err(AuditError::Sql)? {
            values.clear();
            for i in 0..width {
                values.push(row.get::<_, SqlValue>(i).map_err(AuditError::Sql)?);
            }
            on_row(&values)?;
            count += 1;
        }
        Ok(count)
    }
}

/// Stops the statements running on `store` once `limit` has passed, until dropped: a query an
/// auditor wrote by hand (a cross join over every version, say) must not run for hours against
/// the database the daemon writes. An interrupted statement fails with SQLite's "interrupted".
#[derive(Debug)]
pub struct TimeLimit {
    done: Option<std::sync::mpsc::Sender<()>>,
}

impl TimeLimit {
    /// Starts the clock.
    pub fn start(store: &Store, limit: std::time::Duration) -> TimeLimit {
        let handle = store.conn.get_interrupt_handle();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
                handle.interrupt();
            }
        });
        TimeLimit { done: Some(done) }
    }
}

impl Drop for TimeLimit {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

/// Whether `error` is SQLite's answer to an interrupted statement (see [`TimeLimit`]).
pub fn is_interrupted(error: &AuditError) -> bool {
    matches!(
        error,
        AuditError::Sql(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::OperationInterrupted
    )
}

/// The full result of a query.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows, each with one value per column.
    pub rows: Vec<Vec<SqlValue>>,
}

/// Runs one read-only statement and collects its result (see [`ReadOnlyQuery`]).
pub fn run_query(store: &Store, sql: &str) -> Result<QueryResult> {
    let mut query = ReadOnlyQuery::prepare(store, sql)?;
    let mut rows = Vec::new();
    query.for_each_row(|row| {
        rows.push(row.to_vec());
        Ok::<_, AuditError>(())
    })?;
    Ok(QueryResult {
        columns: query.columns,
        rows,
    })
}

/// One stored version of a resource and the interval it was valid.
#[derive(Debug, Clone, Serialize)]
pub struct VersionSpan {
    /// Row id in `resource_versions`.
    pub version_id: i64,
    /// The resource's name in this version.
    pub name: String,
    /// First snapshot holding it.
    pub valid_from_snapshot_id: i64,
    /// When that snapshot was observed.
    pub valid_from_at: Timestamp,
    /// First snapshot no longer holding it (changed or removed); `None` while current.
    pub valid_to_snapshot_id: Option<i64>,
    /// When that snapshot was observed.
    pub valid_to_at: Option<Timestamp>,
    /// Hex SHA-256 of the body.
    pub content_hash: String,
    /// The canonical body.
    pub body: Value,
}

/// What happened to a resource at one step of its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryEvent {
    /// Observed for the first time without a recorded change: it was there at the baseline.
    FirstSeen,
    /// Appeared (for the first time, or again after a removal).
    Added,
    /// Its content changed.
    Modified,
    /// Disappeared.
    Removed,
}

impl HistoryEvent {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryEvent::FirstSeen => "first_seen",
            HistoryEvent::Added => "added",
            HistoryEvent::Modified => "modified",
            HistoryEvent::Removed => "removed",
        }
    }
}

/// One step of a resource's history, at one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryStep {
    /// The snapshot that observed it.
    pub snapshot_id: i64,
    /// When.
    pub at: Timestamp,
    /// What happened.
    pub event: HistoryEvent,
    /// The resource's name from this step on (its last name for a removal).
    pub name: String,
    /// The recorded change, if any (none at the baseline).
    pub change_id: Option<i64>,
    /// The version valid from this step; `None` after a removal.
    pub version_id: Option<i64>,
    /// What changed, by field path (only for modifications).
    pub fields: Vec<FieldChange>,
}

/// Every version of one resource and what changed between them.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    /// Kind.
    pub kind: ResourceKind,
    /// Segment's id.
    pub resource_id: String,
    /// Latest name.
    pub name: String,
    /// Whether it exists in the latest complete snapshot.
    pub current: bool,
    /// Versions, oldest first.
    pub versions: Vec<VersionSpan>,
    /// Steps, oldest first.
    pub steps: Vec<HistoryStep>,
}

/// The history of one resource, found by id or else by exact name (any name it ever had).
/// A name several resources had is an error listing them.
pub fn resource_history(
    store: &Store,
    workspace_id: i64,
    kind: ResourceKind,
    id_or_name: &str,
) -> Result<History> {
    let resource_id = resolve_resource(store, workspace_id, kind, id_or_name)?;
    let conn = &store.conn;
    let mut stmt = conn.prepare(
        "SELECT v.id, v.name, v.valid_from, f.finished_at, v.valid_to, t.finished_at, v.content_hash, v.body
         FROM resource_versions v
         JOIN snapshots f ON f.id = v.valid_from
         LEFT JOIN snapshots t ON t.id = v.valid_to
         WHERE v.workspace_id = ?1 AND v.kind = ?2 AND v.resource_id = ?3
         ORDER BY v.valid_from",
    )?;
    let mut versions = Vec::new();
    let mut rows = stmt.query(params![workspace_id, kind.as_str(), resource_id])?;
    while let Some(row) = rows.next()? {
        let version_id: i64 = row.get(0)?;
        let body: String = row.get(7)?;
        versions.push(VersionSpan {
            version_id,
            name: row.get(1)?,
            valid_from_snapshot_id: row.get(2)?,
            valid_from_at: time_col(row, 3)?,
            valid_to_snapshot_id: row.get(4)?,
            valid_to_at: opt_time_col(row, 5)?,
            content_hash: row.get(6)?,
            body: parse_json(&body, || {
                format!("resource_versions.body of version {version_id}")
            })?,
        });
    }
    let changes = recorded_changes(store, workspace_id, kind, &resource_id)?;
    let steps = history_steps(&versions, &changes);
    let last = versions
        .last()
        .expect("a resolved resource has at least one version");
    Ok(History {
        kind,
        name: last.name.clone(),
        current: last.valid_to_snapshot_id.is_none(),
        resource_id,
        versions,
        steps,
    })
}

/// A change row of one resource: its id and field changes, by snapshot.
struct RecordedChange {
    id: i64,
    fields: Vec<FieldChange>,
}

fn recorded_changes(
    store: &Store,
    workspace_id: i64,
    kind: ResourceKind,
    resource_id: &str,
) -> Result<HashMap<i64, RecordedChange>> {
    let mut stmt = store.conn.prepare(
        "SELECT id, snapshot_id, fields FROM changes
         WHERE workspace_id = ?1 AND kind = ?2 AND resource_id = ?3",
    )?;
    let mut rows = stmt.query(params![workspace_id, kind.as_str(), resource_id])?;
    let mut out = HashMap::new();
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let fields: String = row.get(2)?;
        let fields = serde_json::from_str(&fields).map_err(|cause| AuditError::Json {
            what: format!("changes.fields of change {id}"),
            cause,
        })?;
        out.insert(row.get(1)?, RecordedChange { id, fields });
    }
    Ok(out)
}

/// Derives the steps from the versions (the source of truth for what existed when) and
/// attaches the recorded changes; a modification without a recorded change (a history
/// written before changes were kept) is diffed from the two versions.
fn history_steps(
    versions: &[VersionSpan],
    changes: &HashMap<i64, RecordedChange>,
) -> Vec<HistoryStep> {
    let mut steps = Vec::with_capacity(versions.len() + 1);
    for (i, v) in versions.iter().enumerate() {
        let change = changes.get(&v.valid_from_snapshot_id);
        let previous = i.checked_sub(1).map(|p| &versions[p]);
        let (event, fields) = match previous {
            Some(p) if p.valid_to_snapshot_id == Some(v.valid_from_snapshot_id) => (
                HistoryEvent::Modified,
                change.map_or_else(
                    || segwatch_core::diff::field_changes(&p.body, &v.body),
                    |c| c.fields.clone(),
                ),
            ),
            Some(_) => (HistoryEvent::Added, Vec::new()),
            None if change.is_some() => (HistoryEvent::Added, Vec::new()),
            None => (HistoryEvent::FirstSeen, Vec::new()),
        };
        steps.push(HistoryStep {
            snapshot_id: v.valid_from_snapshot_id,
            at: v.valid_from_at,
            event,
            name: v.name.clone(),
            change_id: change.map(|c| c.id),
            version_id: Some(v.version_id),
            fields,
        });
        let next_from = versions.get(i + 1).map(|n| n.valid_from_snapshot_id);
        if let (Some(to), Some(to_at)) = (v.valid_to_snapshot_id, &v.valid_to_at)
            && next_from != Some(to)
        {
            steps.push(HistoryStep {
                snapshot_id: to,
                at: *to_at,
                event: HistoryEvent::Removed,
                name: v.name.clone(),
                change_id: changes.get(&to).map(|c| c.id),
                version_id: None,
                fields: Vec::new(),
            });
        }
    }
    steps
}

/// The id of the resource named by `key`: an id first, else an exact name it ever had.
fn resolve_resource(
    store: &Store,
    workspace_id: i64,
    kind: ResourceKind,
    key: &str,
) -> Result<String> {
    let conn = &store.conn;
    let by_id: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM resource_versions WHERE workspace_id = ?1 AND kind = ?2 AND resource_id = ?3 LIMIT 1",
            params![workspace_id, kind.as_str(), key],
            |r| r.get(0),
        )
        .optional()?;
    if by_id.is_some() {
        return Ok(key.to_string());
    }
    // Latest version first within each resource: the first row of each id describes it.
    let mut stmt = conn.prepare(
        "SELECT v.resource_id, v.name, v.valid_to IS NULL, f.finished_at
         FROM resource_versions v JOIN snapshots f ON f.id = v.valid_from
         WHERE v.workspace_id = ?1 AND v.kind = ?2 AND v.resource_id IN
             (SELECT resource_id FROM resource_versions WHERE workspace_id = ?1 AND kind = ?2 AND name = ?3)
         ORDER BY v.resource_id, v.valid_from DESC",
    )?;
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut rows = stmt.query(params![workspace_id, kind.as_str(), key])?;
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        if candidates.last().is_some_and(|c| c.id == id) {
            continue;
        }
        candidates.push(Candidate {
            id,
            name: row.get(1)?,
            current: row.get(2)?,
            last_version_at: time_col(row, 3)?,
        });
    }
    match candidates.len() {
        0 => Err(AuditError::NotFound {
            kind,
            key: key.to_string(),
        }),
        1 => Ok(candidates.remove(0).id),
        _ => Err(AuditError::Ambiguous {
            kind,
            name: key.to_string(),
            candidates,
        }),
    }
}

/// One recorded change with the times that bound it.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeRecord {
    /// Row id in `changes`.
    pub change_id: i64,
    /// The snapshot that observed it.
    pub snapshot_id: i64,
    /// When (the change happened in Segment after `previous_observed_at` and by this time).
    pub observed_at: Timestamp,
    /// The snapshot it was diffed against.
    pub previous_snapshot_id: Option<i64>,
    /// When that one was observed.
    pub previous_observed_at: Option<Timestamp>,
    /// Kind.
    pub kind: ResourceKind,
    /// Segment's id.
    pub resource_id: String,
    /// Name.
    pub name: String,
    /// Added, removed or modified.
    pub op: ChangeOp,
    /// What changed, by field path (empty for added and removed resources).
    pub fields: Vec<FieldChange>,
}

/// The changes observed in an interval, and how well the interval was observed.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeReport {
    /// Start (inclusive).
    pub since: String,
    /// End (exclusive); `None` for open-ended.
    pub until: Option<String>,
    /// Complete snapshots observed in the interval: zero changes from zero polls is no
    /// evidence of no change.
    pub complete_polls: i64,
    /// The first of them.
    pub first_observed_at: Option<Timestamp>,
    /// The last of them.
    pub last_observed_at: Option<Timestamp>,
    /// The changes, in order of observation, then kind and id.
    pub changes: Vec<ChangeRecord>,
}

/// Changes observed at or after `since` and before `until`, optionally of one kind.
pub fn changes_between(
    store: &Store,
    workspace_id: i64,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    kind: Option<ResourceKind>,
) -> Result<ChangeReport> {
    let since_text = format_instant(since);
    let until_text = until.map(format_instant);
    if let Some(until_text) = &until_text
        && until_text <= &since_text
    {
        return Err(AuditError::EmptyInterval {
            since: since_text,
            until: until_text.clone(),
        });
    }
    if store.latest_complete(workspace_id)?.is_none() {
        return Err(AuditError::NoSnapshot);
    }
    let conn = &store.conn;
    let (complete_polls, first_observed_at, last_observed_at) = conn.query_row(
        "SELECT count(*), min(finished_at), max(finished_at) FROM snapshots
         WHERE workspace_id = ?1 AND status = 'complete' AND finished_at >= ?2
           AND (?3 IS NULL OR finished_at < ?3)",
        params![workspace_id, since_text, until_text],
        |r| Ok((r.get(0)?, opt_time_col(r, 1)?, opt_time_col(r, 2)?)),
    )?;
    let mut stmt = conn.prepare(
        "SELECT c.id, c.snapshot_id, s.finished_at, s.base_snapshot_id, b.finished_at, c.kind,
                c.resource_id, c.name, c.op, c.fields
         FROM changes c
         JOIN snapshots s ON s.id = c.snapshot_id
         LEFT JOIN snapshots b ON b.id = s.base_snapshot_id
         WHERE c.workspace_id = ?1 AND s.finished_at >= ?2 AND (?3 IS NULL OR s.finished_at < ?3)
           AND (?4 IS NULL OR c.kind = ?4)",
    )?;
    let mut rows = stmt.query(params![
        workspace_id,
        since_text,
        until_text,
        kind.map(ResourceKind::as_str)
    ])?;
    let mut changes = Vec::new();
    while let Some(row) = rows.next()? {
        let change_id: i64 = row.get(0)?;
        let kind_text: String = row.get(5)?;
        let op_text: String = row.get(8)?;
        let fields: String = row.get(9)?;
        changes.push(ChangeRecord {
            change_id,
            snapshot_id: row.get(1)?,
            observed_at: time_col(row, 2)?,
            previous_snapshot_id: row.get(3)?,
            previous_observed_at: opt_time_col(row, 4)?,
            kind: stored_kind(&kind_text)?,
            resource_id: row.get(6)?,
            name: row.get(7)?,
            op: op_text.parse().map_err(|_| {
                StoreError::Snapshot(format!("change {change_id} has unknown op `{op_text}`"))
            })?,
            fields: parse_json(&fields, || format!("changes.fields of change {change_id}"))?,
        });
    }
    changes.sort_by(|a, b| {
        (&a.observed_at, a.snapshot_id, a.kind, &a.resource_id).cmp(&(
            &b.observed_at,
            b.snapshot_id,
            b.kind,
            &b.resource_id,
        ))
    });
    Ok(ChangeReport {
        since: since_text,
        until: until_text,
        complete_polls,
        first_observed_at,
        last_observed_at,
        changes,
    })
}

/// One resource as it was at an instant.
#[derive(Debug, Clone, Serialize)]
pub struct StateResource {
    /// Kind.
    pub kind: ResourceKind,
    /// Segment's id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The version, in `resource_versions`.
    pub version_id: i64,
    /// When this version was first observed.
    pub since_at: Timestamp,
    /// Hex SHA-256 of the body.
    pub content_hash: String,
    /// The canonical body (secrets fingerprinted).
    pub body: Value,
}

/// The workspace as it was at an instant.
#[derive(Debug, Clone, Serialize)]
pub struct StateAt {
    /// The instant asked for.
    pub at: String,
    /// The latest complete snapshot observed at or before it, whose state this is.
    pub snapshot_id: i64,
    /// When that snapshot was observed.
    pub observed_at: Timestamp,
    /// The resources, by kind then id.
    pub resources: Vec<StateResource>,
}

/// Every resource (or every one of `kind`) as of the latest complete snapshot observed at or
/// before `at`, reconstructed from the versions valid in it. An instant before the first
/// complete snapshot is an error, not an empty workspace.
pub fn state_at(
    store: &Store,
    workspace_id: i64,
    at: DateTime<Utc>,
    kind: Option<ResourceKind>,
) -> Result<StateAt> {
    let at_text = format_instant(at);
    let (snapshot_id, observed_at) = snapshot_at(store, workspace_id, &at_text)?;
    let mut stmt = store.conn.prepare(
        "SELECT v.kind, v.resource_id, v.name, v.id, f.finished_at, v.content_hash, v.body
         FROM resource_versions v JOIN snapshots f ON f.id = v.valid_from
         WHERE v.workspace_id = ?1 AND v.valid_from <= ?2 AND (v.valid_to IS NULL OR v.valid_to > ?2)
           AND (?3 IS NULL OR v.kind = ?3)",
    )?;
    let mut rows = stmt.query(params![
        workspace_id,
        snapshot_id,
        kind.map(ResourceKind::as_str)
    ])?;
    let mut resources = Vec::new();
    while let Some(row) = rows.next()? {
        let kind_text: String = row.get(0)?;
        let version_id: i64 = row.get(3)?;
        let body: String = row.get(6)?;
        resources.push(StateResource {
            kind: stored_kind(&kind_text)?,
            id: row.get(1)?,
            name: row.get(2)?,
            version_id,
            since_at: time_col(row, 4)?,
            content_hash: row.get(5)?,
            body: parse_json(&body, || {
                format!("resource_versions.body of version {version_id}")
            })?,
        });
    }
    resources.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
    Ok(StateAt {
        at: at_text,
        snapshot_id,
        observed_at,
        resources,
    })
}

/// The latest complete snapshot observed at or before `at` (stored format), with its time.
pub fn snapshot_at(store: &Store, workspace_id: i64, at: &str) -> Result<(i64, Timestamp)> {
    let conn = &store.conn;
    let found = conn
        .query_row(
            "SELECT id, finished_at FROM snapshots
             WHERE workspace_id = ?1 AND status = 'complete' AND finished_at <= ?2
             ORDER BY finished_at DESC, id DESC LIMIT 1",
            params![workspace_id, at],
            |r| Ok((r.get(0)?, time_col(r, 1)?)),
        )
        .optional()?;
    if let Some(found) = found {
        return Ok(found);
    }
    let first: Option<String> = conn.query_row(
        "SELECT min(finished_at) FROM snapshots WHERE workspace_id = ?1 AND status = 'complete'",
        [workspace_id],
        |r| r.get(0),
    )?;
    match first {
        Some(first) => Err(AuditError::BeforeFirstSnapshot {
            at: at.to_string(),
            first,
        }),
        None => Err(AuditError::NoSnapshot),
    }
}

fn stored_kind(text: &str) -> Result<ResourceKind> {
    text.parse()
        .map_err(|e: segwatch_core::model::UnknownKind| {
            AuditError::Store(StoreError::Snapshot(format!("stored row: {e}")))
        })
}

fn parse_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: impl FnOnce() -> String,
) -> Result<T> {
    serde_json::from_str(text).map_err(|cause| AuditError::Json {
        what: what(),
        cause,
    })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_identity;
