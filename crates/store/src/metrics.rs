//! Counts read for `/healthz`, `/metrics` and `segwatch bench`, straight from the tables.

use rusqlite::OptionalExtension;

use segwatch_core::ids::SnapshotId;
use segwatch_core::model::KindStatuses;
use segwatch_core::time::Timestamp;

use crate::snapshots::parse_kind_status;
use crate::{Result, Store, time_col};

/// A workspace whose last finished poll failed.
#[derive(Debug, Clone)]
pub struct FailingPolls {
    /// Since when no poll has completed (RFC 3339).
    pub since: String,
    /// The last failed snapshot.
    pub snapshot_id: SnapshotId,
    /// Its error.
    pub error: String,
}

/// Rows in the tables that grow with polls, across every workspace (`segwatch bench` reports
/// how a poll grows them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Rows of `snapshots`.
    pub snapshots: i64,
    /// Rows of `resource_versions`.
    pub resource_versions: i64,
    /// Rows of `changes`.
    pub changes: i64,
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
    pub last_success_at: Option<Timestamp>,
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
    pub undelivered: Vec<(String, i64, Timestamp)>,
}

impl Store {
    /// Counts for health checks and metrics, straight from the tables.
    pub fn metrics(&self, workspace_id: i64) -> Result<StoreMetrics> {
        let grouped = |sql: &str| -> Result<Vec<(String, i64)>> {
            let mut stmt = self.conn.prepare(sql)?;
            let rows = stmt.query_map([workspace_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        };
        // The last complete poll, read once: when, how long, what it could not read.
        type LastComplete = (Timestamp, Option<i64>, Option<String>, Option<i64>);
        let last: Option<LastComplete> = self
            .conn
            .query_row(
                "SELECT finished_at, duration_ms, kind_status, confirm_requests FROM snapshots
                 WHERE workspace_id = ?1 AND status = 'complete' ORDER BY id DESC LIMIT 1",
                [workspace_id],
                |r| Ok((time_col(r, 0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
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
            last_success_at: last_success.as_ref().map(|(at, _)| *at),
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
                let rows = stmt.query_map([workspace_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, time_col(r, 2)?))
                })?;
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
            snapshot_id: SnapshotId(snapshot_id),
            error: error.unwrap_or_default(),
        }))
    }

    /// How many rows the tables that grow with polls hold.
    pub fn row_counts(&self) -> Result<RowCounts> {
        Ok(self.conn.query_row(
            "SELECT (SELECT count(*) FROM snapshots), (SELECT count(*) FROM resource_versions),
                (SELECT count(*) FROM changes)",
            [],
            |r| {
                Ok(RowCounts {
                    snapshots: r.get(0)?,
                    resource_versions: r.get(1)?,
                    changes: r.get(2)?,
                })
            },
        )?)
    }
}
