//! Snapshots and the resource versions they hold: workspaces, the lifecycle of a poll before
//! its commit (`running`, `failed`, interrupted), the diff base, reconstruction of any complete
//! snapshot, and the changes it recorded.

use std::collections::HashMap;
use std::time::Duration;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use segwatch_core::diff::{ChangeOp, CurrentVersion, FieldChange, ResourceChange};
use segwatch_core::ids::SnapshotId;
use segwatch_core::model::{Attribution, KindStatus, KindStatuses, ResourceKind};
use segwatch_core::time::Timestamp;

use crate::{Result, Store, StoreError, lock, now, opt_time_col, parse_kind, parse_time, time_col};

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
    pub id: SnapshotId,
    /// When the poll started.
    pub started_at: Timestamp,
    /// When it finished, if it did.
    pub finished_at: Option<Timestamp>,
    /// Its state.
    pub status: SnapshotStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// The complete snapshot it was diffed against (none for the first, the baseline).
    pub base_snapshot_id: Option<SnapshotId>,
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
    pub seen_since: Timestamp,
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

impl Store {
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
    pub fn begin_snapshot(&mut self, workspace_id: i64) -> Result<SnapshotId> {
        let holder = match &self.writer {
            Some(lock) => lock.holder().clone(),
            None => lock::Holder::this_process("poll"),
        };
        self.conn.execute(
            "INSERT INTO snapshots (workspace_id, started_at, status, poller_pid, poller_host)
             VALUES (?1, ?2, 'running', ?3, ?4)",
            params![workspace_id, now(), i64::from(holder.pid), holder.host],
        )?;
        Ok(SnapshotId(self.conn.last_insert_rowid()))
    }

    /// Records a failed poll with its error. Nothing else of the poll was written.
    pub fn fail_snapshot(
        &mut self,
        snapshot_id: SnapshotId,
        error: &str,
        api_requests: u64,
        duration: Duration,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE snapshots SET status = 'failed', finished_at = ?2, error = ?3, api_requests = ?4,
                duration_ms = ?5 WHERE id = ?1",
            params![
                snapshot_id.get(),
                now(),
                error,
                api_requests as i64,
                duration.as_millis() as i64
            ],
        )?;
        Ok(())
    }

    /// The latest complete snapshot of a workspace.
    pub fn latest_complete(&self, workspace_id: i64) -> Result<Option<SnapshotId>> {
        Ok(self
            .conn
            .query_row(
                "SELECT max(id) FROM snapshots WHERE workspace_id = ?1 AND status = 'complete'",
                [workspace_id],
                |r| r.get::<_, Option<i64>>(0),
            )?
            .map(SnapshotId))
    }

    /// The complete snapshot just before `snapshot_id`.
    pub fn previous_complete(
        &self,
        workspace_id: i64,
        snapshot_id: SnapshotId,
    ) -> Result<Option<SnapshotId>> {
        Ok(self.conn.query_row(
            "SELECT max(id) FROM snapshots WHERE workspace_id = ?1 AND status = 'complete' AND id < ?2",
            params![workspace_id, snapshot_id.get()],
            |r| r.get::<_, Option<i64>>(0),
        )?.map(SnapshotId))
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

    /// The resource kinds a complete snapshot collected (see migration 0008; snapshots from
    /// before it collected the seven kinds segwatch always reads).
    pub fn collected_kinds(&self, snapshot_id: SnapshotId) -> Result<Vec<ResourceKind>> {
        let snapshot_id = snapshot_id.get();
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
    pub fn known_kinds(&self, snapshot_id: SnapshotId) -> Result<Vec<ResourceKind>> {
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

    /// The kinds a complete snapshot could not read in full (migration 0010; empty when it read
    /// every kind, and for snapshots from before it).
    pub fn kind_status(&self, snapshot_id: SnapshotId) -> Result<KindStatuses> {
        let snapshot_id = snapshot_id.get();
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
            let at = parse_time(&started, "snapshots")?;
            out.insert((parse_kind(&row.get::<_, String>(0)?)?, row.get(1)?), at);
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
    pub fn snapshot(&self, workspace_id: i64, snapshot_id: SnapshotId) -> Result<SnapshotInfo> {
        let snapshot_id = snapshot_id.get();
        let sql = format!("{SNAPSHOT_COLUMNS} WHERE workspace_id = ?1 AND id = ?2");
        self.conn
            .query_row(&sql, params![workspace_id, snapshot_id], snapshot_row)
            .optional()?
            .ok_or_else(|| {
                StoreError::Snapshot(format!("no snapshot {snapshot_id} in this workspace"))
            })
    }

    /// Every resource exactly as it was in a complete snapshot, sorted by kind and id.
    pub fn resources_at(
        &self,
        workspace_id: i64,
        snapshot_id: SnapshotId,
    ) -> Result<Vec<StoredResource>> {
        let info = self.snapshot(workspace_id, snapshot_id)?;
        let snapshot_id = snapshot_id.get();
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
                seen_since: time_col(row, 5)?,
            });
        }
        out.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        Ok(out)
    }

    /// The changes of a snapshot with the bodies of their two sides.
    pub fn change_bodies(&self, snapshot_id: SnapshotId) -> Result<Vec<ChangeWithBodies>> {
        let snapshot_id = snapshot_id.get();
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

    /// The changes recorded for a snapshot against its base.
    pub fn changes_of(&self, snapshot_id: SnapshotId) -> Result<Vec<ResourceChange>> {
        let snapshot_id = snapshot_id.get();
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

pub(crate) const SNAPSHOT_COLUMNS: &str =
    "SELECT id, started_at, finished_at, status, error, base_snapshot_id,
    resource_count, added, removed, modified, api_requests, duration_ms, kind_status,
    confirm_requests FROM snapshots";

pub(crate) fn snapshot_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SnapshotInfo> {
    Ok(SnapshotInfo {
        id: SnapshotId(r.get(0)?),
        started_at: time_col(r, 1)?,
        finished_at: opt_time_col(r, 2)?,
        status: SnapshotStatus::parse(&r.get::<_, String>(3)?),
        error: r.get(4)?,
        base_snapshot_id: r.get::<_, Option<i64>>(5)?.map(SnapshotId),
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
pub(crate) fn parse_kind_status(text: Option<String>, snapshot: &str) -> Result<KindStatuses> {
    match text {
        None => Ok(KindStatuses::new()),
        Some(text) => serde_json::from_str(&text).map_err(|cause| StoreError::Json {
            what: format!("snapshots.kind_status of {snapshot}"),
            cause,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::tests::{commit, count, user};
    use segwatch_core::model::Resource;

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
                [live.get()],
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
            .execute(
                "UPDATE snapshots SET poller_pid = 1 WHERE id = ?1",
                [dead.get()],
            )
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
}
