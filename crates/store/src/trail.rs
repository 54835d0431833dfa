//! The audit trail's tables: the events each poll read and where its read ended (the mark the
//! next poll starts from).

use rusqlite::{OptionalExtension, params};

use segwatch_core::activity::TrailActivity;
use segwatch_core::ids::SnapshotId;
use segwatch_core::trail::{AuditEvent, CLOCK_SKEW, Mark, TrailRead, format_time};

use crate::{Result, Store, StoreError, parse_time};

impl Store {
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

    /// Who the stored audit trail shows acting, and since when it has been read (the start of
    /// the workspace's earliest stored read); `None` when no read of the trail is stored.
    /// `until`: only what the polls up to that snapshot read (for a past snapshot).
    ///
    /// One grouped query over the `audit_events_by_actor` index: one row per actor and email,
    /// so about one per user and token that ever acted, whatever the number of events.
    pub fn trail_activity(
        &self,
        workspace_id: i64,
        until: Option<SnapshotId>,
    ) -> Result<Option<TrailActivity>> {
        let until = until.map_or(i64::MAX, |s| s.0);
        let since: Option<String> = self.conn.query_row(
            "SELECT min(start_time) FROM audit_reads WHERE workspace_id = ?1 AND snapshot_id <= ?2",
            params![workspace_id, until],
            |r| r.get(0),
        )?;
        let Some(since) = since else {
            return Ok(None);
        };
        let mut activity = TrailActivity::new(parse_time(&since, "audit_reads.start_time")?);
        // Without a bound, the index alone answers (`snapshot_id` is not in it).
        let bounded = "SELECT actor, actor_email, max(occurred_at) FROM audit_events
             WHERE workspace_id = ?1 AND snapshot_id <= ?2 GROUP BY actor, actor_email";
        let all = "SELECT actor, actor_email, max(occurred_at) FROM audit_events
             WHERE workspace_id = ?1 GROUP BY actor, actor_email";
        let mut stmt = self
            .conn
            .prepare_cached(if until == i64::MAX { all } else { bounded })?;
        let mut rows = if until == i64::MAX {
            stmt.query(params![workspace_id])?
        } else {
            stmt.query(params![workspace_id, until])?
        };
        while let Some(r) = rows.next()? {
            let actor: String = r.get(0)?;
            let email: Option<String> = r.get(1)?;
            let at: String = r.get(2)?;
            activity.record(
                &actor,
                email.as_deref(),
                parse_time(&at, "audit_events.occurred_at")?,
            );
        }
        Ok(Some(activity))
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

    /// When snapshot `base` started, and the stored audit events between then and `end`, each
    /// widened by [`CLOCK_SKEW`], oldest first: what attributing the changes since `base`
    /// reads, for a poll and for `segwatch diff` alike.
    pub fn events_since_snapshot(
        &self,
        workspace_id: i64,
        base: SnapshotId,
        end: chrono::DateTime<chrono::Utc>,
    ) -> Result<(chrono::DateTime<chrono::Utc>, Vec<AuditEvent>)> {
        let started = self.snapshot(workspace_id, base)?.started_at.as_datetime();
        let events =
            self.audit_events_between(workspace_id, started - CLOCK_SKEW, end + CLOCK_SKEW)?;
        Ok((started, events))
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
}

/// Stores a poll's new audit events and its read of the trail (with the mark the next poll
/// starts from).
pub(crate) fn write_trail(
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
