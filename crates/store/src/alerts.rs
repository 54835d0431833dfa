//! Alerts and rule state: what the rules raised and resolved, with the deliveries each event
//! queues, and the reads of them (open findings, filtered listings).

use std::collections::HashMap;

use rusqlite::{TransactionBehavior, params};

use segwatch_core::alerts::{AlertEvent, AlertPlan, AlertRecord, AlertStatus};
use segwatch_core::ids::{AlertId, SnapshotId};
use segwatch_core::model::Attribution;
use segwatch_core::rules::Severity;

use crate::{Result, Store, StoreError, now, opt_time_col, time_col};

/// The columns [`alert_row_at`] reads, in order.
macro_rules! alert_fields {
    () => {
        "id, rule_id, rule_kind, severity, title, resource_kind, resource_id, resource_name, snapshot_id, \
         change_id, status, opened_at, resolved_at, resolved_snapshot_id, resolution, summary, explanation, \
         remediation, tags, actor, actor_email, event_type, event_id"
    };
}
pub(crate) const ALERT_FIELDS: &str = alert_fields!();
/// The workspace's configured name, read after the fields; `{t}` is the alerts table's name.
macro_rules! alert_workspace {
    ($t:literal) => {
        concat!(
            "(SELECT name FROM workspaces WHERE workspaces.id = ",
            $t,
            ".workspace_id)"
        )
    };
}
pub(crate) use alert_workspace;
pub(crate) const ALERT_COLUMNS: &str = concat!(
    "SELECT ",
    alert_fields!(),
    ", ",
    alert_workspace!("alerts"),
    " FROM alerts"
);

impl Store {
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
        snapshot_id: SnapshotId,
        alerts: &AlertPlan,
    ) -> Result<Vec<AlertId>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids = write_alerts(&tx, workspace_id, snapshot_id.get(), alerts, &[])?;
        tx.commit()?;
        Ok(ids.into_iter().map(AlertId).collect())
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

pub(crate) fn write_alerts(
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
        if resolve.execute(params![
            r.alert.id.get(),
            at,
            snapshot_id,
            r.resolution.as_str()
        ])? != 1
        {
            return Err(StoreError::Snapshot(format!(
                "finding {} was no longer open; is another poller running?",
                r.alert.id
            )));
        }
    }
    // Updates of open findings whose resource this poll changed: ids by position, for their
    // deliveries.
    let mut update_ids = Vec::with_capacity(alerts.updated.len());
    let mut update = tx.prepare_cached(
        "INSERT INTO alert_updates (alert_id, workspace_id, snapshot_id, change_id, summary, explanation,
            actor, actor_email, event_type, event_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for u in &alerts.updated {
        update.execute(params![
            u.alert.id.get(),
            workspace_id,
            snapshot_id,
            change_ids.get(u.change_index),
            u.summary,
            u.explanation.to_string(),
            u.attribution.actor,
            u.attribution.actor_email,
            u.attribution.event_type,
            u.attribution.event_id,
            at
        ])?;
        update_ids.push(tx.last_insert_rowid());
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
        "INSERT INTO deliveries (workspace_id, sink, snapshot_id, alert_id, event, status, next_attempt_at, created_at, update_id)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6, ?7)
         ON CONFLICT (sink, alert_id, event, COALESCE(update_id, 0)) DO NOTHING",
    )?;
    for (event, sink) in &alerts.deliveries {
        let (alert_id, name, update_id) = match *event {
            AlertEvent::Opened(i) => (ids[i], "raised", None),
            AlertEvent::Resolved(i) => (alerts.resolved[i].alert.id.get(), "resolved", None),
            AlertEvent::Updated(i) => (
                alerts.updated[i].alert.id.get(),
                "updated",
                Some(update_ids[i]),
            ),
        };
        queue.execute(params![
            workspace_id,
            sink,
            snapshot_id,
            alert_id,
            name,
            at,
            update_id
        ])?;
    }
    let mut drop_state =
        tx.prepare_cached("DELETE FROM rule_state WHERE workspace_id = ?1 AND rule_id = ?2")?;
    for rule in &alerts.dropped_rules {
        drop_state.execute(params![workspace_id, rule])?;
    }
    Ok(ids)
}

pub(crate) fn alert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRecord> {
    alert_row_at(r, 0)
}

/// Reads an alert from the row's columns starting at `at` (in `ALERT_FIELDS` order, then the
/// workspace's name).
pub(crate) fn alert_row_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<AlertRecord> {
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let severity: String = r.get(at + 3)?;
    let kind: String = r.get(at + 5)?;
    let status: String = r.get(at + 10)?;
    let explanation: String = r.get(at + 16)?;
    let tags: String = r.get(at + 18)?;
    Ok(AlertRecord {
        id: AlertId(r.get(at)?),
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
        snapshot_id: SnapshotId(r.get(at + 8)?),
        change_id: r.get(at + 9)?,
        status: AlertStatus::parse(&status)
            .ok_or_else(|| bad(at + 10, format!("unknown status `{status}`")))?,
        opened_at: time_col(r, at + 11)?,
        resolved_at: opt_time_col(r, at + 12)?,
        resolved_snapshot_id: r.get::<_, Option<i64>>(at + 13)?.map(SnapshotId),
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
        workspace: r.get::<_, Option<String>>(at + 23)?.unwrap_or_default(),
    })
}
