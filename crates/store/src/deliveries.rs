//! The delivery outbox: one row per alert event and sink, due, retried with backoff, sent,
//! summarised or dead; the outbox worker in `segwatch-sinks` drives it.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use segwatch_core::alerts::{AlertRecord, AlertStatus};
use segwatch_core::ids::{AlertId, SnapshotId};
use segwatch_core::time::Timestamp;

use crate::alerts::{ALERT_FIELDS, alert_row_at, alert_workspace};
use crate::{Result, Store, now, opt_time_col, time_col};

/// Which alert event a delivery carries, as `deliveries.event` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryEvent {
    /// The alert was raised (a change alert, or a finding opened).
    Raised,
    /// The finding was resolved.
    Resolved,
    /// The open finding's resource changed and still fails its rule (an `alert_updates` row).
    Updated,
}

impl DeliveryEvent {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryEvent::Raised => "raised",
            DeliveryEvent::Resolved => "resolved",
            DeliveryEvent::Updated => "updated",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<DeliveryEvent> {
        [
            DeliveryEvent::Raised,
            DeliveryEvent::Resolved,
            DeliveryEvent::Updated,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }
}

/// An `alert_updates` row: what an open finding's rule said when its resource changed.
#[derive(Debug, Clone, Serialize)]
pub struct FindingUpdate {
    /// Row id.
    pub id: i64,
    /// The poll that saw the change.
    pub snapshot_id: SnapshotId,
    /// The change row.
    pub change_id: Option<i64>,
    /// The rule's summary of the resource as changed.
    pub summary: String,
    /// What the condition read.
    pub explanation: serde_json::Value,
    /// Who made the change.
    #[serde(flatten)]
    pub attribution: segwatch_core::model::Attribution,
    /// When it was recorded.
    pub created_at: Timestamp,
}

/// A delivery that is due, without its alert: what the outbox plans messages with.
#[derive(Debug, Clone)]
pub struct DueKey {
    /// Row id.
    pub id: i64,
    /// The sink's name.
    pub sink: String,
    /// The poll that queued it.
    pub snapshot_id: SnapshotId,
    /// The event it delivers.
    pub event: DeliveryEvent,
    /// Attempts so far.
    pub attempts: u32,
    /// The alert.
    pub alert_id: AlertId,
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
    pub snapshot_id: SnapshotId,
    /// The event it delivers.
    pub event: DeliveryEvent,
    /// Attempts so far.
    pub attempts: u32,
    /// The alert, as stored now.
    pub alert: AlertRecord,
    /// For an [`DeliveryEvent::Updated`] delivery, the update it carries.
    pub update: Option<FindingUpdate>,
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

/// Where a delivery stands, as `deliveries.status` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Queued, not tried yet.
    Pending,
    /// Tried and failed; retried at `next_attempt_at`.
    Failed,
    /// The sink confirmed it.
    Sent,
    /// Counted, not listed, in a summary message the sink confirmed.
    Summarised,
    /// Given up on.
    Dead,
}

impl DeliveryStatus {
    /// Every status, in the order of the lifecycle.
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Failed,
        DeliveryStatus::Sent,
        DeliveryStatus::Summarised,
        DeliveryStatus::Dead,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Summarised => "summarised",
            DeliveryStatus::Dead => "dead",
        }
    }
}

/// A stored delivery status this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown delivery status `{0}`")]
pub struct UnknownDeliveryStatus(pub String);

impl std::str::FromStr for DeliveryStatus {
    type Err = UnknownDeliveryStatus;

