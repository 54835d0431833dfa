//! The commit of a poll: one `IMMEDIATE` transaction that writes its versions, changes, audit
//! events, alerts, quarantined items and `complete` status, and seals it into the chain.

use std::collections::HashMap;
use std::time::Duration;

use rusqlite::{TransactionBehavior, params};
use serde::Serialize;

use segwatch_core::alerts::AlertPlan;
use segwatch_core::diff::SnapshotDelta;
use segwatch_core::ids::{AlertId, SnapshotId};
use segwatch_core::model::{KindStatuses, Quarantined, ResourceKind};
use segwatch_core::trail::TrailRead;

use crate::access::write_access_changes;
use crate::alerts::write_alerts;
use crate::flow_fields::write_flow_fields;
use crate::trail::write_trail;
use crate::{Result, Store, StoreError, chain, now};
use segwatch_core::access::PolledAccess;
use segwatch_core::flows::stored::FlowFieldsUpdate;

/// Which snapshot a commit completes, and what is recorded with it.
#[derive(Debug, Clone, Copy)]
pub struct CommitTarget<'a> {
    /// The workspace (row id).
    pub workspace_id: i64,
    /// The `running` snapshot to complete.
    pub snapshot_id: SnapshotId,
    /// The complete snapshot it was diffed against; must still be the latest.
    pub base: Option<SnapshotId>,
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
    /// Effective access it gained and lost (`access_changes`), when computed.
    pub access: Option<&'a PolledAccess>,
    /// What it changed of its flows' personal fields (`flow_personal_fields`), when computed.
    pub flow_fields: Option<&'a FlowFieldsUpdate>,
}

/// One row of the `quarantine` table.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineRow {
    /// Row id.
    pub id: i64,
    /// The snapshot that first read it.
    pub snapshot_id: SnapshotId,
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

impl Store {
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
    ) -> Result<Vec<AlertId>> {
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
            access,
            flow_fields,
        } = *target;
        let (snapshot_id, base) = (snapshot_id.get(), base.map(SnapshotId::get));
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
        write_access_changes(
            &tx,
            workspace_id,
            snapshot_id,
            base,
            access
                .into_iter()
                .flat_map(|a| a.attributed(&delta.changes)),
            &change_ids,
        )?;
        if let Some(update) = flow_fields {
            write_flow_fields(&tx, workspace_id, snapshot_id, update)?;
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
        Ok(alert_ids.into_iter().map(AlertId).collect())
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
                snapshot_id: SnapshotId(r.get(1)?),
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
}

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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::SnapshotStatus;
    use crate::tests::{commit, count, stats, user};
    use segwatch_core::diff::plan;

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
                    access: None,
                    flow_fields: None,
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
            access: None,
            flow_fields: None,
        };
        let err = store
            .commit_snapshot(&target, &delta, &AlertPlan::default())
            .unwrap_err();
        assert!(err.to_string().contains("no longer running"), "{err}");
        let info = store.snapshot(ws, id).unwrap();
        assert_eq!(info.status, SnapshotStatus::Failed);
    }
}
