//! Tamper evidence: a hash chain over the complete snapshots of each workspace.
//!
//! Every complete snapshot records the SHA-256 of its content (`content_hash`) and a chain hash
//! `sha256("segwatch-chain-v1" ‖ previous chain hash ‖ content_hash)`, where the previous link
//! is the workspace's previous complete snapshot or tombstone (by id), or a genesis value derived
//! from the workspace name. [`Store::verify_chain`](crate::Store::verify_chain) recomputes every
//! link and reports the first place where the database no longer matches. docs/EVIDENCE.md says
//! what that proves.
//!
//! One function, `content_of`, reads a snapshot's content both for the commit (inside its
//! transaction, after the rows are written) and for verification, so the two cannot disagree.
//!
//! The content of a complete snapshot is, per part, its rows in id order, each encoded as a JSON
//! array of its columns exactly as stored (integers, text, null; blobs as hex):
//! - `snapshot`: its own row: id, workspace name, started_at, finished_at, status,
//!   resource_count, added, removed, modified. Not `base_snapshot_id` (retention re-points it),
//!   nor `api_requests`/`duration_ms`/`error` (operational; a tombstone does not keep them);
//! - `versions`: the resource versions it stored (`valid_from` = it): id, workspace, kind,
//!   resource id, name, content_hash. The body is vouched for by its `content_hash`, which
//!   verification checks against the body;
//! - `closed`: ids of the versions it closed (`valid_to` = it);
//! - `changes`: its change rows, every column;
//! - `alerts_raised`: the alerts it raised, every column that never changes (not the status or
//!   resolution, which a later snapshot sets);
//! - `alerts_resolved`: id, resolved_at, resolved_snapshot_id, resolution and status of the
//!   findings it resolved;
//! - `audit_events`, `kind_status`, `quarantine` (schema 7 and 10), and `access_changes`
//!   (schema 14): its rows of those tables, every column;
//! - `flow_fields` (schema 19): the flows' personal-field rows it opened, every column but
//!   `valid_to` (a later snapshot sets it); `flow_fields_closed`: ids of those it closed;
//! - `alert_updates` (schema 20): the updates of open findings it recorded, every column.
//!
//! Deliveries and rule state are not content: they are operational and change after the commit.
//! The part digests form a manifest (`segwatch-content-v1`, then `part rows sha256` per
//! non-empty part), stored with the snapshot; the content hash is the manifest's SHA-256. The
//! manifest only serves to say which part changed.
//!
//! An imported access review (`access_reviews`, schema 15) is a link of its own: its content is
//! its row (`review`: id, workspace name, reviewed snapshot, the link it follows, import time,
//! reviewers, file name and SHA-256, counts) and its decision rows (`decisions`, every column),
//! hashed at import and chained after the workspace's latest link at that time. Links are
//! ordered by position: a snapshot or tombstone at `(id, 0, id)`, a review at
//! `(after_link_id, 1, review id)`, so the next snapshot chains after the reviews imported since
//! the previous one. A database without reviews chains exactly as before.
//!
//! A tombstone (`pruned_snapshots`) stands for a quiet snapshot, whose content was its row alone
//! with no added, removed or modified resources: that content is rebuilt from the tombstone, so a
//! tombstone verifies like a snapshot, and one that replaces a snapshot that held anything breaks
//! the chain.

use std::fmt::Write as _;
use std::io::Write as _;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Result;
use segwatch_core::model::sha256_hex;

mod seal;
mod verify;

pub(crate) use seal::{backfill, seal, seal_review};
pub use verify::{
    Backfill, ChainProblem, ChainReport, Link, PartMismatch, ProblemKind, WorkspaceChain,
};

/// First line of every manifest: the content format this code writes and reads.
const CONTENT_FORMAT: &str = "segwatch-content-v1";
/// Domain tag of a chain link.
const CHAIN_TAG: &str = "segwatch-chain-v1";
/// Domain tag of a workspace's genesis value.
const GENESIS_TAG: &str = "segwatch-genesis-v1";

/// One part of a snapshot's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// The snapshot's own row.
    Snapshot,
    /// Resource versions it stored.
    Versions,
    /// Resource versions it closed.
    Closed,
    /// Its change rows.
    Changes,
    /// Alerts it raised (immutable columns).
    AlertsRaised,
    /// Findings it resolved (resolution columns).
    AlertsResolved,
    /// Audit-trail events it stored.
    AuditEvents,
    /// The kinds it could not read in full (schema 10; empty when it read them all).
    KindStatus,
    /// The items it quarantined (schema 10).
    Quarantine,
    /// The effective access it gained and lost (schema 14).
    AccessChanges,
    /// An access review's own row (schema 15; a review link only).
    Review,
    /// An access review's decision rows (schema 15; a review link only).
    Decisions,
    /// The flows' personal-field rows it opened (schema 19).
    FlowFields,
    /// Ids of the flows' personal-field rows it closed (schema 19).
    FlowFieldsClosed,
    /// Updates of open findings whose resource it changed (schema 20).
    AlertUpdates,
}

