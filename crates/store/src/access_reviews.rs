//! Access reviews (schema 15): the facts an export reads (when each grant was granted, when each
//! user last acted), recording an imported review sealed in the hash chain, and the revoke
//! decisions a follow-up checks. The rows are built by the application (`segwatch::access::review`).

use std::collections::HashMap;

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::{Result, Store, StoreError, chain, now};

/// The identity of a grant across snapshots, as `access_changes` and
/// `access_review_decisions` store it: names excluded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantIdentity {
    /// The user's id; empty for a pending invite.
    pub user_id: String,
    /// The invitee's email for a pending invite; empty for a user (whose id identifies them).
    pub invite_email: String,
    /// `PermissionResourceV1.type`.
    pub resource_type: String,
    /// The resource's id.
    pub resource_id: String,
    /// The role's id.
    pub role_id: String,
    /// The group it comes through; `None` for a permission of the user's own.
    pub via_group_id: Option<String>,
    /// JSON array of `"key:value"`, or `None` when the grant has no label filter.
    pub label_filter: Option<String>,
}

/// What the history says about grants and users at one snapshot (for the export's
/// `granted_since` and `last_seen_acting`).
#[derive(Debug, Clone, Default)]
pub struct ReviewFacts {
    /// Per grant: the time of the snapshot of its latest `added` access change at or before the
    /// reviewed snapshot.
    pub added_at: HashMap<GrantIdentity, String>,
    /// When access changes started to be recorded (`access_tracking`'s snapshot's time), if
    /// they are.
    pub tracking_since: Option<String>,
    /// The workspace's first complete snapshot's time.
    pub first_snapshot_at: Option<String>,
    /// Per actor email (ASCII lower case): the latest audit event it made at or before the
    /// instant.
    pub last_acting: HashMap<String, String>,
}

/// One line of an imported review.
#[derive(Debug, Clone)]
pub struct NewDecision {
    /// The line of the file (header = 1).
    pub line: i64,
    /// The grant.
    pub grant: GrantIdentity,
    /// The subject's email.
    pub email: String,
    /// Held by a pending invite.
    pub invite: bool,
    /// The resource's name.
    pub resource_name: String,
    /// The role's name.
    pub role_name: String,
    /// The group's name, for a group grant.
    pub via_group_name: Option<String>,
    /// `approve`, `revoke`, or `None` (undecided).
    pub decision: Option<&'static str>,
    /// Who decided.
    pub reviewer: Option<String>,
    /// When, as the reviewer wrote it.
    pub reviewed_at: Option<String>,
    /// Free text.
    pub comment: Option<String>,
}

/// An imported review to record.
#[derive(Debug, Clone)]
pub struct NewAccessReview {
    /// The workspace.
    pub workspace_id: i64,
    /// The snapshot whose grants were reviewed.
    pub snapshot_id: i64,
    /// The file's name.
    pub file_name: String,
    /// The SHA-256 of its bytes (hex).
    pub file_sha256: String,
    /// Its lines.
    pub decisions: Vec<NewDecision>,
}

/// A recorded review.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordedReview {
    /// Its id.
    pub review_id: i64,
    /// The snapshot it reviewed.
    pub snapshot_id: i64,
    /// When it was imported.
    pub imported_at: String,
    /// Distinct reviewers, comma-separated.
    pub reviewers: String,
    /// Lines recorded.
    pub rows: i64,
    /// Of which approved.
    pub approved: i64,
    /// Of which revoked.
    pub revoked: i64,
    /// Of which undecided.
    pub undecided: i64,
    /// Its chain hash.
    pub chain_hash: String,
}

/// A `revoke` decision of a recorded review.
#[derive(Debug, Clone)]
pub struct RevokeDecision {
    /// The review.
    pub review_id: i64,
    /// The snapshot it reviewed.
    pub reviewed_snapshot_id: i64,
    /// When the review was imported.
    pub imported_at: String,
    /// The decision row's id.
    pub decision_id: i64,
    /// The grant.
    pub grant: GrantIdentity,
    /// The subject's email.
    pub email: String,
    /// Held by a pending invite.
    pub invite: bool,
    /// The resource's name.
    pub resource_name: String,
    /// The role's name.
    pub role_name: String,
    /// The group's name.
    pub via_group_name: Option<String>,
    /// Who decided.
    pub reviewer: Option<String>,
    /// Free text.
    pub comment: Option<String>,
}

