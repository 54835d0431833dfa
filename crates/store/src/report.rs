//! Read-only queries behind `segwatch report`: the polls of a period, the alerts its snapshots
//! raised and resolved, the findings open at one snapshot, and change counts.
//!
//! A period is selected by the start times of its polls; everything else is selected by the
//! snapshot ids of those polls, so the report states exactly which snapshots it rests on.

use rusqlite::params;
use serde::Serialize;

use crate::alerts::{ALERT_COLUMNS, alert_row};
use crate::snapshots::{SNAPSHOT_COLUMNS, snapshot_row};
use crate::{Result, SnapshotInfo, Store, parse_kind};
use segwatch_core::alerts::AlertRecord;
use segwatch_core::diff::ChangeOp;
use segwatch_core::ids::SnapshotId;
use segwatch_core::model::ResourceKind;

/// How many changes of one kind and op a range of snapshots recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeCount {
    /// Resource kind.
    pub kind: ResourceKind,
    /// Added, removed or modified.
    pub op: ChangeOp,
    /// Number of `changes` rows.
    pub count: u64,
}

impl Store {
    /// Every poll of a workspace that started in `[since, until)` (RFC 3339 UTC strings as
    /// stored, with milliseconds), whatever its status, oldest first.
    pub fn snapshots_between(
        &self,
        workspace_id: i64,
        since: &str,
        until: &str,
    ) -> Result<Vec<SnapshotInfo>> {
        let sql = format!(
            "{SNAPSHOT_COLUMNS} WHERE workspace_id = ?1 AND started_at >= ?2 AND started_at < ?3 ORDER BY id"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params![workspace_id, since, until], snapshot_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Segment's id of the workspace, once a poll has seen it.
    pub fn workspace_segment_id(&self, workspace_id: i64) -> Result<Option<String>> {
        Ok(self.conn.query_row(
            "SELECT segment_id FROM workspaces WHERE id = ?1",
            [workspace_id],
            |r| r.get(0),
        )?)
    }

    /// The tamper-evidence chain hash of a complete snapshot (`None` before it is sealed).
    pub fn snapshot_chain_hash(&self, snapshot_id: SnapshotId) -> Result<Option<String>> {
        let snapshot_id = snapshot_id.get();
        Ok(self.conn.query_row(
            "SELECT chain_hash FROM snapshots WHERE id = ?1",
            [snapshot_id],
            |r| r.get(0),
        )?)
    }

    /// The compliance findings that were open right after `snapshot_id` committed: raised by it
    /// or earlier, and not resolved by then. For the latest snapshot these are exactly the
    /// rows with status `open`. Oldest first.
    pub fn findings_open_at(
        &self,
        workspace_id: i64,
        snapshot_id: SnapshotId,
    ) -> Result<Vec<AlertRecord>> {
        let snapshot_id = snapshot_id.get();
        let sql = format!(
            "{ALERT_COLUMNS} WHERE workspace_id = ?1 AND rule_kind = 'compliance' AND snapshot_id <= ?2
             AND (resolved_snapshot_id IS NULL OR resolved_snapshot_id > ?2) ORDER BY id"
        );
        self.alert_rows(&sql, params![workspace_id, snapshot_id])
    }

    /// The findings resolved by snapshots `first..=last`, oldest resolution first.
    pub fn findings_resolved_between(
        &self,
        workspace_id: i64,
        first: SnapshotId,
        last: SnapshotId,
    ) -> Result<Vec<AlertRecord>> {
        let sql = format!(
            "{ALERT_COLUMNS} WHERE workspace_id = ?1 AND status = 'resolved'
             AND resolved_snapshot_id BETWEEN ?2 AND ?3 ORDER BY resolved_snapshot_id, id"
        );
        self.alert_rows(&sql, params![workspace_id, first.get(), last.get()])
    }

    /// The change alerts fired by snapshots `first..=last`, oldest first.
    pub fn change_alerts_between(
        &self,
        workspace_id: i64,
        first: SnapshotId,
        last: SnapshotId,
    ) -> Result<Vec<AlertRecord>> {
        let sql = format!(
            "{ALERT_COLUMNS} WHERE workspace_id = ?1 AND status = 'fired'
             AND snapshot_id BETWEEN ?2 AND ?3 ORDER BY id"
        );
        self.alert_rows(&sql, params![workspace_id, first.get(), last.get()])
    }

    /// Changes recorded by snapshots `first..=last`, counted by kind and op (sorted by both).
    pub fn change_counts_between(
        &self,
        workspace_id: i64,
        first: SnapshotId,
        last: SnapshotId,
    ) -> Result<Vec<ChangeCount>> {
        let mut stmt = self.conn.prepare(
            "SELECT kind, op, count(*) FROM changes
             WHERE workspace_id = ?1 AND snapshot_id BETWEEN ?2 AND ?3 GROUP BY kind, op",
        )?;
        let mut rows = stmt.query(params![workspace_id, first.get(), last.get()])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let op: String = row.get(1)?;
            out.push(ChangeCount {
                kind: parse_kind(&row.get::<_, String>(0)?)?,
                op: op.parse().map_err(|_| {
                    super::StoreError::Snapshot(format!("stored change with unknown op `{op}`"))
                })?,
                count: row.get::<_, i64>(2)?.max(0) as u64,
            });
        }
        out.sort_by_key(|c| (c.kind, c.op));
        Ok(out)
    }

    /// The alerts of a workspace raised or resolved in `[since, until)` (RFC 3339 UTC strings as
    /// stored, with milliseconds), by id: what `segwatch export ocsf` turns into events.
    pub fn alerts_raised_or_resolved_between(
        &self,
        workspace_id: i64,
        since: &str,
        until: &str,
    ) -> Result<Vec<AlertRecord>> {
        let sql = format!(
            "{ALERT_COLUMNS} WHERE workspace_id = ?1
             AND ((opened_at >= ?2 AND opened_at < ?3) OR (resolved_at >= ?2 AND resolved_at < ?3))
             ORDER BY id"
        );
        self.alert_rows(&sql, params![workspace_id, since, until])
    }

    /// The updates of open findings recorded in `[since, until)`, each with its finding as
    /// stored now, oldest first (for `segwatch export ocsf`).
    pub fn finding_updates_between(
        &self,
        workspace_id: i64,
        since: &str,
        until: &str,
    ) -> Result<Vec<(AlertRecord, crate::FindingUpdate)>> {
        let sql = format!(
            "SELECT {}, {}, {} FROM alert_updates u JOIN alerts a ON a.id = u.alert_id
             WHERE u.workspace_id = ?1 AND u.created_at >= ?2 AND u.created_at < ?3
             ORDER BY u.id",
            crate::alerts::ALERT_FIELDS
                .split(", ")
                .map(|c| format!("a.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", "),
            crate::alerts::alert_workspace!("a"),
            crate::deliveries::update_fields!("u")
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let at = crate::alerts::ALERT_FIELDS.split(", ").count() + 1;
        let rows = stmt.query_map(params![workspace_id, since, until], |r| {
            Ok((
                crate::alerts::alert_row_at(r, 0)?,
                crate::deliveries::update_row_at(r, at)?,
            ))
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    fn alert_rows(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<AlertRecord>> {
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map(params, alert_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}