impl Part {
    /// Every part, in hashing order.
    pub const ALL: [Part; 15] = [
        Part::Snapshot,
        Part::Versions,
        Part::Closed,
        Part::Changes,
        Part::AlertsRaised,
        Part::AlertsResolved,
        Part::AuditEvents,
        Part::KindStatus,
        Part::Quarantine,
        Part::AccessChanges,
        Part::Review,
        Part::Decisions,
        Part::FlowFields,
        Part::FlowFieldsClosed,
        Part::AlertUpdates,
    ];

    /// Its name in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Snapshot => "snapshot",
            Part::Versions => "versions",
            Part::Closed => "closed",
            Part::Changes => "changes",
            Part::AlertsRaised => "alerts_raised",
            Part::AlertsResolved => "alerts_resolved",
            Part::AuditEvents => "audit_events",
            Part::KindStatus => "kind_status",
            Part::Quarantine => "quarantine",
            Part::AccessChanges => "access_changes",
            Part::Review => "review",
            Part::Decisions => "decisions",
            Part::FlowFields => "flow_fields",
            Part::FlowFieldsClosed => "flow_fields_closed",
            Part::AlertUpdates => "alert_updates",
        }
    }

    fn parse(s: &str) -> Option<Part> {
        Part::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The rows of this part for snapshot `?1`, in a fixed column and row order.
    fn sql(self) -> &'static str {
        match self {
            Part::Snapshot => {
                "SELECT s.id, w.name, s.started_at, s.finished_at, s.status, s.resource_count,
                    s.added, s.removed, s.modified
                 FROM snapshots s LEFT JOIN workspaces w ON w.id = s.workspace_id WHERE s.id = ?1"
            }
            Part::Versions => {
                "SELECT id, workspace_id, kind, resource_id, name, content_hash
                 FROM resource_versions WHERE valid_from = ?1 ORDER BY id"
            }
            Part::Closed => "SELECT id FROM resource_versions WHERE valid_to = ?1 ORDER BY id",
            Part::Changes => {
                "SELECT id, snapshot_id, workspace_id, kind, resource_id, name, op,
                    before_version_id, after_version_id, fields, text_diff,
                    actor, actor_email, event_type, event_id
                 FROM changes WHERE snapshot_id = ?1 ORDER BY id"
            }
            Part::AlertsRaised => {
                "SELECT id, workspace_id, rule_id, rule_kind, severity, title, resource_kind,
                    resource_id, resource_name, snapshot_id, change_id, opened_at, summary,
                    explanation, remediation, tags, actor, actor_email, event_type, event_id
                 FROM alerts WHERE snapshot_id = ?1 ORDER BY id"
            }
            Part::AlertsResolved => {
                "SELECT id, resolved_at, resolved_snapshot_id, resolution, status
                 FROM alerts WHERE resolved_snapshot_id = ?1 ORDER BY id"
            }
            Part::AuditEvents => {
                "SELECT id, workspace_id, event_id, occurred_at, type, actor, actor_email,
                    resource_id, resource_type, resource_name, body
                 FROM audit_events WHERE snapshot_id = ?1 ORDER BY id"
            }
            // Parts added later are empty for older snapshots, so their manifests are unchanged.
            Part::KindStatus => {
                "SELECT id, kind_status FROM snapshots WHERE id = ?1 AND kind_status IS NOT NULL"
            }
            Part::Quarantine => {
                "SELECT id, workspace_id, snapshot_id, kind, path, position, reason, raw, truncated,
                    raw_sha256
                 FROM quarantine WHERE snapshot_id = ?1 ORDER BY id"
            }
            Part::AccessChanges => {
                "SELECT id, snapshot_id, workspace_id, op, user_id, email, invite, resource_type,
                    resource_id, resource_name, role_id, role_name, via_group_id, via_group_name,
                    label_filter, cause_kind, cause_id, cause_change_id, actor, actor_email,
                    event_type, event_id
                 FROM access_changes WHERE snapshot_id = ?1 ORDER BY id"
            }
            // A review link's parts, read by review id.
            Part::Review => {
                "SELECT r.id, w.name, r.snapshot_id, r.after_link_id, r.imported_at, r.reviewers,
                    r.file_name, r.file_sha256, r.rows, r.approved, r.revoked, r.undecided
                 FROM access_reviews r LEFT JOIN workspaces w ON w.id = r.workspace_id
                 WHERE r.id = ?1"
            }
            Part::Decisions => {
                "SELECT id, review_id, workspace_id, line, user_id, email, invite, resource_type,
                    resource_id, resource_name, role_id, role_name, via_group_id, via_group_name,
                    label_filter, decision, reviewer, reviewed_at, comment
                 FROM access_review_decisions WHERE review_id = ?1 ORDER BY id"
            }
            Part::FlowFields => {
                "SELECT id, workspace_id, source_id, target_kind, target_id, via, fields, valid_from
                 FROM flow_personal_fields WHERE valid_from = ?1 ORDER BY id"
            }
            Part::FlowFieldsClosed => {
                "SELECT id FROM flow_personal_fields WHERE valid_to = ?1 ORDER BY id"
            }
            Part::AlertUpdates => {
                "SELECT id, alert_id, workspace_id, snapshot_id, change_id, summary, explanation,
                    actor, actor_email, event_type, event_id, created_at
                 FROM alert_updates WHERE snapshot_id = ?1 ORDER BY id"
            }
        }
    }

    /// The `snapshot` part of a tombstone: the row a quiet complete snapshot had, with the
    /// same columns and types as [`Part::Snapshot`] reads.
    const TOMBSTONE_SQL: &str = "SELECT p.id, w.name, p.started_at, p.finished_at, 'complete',
            p.resource_count, 0, 0, 0
         FROM pruned_snapshots p LEFT JOIN workspaces w ON w.id = p.workspace_id WHERE p.id = ?1";

    /// What the part holds, for messages (plural noun).
    fn rows_noun(self) -> &'static str {
        match self {
            Part::Snapshot => "snapshot rows",
            Part::Versions => "resource versions it stored",
            Part::Closed => "resource versions it closed",
            Part::Changes => "change rows",
            Part::AlertsRaised => "alerts it raised",
            Part::AlertsResolved => "findings it resolved",
            Part::AuditEvents => "audit-trail events it stored",
            Part::KindStatus => "kind status rows",
            Part::Quarantine => "quarantined items it stored",
            Part::AccessChanges => "access changes it stored",
            Part::Review => "review rows",
            Part::Decisions => "decision rows",
            Part::FlowFields => "flow personal-field rows it opened",
            Part::FlowFieldsClosed => "flow personal-field rows it closed",
            Part::AlertUpdates => "finding updates it recorded",
        }
    }

    /// A sentence fragment: one row of this part was edited.
    fn edited(self) -> &'static str {
        match self {
            Part::Snapshot => "its own row (times, status, counts or workspace name) was edited",
            Part::Versions => "a resource version it stored was edited",
            Part::Closed => "which resource versions it closed was altered",
            Part::Changes => "a change row was edited",
            Part::AlertsRaised => "an alert it raised was edited",
            Part::AlertsResolved => "a resolution it recorded was edited",
            Part::AuditEvents => "an audit-trail event it stored was edited",
            Part::KindStatus => "which kinds it could not read was altered",
            Part::Quarantine => "a quarantined item it stored was edited",
            Part::AccessChanges => "an access change it stored was edited",
            Part::Review => {
                "its own row (reviewed snapshot, time, reviewers, file hash or counts) was edited"
            }
            Part::Decisions => "a decision row was edited",
            Part::FlowFields => "a flow's personal-field row it opened was edited",
            Part::FlowFieldsClosed => "which flow personal-field rows it closed was altered",
            Part::AlertUpdates => "a finding update it recorded was edited",
        }
    }
}