    fn from_str(s: &str) -> std::result::Result<DeliveryStatus, UnknownDeliveryStatus> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownDeliveryStatus(s.to_string()))
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`: a width in the format string applies (the `deliveries` table).
        f.pad(self.as_str())
    }
}

/// One row of `deliveries`, for listing.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRow {
    /// Row id.
    pub id: i64,
    /// The sink's name.
    pub sink: String,
    /// The alert.
    pub alert_id: AlertId,
    /// `raised`, `resolved` or `updated`.
    pub event: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts so far.
    pub attempts: u32,
    /// When it is due.
    pub next_attempt_at: Timestamp,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: Timestamp,
    /// When it was sent.
    pub sent_at: Option<Timestamp>,
    /// The alert's summary.
    pub summary: String,
}

impl Store {
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
            let event = event_col(r, 3)?;
            let severity: String = r.get(7)?;
            let status: String = r.get(8)?;
            let status = AlertStatus::parse(&status)
                .ok_or_else(|| bad(8, format!("unknown alert status `{status}`")))?;
            Ok(DueKey {
                id: r.get(0)?,
                sink: r.get(1)?,
                snapshot_id: SnapshotId(r.get(2)?),
                event,
                attempts: r.get(4)?,
                alert_id: AlertId(r.get(5)?),
                rule_id: r.get(6)?,
                severity: severity
                    .parse()
                    .map_err(|_| bad(7, format!("unknown severity `{severity}`")))?,
                // As of the event delivered: a finding raised then already resolved is announced
                // as raised (an update, as open).
                status: match (event, status) {
                    (DeliveryEvent::Raised | DeliveryEvent::Updated, AlertStatus::Resolved) => {
                        AlertStatus::Open
                    }
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
            "SELECT d.id, d.sink, d.snapshot_id, d.event, d.attempts, {}, {},
                u.id, u.snapshot_id, u.change_id, u.summary, u.explanation, u.actor, u.actor_email,
                u.event_type, u.event_id, u.created_at
             FROM deliveries d JOIN alerts a ON a.id = d.alert_id
             LEFT JOIN alert_updates u ON u.id = d.update_id
             WHERE d.id = ?1",
            ALERT_FIELDS
                .split(", ")
                .map(|c| format!("a.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", "),
            alert_workspace!("a")
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row = stmt
                .query_row([id], |r| {
                    // After the delivery's 5 columns, the alert's fields and its workspace.
                    let at = 5 + ALERT_FIELDS.split(", ").count() + 1;
                    let update = match r.get::<_, Option<i64>>(at)? {
                        None => None,
                        Some(_) => Some(update_row_at(r, at)?),
                    };
                    Ok(DueDelivery {
                        id: r.get(0)?,
                        sink: r.get(1)?,
                        snapshot_id: SnapshotId(r.get(2)?),
                        event: event_col(r, 3)?,
                        attempts: r.get(4)?,
                        alert: alert_row_at(r, 5)?,
                        update,
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

    /// Whether an earlier delivery to the same sink of the same finding (workspace, rule,
    /// resource) is still to be sent (pending or failed, due or not): a sink that tracks
    /// findings must not see a resolution before the raising it resolves.
    pub fn waits_on_earlier_delivery(&self, id: i64) -> Result<bool> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT EXISTS (
                SELECT 1 FROM deliveries d JOIN alerts a ON a.id = d.alert_id
                JOIN deliveries e ON e.sink = d.sink AND e.id < d.id AND e.status IN ('pending', 'failed')
                JOIN alerts b ON b.id = e.alert_id
                WHERE d.id = ?1 AND b.workspace_id = a.workspace_id AND b.rule_id = a.rule_id
                  AND b.resource_kind = a.resource_kind AND b.resource_id = a.resource_id)",
        )?;
        Ok(stmt.query_row([id], |r| r.get(0))?)
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
                        if *dead {
                            DeliveryStatus::Dead
                        } else {
                            DeliveryStatus::Failed
                        }
                        .as_str(),
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
        status: Option<DeliveryStatus>,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT d.id, d.sink, d.alert_id, d.event, d.status, d.attempts, d.next_attempt_at, d.last_error,
                    d.created_at, d.sent_at, a.summary
             FROM deliveries d JOIN alerts a ON a.id = d.alert_id
             WHERE d.workspace_id = ?1 AND (?2 IS NULL OR d.status = ?2) ORDER BY d.id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![
                workspace_id,
                status.map(DeliveryStatus::as_str),
                limit.min(i64::MAX as usize) as i64
            ],
            |r| {
                let status: String = r.get(4)?;
                let status = status.parse().map_err(|e: UnknownDeliveryStatus| {
                    rusqlite::Error::FromSqlConversionFailure(
                        4,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })?;
                Ok(DeliveryRow {
                    id: r.get(0)?,
                    sink: r.get(1)?,
                    alert_id: AlertId(r.get(2)?),
                    event: r.get(3)?,
                    status,
                    attempts: r.get(5)?,
                    next_attempt_at: time_col(r, 6)?,
                    last_error: r.get(7)?,
                    created_at: time_col(r, 8)?,
                    sent_at: opt_time_col(r, 9)?,
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
}

/// The columns of `alert_updates` that [`update_row_at`] reads, in order (`{t}`: its alias).
macro_rules! update_fields {
    ($t:literal) => {
        concat!(
            $t,
            ".id, ",
            $t,
            ".snapshot_id, ",
            $t,
            ".change_id, ",
            $t,
            ".summary, ",
            $t,
            ".explanation, ",
            $t,
            ".actor, ",
            $t,
            ".actor_email, ",
            $t,
            ".event_type, ",
            $t,
            ".event_id, ",
            $t,
            ".created_at"
        )
    };
}
pub(crate) use update_fields;

/// Reads an `alert_updates` row from the columns starting at `at` (in [`update_fields`] order).
pub(crate) fn update_row_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<FindingUpdate> {
    let explanation: String = r.get(at + 4)?;
    Ok(FindingUpdate {
        id: r.get(at)?,
        snapshot_id: SnapshotId(r.get(at + 1)?),
        change_id: r.get(at + 2)?,
        summary: r.get(at + 3)?,
        explanation: serde_json::from_str(&explanation).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(at + 4, rusqlite::types::Type::Text, e.into())
        })?,
        attribution: segwatch_core::model::Attribution {
            actor: r.get(at + 5)?,
            actor_email: r.get(at + 6)?,
            event_type: r.get(at + 7)?,
            event_id: r.get(at + 8)?,
        },
        created_at: time_col(r, at + 9)?,
    })
}

/// Reads `deliveries.event` at column `i`.
fn event_col(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<DeliveryEvent> {
    let event: String = r.get(i)?;
    DeliveryEvent::parse(&event).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown delivery event `{event}`").into(),
        )
    })
}

#[cfg(test)]
mod tests;
