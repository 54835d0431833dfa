//! Retention: pruning old failed polls and quiet snapshots without losing any state or change.

use rusqlite::{TransactionBehavior, params};

use crate::{Result, Store, now};

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

impl Store {
    /// Applies the retention policy to a workspace, in one transaction:
    /// - failed polls that finished before `failed_before` are deleted, unless an alert or
    ///   delivery refers to them (segwatch's own failing-polls alert does);
    /// - quiet complete snapshots (nothing stored, closed, changed, alerted, updated or
    ///   delivered) that
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
                   AND NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.snapshot_id = snapshots.id)
                   AND NOT EXISTS (SELECT 1 FROM alert_updates u WHERE u.snapshot_id = snapshots.id)",
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
                       AND NOT EXISTS (SELECT 1 FROM access_changes a WHERE a.snapshot_id = s.id)
                       AND NOT EXISTS (SELECT 1 FROM access_tracking t
                                       WHERE t.since_snapshot_id = s.id)
                       AND NOT EXISTS (SELECT 1 FROM access_reviews ar WHERE ar.snapshot_id = s.id)
                       AND NOT EXISTS (SELECT 1 FROM flow_personal_fields p WHERE p.valid_from = s.id)
                       AND NOT EXISTS (SELECT 1 FROM flow_personal_fields p WHERE p.valid_to = s.id)
                       AND NOT EXISTS (SELECT 1 FROM flow_fields_tracking t
                                       WHERE t.since_snapshot_id = s.id)
                       AND NOT EXISTS (SELECT 1 FROM alert_updates u WHERE u.snapshot_id = s.id)
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
}