impl Store {
    /// The history an export of snapshot `snapshot_id` (observed by instant `at`) reads.
    pub fn access_review_facts(
        &self,
        workspace_id: i64,
        snapshot_id: i64,
        at: &str,
    ) -> Result<ReviewFacts> {
        let mut facts = ReviewFacts::default();
        {
            let mut stmt = self.conn.prepare(
                "SELECT c.user_id, c.email, c.resource_type, c.resource_id, c.role_id,
                    c.via_group_id, c.label_filter,
                    coalesce(s.finished_at, p.finished_at)
                 FROM access_changes c
                 LEFT JOIN snapshots s ON s.id = c.snapshot_id
                 LEFT JOIN pruned_snapshots p ON p.id = c.snapshot_id
                 WHERE c.workspace_id = ?1 AND c.op = 'added' AND c.snapshot_id <= ?2
                 ORDER BY c.snapshot_id, c.id",
            )?;
            let mut rows = stmt.query(params![workspace_id, snapshot_id])?;
            while let Some(row) = rows.next()? {
                let identity = identity_of(row, 0)?;
                if let Some(time) = row.get::<_, Option<String>>(7)? {
                    facts.added_at.insert(identity, time);
                }
            }
        }
        facts.tracking_since = self
            .conn
            .query_row(
                "SELECT coalesce(s.finished_at, p.finished_at) FROM access_tracking t
                 LEFT JOIN snapshots s ON s.id = t.since_snapshot_id
                 LEFT JOIN pruned_snapshots p ON p.id = t.since_snapshot_id
                 WHERE t.workspace_id = ?1",
                [workspace_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        facts.first_snapshot_at = self.conn.query_row(
            "SELECT min(finished_at) FROM (
                SELECT finished_at FROM snapshots WHERE workspace_id = ?1 AND status = 'complete'
                UNION ALL SELECT finished_at FROM pruned_snapshots WHERE workspace_id = ?1)",
            [workspace_id],
            |r| r.get(0),
        )?;
        let mut stmt = self.conn.prepare(
            "SELECT lower(actor_email), max(occurred_at) FROM audit_events
             WHERE workspace_id = ?1 AND actor_email IS NOT NULL AND occurred_at <= ?2
             GROUP BY lower(actor_email)",
        )?;
        let rows = stmt.query_map(params![workspace_id, at], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for row in rows {
            let (email, time): (String, String) = row?;
            facts.last_acting.insert(email, time);
        }
        Ok(facts)
    }

    /// Records an imported review and its decisions in one transaction, sealed as a link of the
    /// workspace's chain after its latest link. The reviewed snapshot must be a complete
    /// snapshot of the workspace.
    pub fn record_access_review(&mut self, review: &NewAccessReview) -> Result<RecordedReview> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let status: Option<String> = tx
            .query_row(
                "SELECT status FROM snapshots WHERE id = ?1 AND workspace_id = ?2",
                params![review.snapshot_id, review.workspace_id],
                |r| r.get(0),
            )
            .optional()?;
        if status.as_deref() != Some("complete") {
            return Err(StoreError::Snapshot(format!(
                "snapshot {} is not a complete snapshot of this workspace",
                review.snapshot_id
            )));
        }
        let after_link_id: i64 = tx.query_row(
            "SELECT max(id) FROM (
                SELECT id FROM snapshots WHERE workspace_id = ?1 AND status = 'complete'
                UNION ALL SELECT id FROM pruned_snapshots WHERE workspace_id = ?1)",
            [review.workspace_id],
            |r| r.get(0),
        )?;
        let count = |d: Option<&str>| review.decisions.iter().filter(|x| x.decision == d).count();
        let (approved, revoked, undecided) =
            (count(Some("approve")), count(Some("revoke")), count(None));
        let mut reviewers: Vec<&str> = review
            .decisions
            .iter()
            .filter(|d| d.decision.is_some())
            .filter_map(|d| d.reviewer.as_deref())
            .collect();
        reviewers.sort_unstable();
        reviewers.dedup();
        let reviewers = reviewers.join(", ");
        let imported_at = now();
        tx.execute(
            "INSERT INTO access_reviews (workspace_id, snapshot_id, after_link_id, imported_at,
                reviewers, file_name, file_sha256, rows, approved, revoked, undecided)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                review.workspace_id,
                review.snapshot_id,
                after_link_id,
                imported_at,
                reviewers,
                review.file_name,
                review.file_sha256,
                review.decisions.len() as i64,
                approved as i64,
                revoked as i64,
                undecided as i64,
            ],
        )?;
        let review_id = tx.last_insert_rowid();
        {
            let mut stmt = tx.prepare(
                "INSERT INTO access_review_decisions (review_id, workspace_id, line, user_id, email,
                    invite, resource_type, resource_id, resource_name, role_id, role_name,
                    via_group_id, via_group_name, label_filter, decision, reviewer, reviewed_at,
                    comment)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                    ?17, ?18)",
            )?;
            for d in &review.decisions {
                let g = &d.grant;
                stmt.execute(params![
                    review_id,
                    review.workspace_id,
                    d.line,
                    g.user_id,
                    d.email,
                    d.invite,
                    g.resource_type,
                    g.resource_id,
                    d.resource_name,
                    g.role_id,
                    d.role_name,
                    g.via_group_id,
                    d.via_group_name,
                    g.label_filter,
                    d.decision,
                    d.reviewer,
                    d.reviewed_at,
                    d.comment,
                ])?;
            }
        }
        let chain_hash = chain::seal_review(&tx, review.workspace_id, review_id, after_link_id)?;
        tx.commit()?;
        Ok(RecordedReview {
            review_id,
            snapshot_id: review.snapshot_id,
            imported_at,
            reviewers,
            rows: review.decisions.len() as i64,
            approved: approved as i64,
            revoked: revoked as i64,
            undecided: undecided as i64,
            chain_hash,
        })
    }

    /// Every `revoke` decision of the workspace's reviews of snapshots up to `snapshot_id`,
    /// oldest review first.
    pub fn revoke_decisions(
        &self,
        workspace_id: i64,
        snapshot_id: i64,
    ) -> Result<Vec<RevokeDecision>> {
        let mut stmt = self.conn.prepare(
            "SELECT d.user_id, d.email, d.resource_type, d.resource_id, d.role_id, d.via_group_id,
                d.label_filter, r.id, r.snapshot_id, r.imported_at, d.id, d.invite,
                d.resource_name, d.role_name, d.via_group_name, d.reviewer, d.comment
             FROM access_review_decisions d JOIN access_reviews r ON r.id = d.review_id
             WHERE d.workspace_id = ?1 AND d.decision = 'revoke' AND r.snapshot_id <= ?2
             ORDER BY r.id, d.id",
        )?;
        let rows = stmt.query_map(params![workspace_id, snapshot_id], |row| {
            Ok(RevokeDecision {
                grant: identity_of(row, 0)?,
                review_id: row.get(7)?,
                reviewed_snapshot_id: row.get(8)?,
                imported_at: row.get(9)?,
                decision_id: row.get(10)?,
                email: row.get(1)?,
                invite: row.get(11)?,
                resource_name: row.get(12)?,
                role_name: row.get(13)?,
                via_group_name: row.get(14)?,
                reviewer: row.get(15)?,
                comment: row.get(16)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// When grant `grant` was last removed after snapshot `after` and at or before snapshot
    /// `upto`, by the recorded access changes (snapshot id and time), if its latest change in
    /// that range is a removal.
    pub fn access_removed(
        &self,
        workspace_id: i64,
        grant: &GrantIdentity,
        after: i64,
        upto: i64,
    ) -> Result<Option<(i64, String)>> {
        let found: Option<(String, i64, Option<String>)> = self
            .conn
            .query_row(
                "SELECT c.op, c.snapshot_id, coalesce(s.finished_at, p.finished_at)
                 FROM access_changes c
                 LEFT JOIN snapshots s ON s.id = c.snapshot_id
                 LEFT JOIN pruned_snapshots p ON p.id = c.snapshot_id
                 WHERE c.workspace_id = ?1 AND c.snapshot_id > ?2 AND c.snapshot_id <= ?3
                   AND c.user_id = ?4 AND (?4 != '' OR c.email = ?5)
                   AND c.resource_type = ?6 AND c.resource_id = ?7 AND c.role_id = ?8
                   AND c.via_group_id IS ?9 AND c.label_filter IS ?10
                 ORDER BY c.snapshot_id DESC, c.id DESC LIMIT 1",
                params![
                    workspace_id,
                    after,
                    upto,
                    grant.user_id,
                    grant.invite_email,
                    grant.resource_type,
                    grant.resource_id,
                    grant.role_id,
                    grant.via_group_id,
                    grant.label_filter,
                ],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(found
            .and_then(|(op, id, time)| (op == "removed").then(|| (id, time.unwrap_or_default()))))
    }
}

/// Reads columns `first..first + 7` (user_id, email, resource_type, resource_id, role_id,
/// via_group_id, label_filter) as a grant's identity.
fn identity_of(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<GrantIdentity> {
    let user_id: String = row.get(first)?;
    let email: String = row.get(first + 1)?;
    Ok(GrantIdentity {
        invite_email: if user_id.is_empty() {
            email
        } else {
            String::new()
        },
        user_id,
        resource_type: row.get(first + 2)?,
        resource_id: row.get(first + 3)?,
        role_id: row.get(first + 4)?,
        via_group_id: row.get(first + 5)?,
        label_filter: row.get(first + 6)?,
    })
}

#[cfg(test)]
mod tests;