/// The content digest of one snapshot: its manifest and the manifest's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// `segwatch-content-v1`, then one `part rows sha256` line per non-empty part.
    pub manifest: String,
    /// Hex SHA-256 of the manifest.
    pub hash: String,
}

/// Where a snapshot's content is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A row of `snapshots` and the rows that reference it.
    Snapshot,
    /// A row of `pruned_snapshots`: the row alone; every other part is empty by definition.
    Tombstone,
    /// A row of `access_reviews` and its decisions (parts `review` and `decisions` only).
    Review,
}

/// Reads and digests the content of a snapshot (or tombstone). The one function used at commit
/// and by verification.
fn content_of(conn: &Connection, snapshot_id: i64, source: Source) -> Result<Content> {
    let mut manifest = format!("{CONTENT_FORMAT}\n");
    let mut row_bytes = Vec::with_capacity(256);
    for part in Part::ALL {
        let sql = match (source, part) {
            (Source::Snapshot, Part::Review | Part::Decisions) => continue,
            (Source::Snapshot, _) => part.sql(),
            (Source::Tombstone, Part::Snapshot) => Part::TOMBSTONE_SQL,
            (Source::Tombstone, _) => continue,
            (Source::Review, Part::Review | Part::Decisions) => part.sql(),
            (Source::Review, _) => continue,
        };
        let mut stmt = conn.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query([snapshot_id])?;
        let mut hasher = Sha256::new();
        let mut count = 0u64;
        while let Some(row) = rows.next()? {
            row_bytes.clear();
            encode_row(row, columns, &mut row_bytes)?;
            hasher.update(&row_bytes);
            count += 1;
        }
        if count > 0 {
            let _ = writeln!(
                manifest,
                "{} {count} {}",
                part.as_str(),
                hex(&hasher.finalize())
            );
        }
    }
    let hash = sha256_hex(manifest.as_bytes());
    Ok(Content { manifest, hash })
}

/// Appends a row as a JSON array of its stored values. Text is a JSON string (text that is not
/// UTF-8 is `{"bytes": hex}`), a blob is `{"blob": hex}`: a changed type changes the encoding.
fn encode_row(row: &rusqlite::Row<'_>, columns: usize, out: &mut Vec<u8>) -> Result<()> {
    out.push(b'[');
    for i in 0..columns {
        if i > 0 {
            out.push(b',');
        }
        let written = match row.get_ref(i)? {
            ValueRef::Null => out.write_all(b"null"),
            ValueRef::Integer(n) => write!(out, "{n}"),
            ValueRef::Real(x) => serde_json::to_writer(&mut *out, &x).map_err(std::io::Error::from),
            ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => serde_json::to_writer(&mut *out, text).map_err(std::io::Error::from),
                Err(_) => write!(out, "{{\"bytes\":\"{}\"}}", hex(bytes)),
            },
            ValueRef::Blob(bytes) => write!(out, "{{\"blob\":\"{}\"}}", hex(bytes)),
        };
        written.expect("writing to a Vec cannot fail");
    }
    out.push(b']');
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The chain hash of a link: its previous link's chain hash and its own content hash.
pub fn link_hash(previous: &str, content_hash: &str) -> String {
    sha256_hex(format!("{CHAIN_TAG}\n{previous}\n{content_hash}").as_bytes())
}

/// The value the first link of a workspace chains to.
pub fn genesis(workspace_name: &str) -> String {
    sha256_hex(format!("{GENESIS_TAG}\n{workspace_name}").as_bytes())
}

/// Where a link stands in its workspace's chain: `(position, rank, id)`. A complete snapshot or
/// tombstone is `(id, 0, id)`; an access review `(after_link_id, 1, review id)`. Links chain in
/// this order.
pub type LinkPosition = (i64, i64, i64);

/// The link before position `at` in its workspace: the latest complete snapshot, tombstone or
/// access review before it (its position and chain hash, which a tampered row may lack), or
/// none. `reviews`: whether `access_reviews` exists (not during the chain's own migration).
fn previous_link(
    conn: &Connection,
    workspace_id: i64,
    at: LinkPosition,
    reviews: bool,
) -> Result<Option<(LinkPosition, Option<String>)>> {
    // Snapshots and tombstones before the position (at rank 1, the review's own link counts).
    let below = if at.1 == 0 { at.0 } else { at.0 + 1 };
    let snapshot: Option<(i64, Option<String>)> = conn
        .prepare_cached(
            "SELECT id, chain_hash FROM (
                SELECT id, chain_hash FROM snapshots
                WHERE workspace_id = ?1 AND status = 'complete' AND id < ?2
                UNION ALL
                SELECT id, chain_hash FROM pruned_snapshots WHERE workspace_id = ?1 AND id < ?2
             ) ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![workspace_id, below], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if !reviews {
        return Ok(snapshot.map(|(s, hash)| ((s, 0, s), hash)));
    }
    let review: Option<(i64, i64, Option<String>)> = conn
        .prepare_cached(
            "SELECT after_link_id, id, chain_hash FROM access_reviews
             WHERE workspace_id = ?1 AND (after_link_id < ?2 OR (after_link_id = ?2 AND ?3 = 1 AND id < ?4))
             ORDER BY after_link_id DESC, id DESC LIMIT 1",
        )?
        .query_row(params![workspace_id, at.0, at.1, at.2], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    Ok(match (snapshot, review) {
        (Some((s, _)), Some((after, id, hash))) if after >= s => Some(((after, 1, id), hash)),
        (None, Some((after, id, hash))) => Some(((after, 1, id), hash)),
        (Some((s, hash)), _) => Some(((s, 0, s), hash)),
        (None, None) => None,
    })
}

fn workspace_name(conn: &Connection, workspace_id: i64) -> Result<String> {
    Ok(conn
        .prepare_cached("SELECT name FROM workspaces WHERE id = ?1")?
        .query_row([workspace_id], |r| r.get(0))?)
}

#[cfg(test)]
mod tests;
