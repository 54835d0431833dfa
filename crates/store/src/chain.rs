//! Tamper evidence: a hash chain over the complete snapshots of each workspace.
//!
//! Every complete snapshot records the SHA-256 of its content (`content_hash`) and a chain hash
//! `sha256("segwatch-chain-v1" ‖ previous chain hash ‖ content_hash)`, where the previous link
//! is the workspace's previous complete snapshot or tombstone (by id), or a genesis value derived
//! from the workspace name. [`Store::verify_chain`] recomputes every link and reports the first
//! place where the database no longer matches. docs/EVIDENCE.md says what that proves.
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
//!   findings it resolved.
//!
//! Deliveries and rule state are not content: they are operational and change after the commit.
//! The part digests form a manifest (`segwatch-content-v1`, then `part rows sha256` per
//! non-empty part), stored with the snapshot; the content hash is the manifest's SHA-256. The
//! manifest only serves to say which part changed.
//!
//! A tombstone (`pruned_snapshots`) stands for a quiet snapshot, whose content was its row alone
//! with no added, removed or modified resources: that content is rebuilt from the tombstone, so a
//! tombstone verifies like a snapshot, and one that replaces a snapshot that held anything breaks
//! the chain.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Result, Store, now};
use segwatch_core::model::sha256_hex;

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
}

impl Part {
    /// Every part, in hashing order.
    pub const ALL: [Part; 9] = [
        Part::Snapshot,
        Part::Versions,
        Part::Closed,
        Part::Changes,
        Part::AlertsRaised,
        Part::AlertsResolved,
        Part::AuditEvents,
        Part::KindStatus,
        Part::Quarantine,
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
}

/// Reads and digests the content of a snapshot (or tombstone). The one function used at commit
/// and by verification.
fn content_of(conn: &Connection, snapshot_id: i64, source: Source) -> Result<Content> {
    let mut manifest = format!("{CONTENT_FORMAT}\n");
    let mut row_bytes = Vec::with_capacity(256);
    for part in Part::ALL {
        let sql = match (source, part) {
            (Source::Snapshot, _) => part.sql(),
            (Source::Tombstone, Part::Snapshot) => Part::TOMBSTONE_SQL,
            (Source::Tombstone, _) => continue,
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

/// The link before `snapshot_id` in its workspace: the previous complete snapshot or tombstone
/// (id and chain hash, which a tampered row may lack), or none.
fn previous_link(
    conn: &Connection,
    workspace_id: i64,
    snapshot_id: i64,
) -> Result<Option<(i64, Option<String>)>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, chain_hash FROM (
                SELECT id, chain_hash FROM snapshots
                WHERE workspace_id = ?1 AND status = 'complete' AND id < ?2
                UNION ALL
                SELECT id, chain_hash FROM pruned_snapshots WHERE workspace_id = ?1 AND id < ?2
             ) ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![workspace_id, snapshot_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?)
}

fn workspace_name(conn: &Connection, workspace_id: i64) -> Result<String> {
    Ok(conn
        .prepare_cached("SELECT name FROM workspaces WHERE id = ?1")?
        .query_row([workspace_id], |r| r.get(0))?)
}

/// Hashes a just-completed snapshot into its workspace's chain. Call inside the transaction
/// that wrote it, after every row of it is written and its status is `complete`. Returns the
/// chain hash.
pub(super) fn seal(conn: &Connection, workspace_id: i64, snapshot_id: i64) -> Result<String> {
    let content = content_of(conn, snapshot_id, Source::Snapshot)?;
    let previous = match previous_link(conn, workspace_id, snapshot_id)? {
        Some((_, Some(hash))) => hash,
        Some((id, None)) => {
            // Refusing to commit would let whoever broke the chain stop the monitoring; the
            // break stays visible to `segwatch verify` at snapshot `id`.
            tracing::error!(
                snapshot = id,
                "the previous complete snapshot has no chain hash; the chain is broken there (run `segwatch verify`)"
            );
            String::new()
        }
        None => genesis(&workspace_name(conn, workspace_id)?),
    };
    let chain = link_hash(&previous, &content.hash);
    conn.prepare_cached(
        "UPDATE snapshots SET content_manifest = ?2, content_hash = ?3, chain_hash = ?4 WHERE id = ?1",
    )?
    .execute(params![snapshot_id, content.manifest, content.hash, chain])?;
    Ok(chain)
}

/// Hashes, in order, the complete snapshots that existed before the chain (called by the
/// migration that introduces it, in its transaction) and records the backfill per workspace.
pub(super) fn backfill(conn: &Connection) -> Result<()> {
    let at = now();
    let mut by_workspace: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT workspace_id, id FROM snapshots
             WHERE status = 'complete' AND chain_hash IS NULL ORDER BY workspace_id, id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (workspace, id) = row?;
            by_workspace.entry(workspace).or_default().push(id);
        }
    }
    for (workspace, ids) in by_workspace {
        for &id in &ids {
            seal(conn, workspace, id)?;
        }
        conn.execute(
            "INSERT INTO chain_backfills (workspace_id, through_snapshot_id, snapshots, backfilled_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![workspace, ids.last(), ids.len() as i64, at],
        )?;
        tracing::info!(
            workspace,
            snapshots = ids.len(),
            "hashed the existing snapshots into the tamper-evidence chain"
        );
    }
    Ok(())
}

/// What `segwatch verify` found, per workspace.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    /// One entry per workspace in the database.
    pub workspaces: Vec<WorkspaceChain>,
}

impl ChainReport {
    /// Whether every workspace's chain is intact.
    pub fn intact(&self) -> bool {
        self.workspaces.iter().all(|w| w.problem.is_none())
    }

    /// The verified link whose chain hash is `hash` (an anchor recorded earlier), with its
    /// workspace.
    pub fn find_link(&self, hash: &str) -> Option<(&WorkspaceChain, &Link)> {
        let hash = hash.trim().to_ascii_lowercase();
        self.workspaces.iter().find_map(|w| {
            w.verified
                .iter()
                .find(|l| l.chain_hash == hash)
                .map(|l| (w, l))
        })
    }
}

/// The chain of one workspace.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceChain {
    /// The workspace's name.
    pub workspace: String,
    /// Complete snapshots verified (before the first problem, if any).
    pub snapshots: usize,
    /// Tombstones of pruned snapshots verified (likewise).
    pub pruned: usize,
    /// The last verified link: the head of the chain when it is intact.
    pub head: Option<Link>,
    /// When the snapshots that predate the chain were hashed.
    pub backfill: Option<Backfill>,
    /// The first place where the database no longer matches the chain.
    pub problem: Option<ChainProblem>,
    /// Every verified link, oldest first.
    #[serde(skip)]
    pub verified: Vec<Link>,
}

/// A verified link of the chain.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    /// The snapshot (or pruned snapshot).
    pub snapshot_id: i64,
    /// Its chain hash.
    pub chain_hash: String,
    /// Whether it is the tombstone of a pruned snapshot.
    pub pruned: bool,
}

/// Snapshots hashed when the chain was introduced rather than when they were committed.
#[derive(Debug, Clone, Serialize)]
pub struct Backfill {
    /// The last of them.
    pub through_snapshot_id: i64,
    /// How many.
    pub snapshots: i64,
    /// When.
    pub at: String,
}

/// The first alteration found in a workspace.
#[derive(Debug, Clone, Serialize)]
pub struct ChainProblem {
    /// The snapshot named by the finding (for a deletion: the missing one if it is known, else
    /// the first one whose link broke).
    pub snapshot_id: i64,
    /// What kind of alteration.
    pub kind: ProblemKind,
    /// A sentence for operators.
    pub message: String,
    /// For a content mismatch: which parts differ from what was recorded at commit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartMismatch>,
    /// For a broken link: ids between the two links that exist nowhere.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_ids: Vec<i64>,
}

/// Kinds of alteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A snapshot that rows still reference, or whose absence breaks the chain, is gone.
    MissingSnapshot,
    /// A snapshot does not chain to the previous link (its chain hash was altered).
    LinkMismatch,
    /// A snapshot's content differs from what was hashed at commit.
    ContentMismatch,
    /// A resource version's body no longer matches its recorded SHA-256.
    VersionBody,
    /// An alert's status contradicts its resolution columns.
    AlertState,
    /// A complete snapshot carries no hashes.
    Unhashed,
    /// A snapshot that is not complete carries hashes or content: its status was changed.
    StatusAltered,
    /// A tombstone that cannot stand for a quiet snapshot.
    Tombstone,
    /// The recorded manifest does not match the recorded content hash.
    Manifest,
}

/// A content part that differs from the manifest recorded at commit.
#[derive(Debug, Clone, Serialize)]
pub struct PartMismatch {
    /// The part.
    pub part: Part,
    /// Rows recorded at commit.
    pub recorded_rows: u64,
    /// Rows found now.
    pub found_rows: u64,
}

impl ChainProblem {
    fn new(snapshot_id: i64, kind: ProblemKind, message: String) -> ChainProblem {
        ChainProblem {
            snapshot_id,
            kind,
            message,
            parts: Vec::new(),
            missing_ids: Vec::new(),
        }
    }
}

/// Columns that reference a snapshot, and whether the referencing rows are snapshot content
/// (which a tombstone's quiet snapshot cannot have had).
const SNAPSHOT_REFERENCES: &str = "
    WITH refs(workspace_id, snapshot_id, what, content) AS (
        SELECT workspace_id, valid_from, 'resource versions stored', 1 FROM resource_versions
        UNION ALL SELECT workspace_id, valid_to, 'resource versions closed', 1
            FROM resource_versions WHERE valid_to IS NOT NULL
        UNION ALL SELECT workspace_id, snapshot_id, 'changes', 1 FROM changes
        UNION ALL SELECT workspace_id, snapshot_id, 'quarantined items', 1 FROM quarantine
        UNION ALL SELECT workspace_id, snapshot_id, 'alerts', 1 FROM alerts
        UNION ALL SELECT workspace_id, resolved_snapshot_id, 'alert resolutions', 1
            FROM alerts WHERE resolved_snapshot_id IS NOT NULL
        UNION ALL SELECT workspace_id, snapshot_id, 'deliveries', 1 FROM deliveries
        UNION ALL SELECT workspace_id, evaluated_snapshot_id, 'rule states', 0 FROM rule_state
        UNION ALL SELECT workspace_id, base_snapshot_id, 'snapshots based on it', 0
            FROM snapshots WHERE base_snapshot_id IS NOT NULL
    )
    SELECT r.workspace_id, r.snapshot_id, r.what, count(*), s.status, p.id IS NOT NULL
    FROM refs r
    LEFT JOIN snapshots s ON s.id = r.snapshot_id
    LEFT JOIN pruned_snapshots p ON p.id = r.snapshot_id
    WHERE (s.id IS NULL AND (p.id IS NULL OR r.content = 1))
       OR (s.status != 'complete' AND r.content = 1)
    GROUP BY r.workspace_id, r.snapshot_id, r.what
    ORDER BY r.snapshot_id, r.what";

impl Store {
    /// Recomputes every workspace's chain and reports, per workspace, the first place where the
    /// database was altered after commit. Reads one consistent state of the database; writes
    /// nothing.
    pub fn verify_chain(&self) -> Result<ChainReport> {
        // A read transaction: a poll committing meanwhile is either wholly seen or not at all.
        let tx = self.conn.unchecked_transaction()?;
        let workspaces: Vec<(i64, String)> = {
            let mut stmt = tx.prepare("SELECT id, name FROM workspaces ORDER BY id")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        let mut outside = reference_problems(&tx)?;
        let mut report = ChainReport {
            workspaces: Vec::with_capacity(workspaces.len()),
        };
        for (id, name) in workspaces {
            let mut chain = verify_workspace(&tx, id, &name)?;
            // The first alteration is the one with the lowest snapshot id, whichever check
            // found it.
            let found = outside.remove(&id).unwrap_or_default();
            for problem in found {
                if chain
                    .problem
                    .as_ref()
                    .is_none_or(|p| problem.snapshot_id < p.snapshot_id)
                {
                    chain.problem = Some(problem);
                }
            }
            // Only what precedes the first alteration is vouched for.
            if let Some(problem) = &chain.problem {
                chain
                    .verified
                    .retain(|l| l.snapshot_id < problem.snapshot_id);
            }
            chain.pruned = chain.verified.iter().filter(|l| l.pruned).count();
            chain.snapshots = chain.verified.len() - chain.pruned;
            chain.head = chain.verified.last().cloned();
            report.workspaces.push(chain);
        }
        tx.rollback()?;
        Ok(report)
    }
}

/// Problems found outside the walk: rows referencing snapshots that are gone (or that a
/// tombstone says were quiet, or that are not complete), snapshots that are not complete but
/// carry hashes, ids both stored and tombstoned. Per workspace, sorted by snapshot id.
fn reference_problems(conn: &Connection) -> Result<HashMap<i64, Vec<ChainProblem>>> {
    let mut out: HashMap<i64, Vec<ChainProblem>> = HashMap::new();
    // (workspace, snapshot) -> (status, tombstoned, [(what, count)])
    type Refs = BTreeMap<(i64, i64), (Option<String>, bool, Vec<(String, i64)>)>;
    let mut refs: Refs = BTreeMap::new();
    {
        let mut stmt = conn.prepare(SNAPSHOT_REFERENCES)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let entry = refs
                .entry((row.get(0)?, row.get(1)?))
                .or_insert_with(|| (None, false, Vec::new()));
            entry.0 = row.get(4)?;
            entry.1 = row.get(5)?;
            entry.2.push((row.get(2)?, row.get(3)?));
        }
    }
    for ((workspace, snapshot), (status, tombstoned, what)) in refs {
        let listed = what
            .iter()
            .map(|(w, n)| format!("{w}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let problem = match (status, tombstoned) {
            (Some(status), _) => ChainProblem::new(
                snapshot,
                ProblemKind::StatusAltered,
                format!(
                    "snapshot {snapshot} is {status} but holds content ({listed}): it was complete and its status was altered"
                ),
            ),
            (None, true) => ChainProblem::new(
                snapshot,
                ProblemKind::Tombstone,
                format!(
                    "snapshot {snapshot} was pruned as a quiet snapshot, but rows still reference it ({listed}): it held content, and its deletion was disguised as retention"
                ),
            ),
            (None, false) => ChainProblem::new(
                snapshot,
                ProblemKind::MissingSnapshot,
                format!("snapshot {snapshot} is missing: rows still reference it ({listed})"),
            ),
        };
        out.entry(workspace).or_default().push(problem);
    }
    let mut stmt = conn.prepare(
        "SELECT workspace_id, id, status FROM snapshots WHERE status != 'complete'
            AND (chain_hash IS NOT NULL OR content_hash IS NOT NULL OR content_manifest IS NOT NULL)
         UNION ALL
         SELECT p.workspace_id, p.id, 'tombstoned' FROM pruned_snapshots p JOIN snapshots s ON s.id = p.id
         ORDER BY 2",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (workspace, snapshot, status): (i64, i64, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        let problem = if status == "tombstoned" {
            ChainProblem::new(
                snapshot,
                ProblemKind::Tombstone,
                format!("snapshot {snapshot} is both stored and tombstoned as pruned"),
            )
        } else {
            ChainProblem::new(
                snapshot,
                ProblemKind::StatusAltered,
                format!(
                    "snapshot {snapshot} is {status} but carries a chain hash: it was complete and its status was altered"
                ),
            )
        };
        out.entry(workspace).or_default().push(problem);
    }
    for problems in out.values_mut() {
        problems.sort_by_key(|p| p.snapshot_id);
    }
    Ok(out)
}

/// One link as stored: a complete snapshot's recorded hashes, or a tombstone's chain hash.
struct StoredLink {
    id: i64,
    source: Source,
    manifest: Option<String>,
    content_hash: Option<String>,
    chain_hash: Option<String>,
}

/// Walks one workspace's chain, stopping at the first problem.
fn verify_workspace(conn: &Connection, workspace_id: i64, name: &str) -> Result<WorkspaceChain> {
    let backfill = conn
        .query_row(
            "SELECT through_snapshot_id, snapshots, backfilled_at FROM chain_backfills WHERE workspace_id = ?1",
            [workspace_id],
            |r| {
                Ok(Backfill {
                    through_snapshot_id: r.get(0)?,
                    snapshots: r.get(1)?,
                    at: r.get(2)?,
                })
            },
        )
        .optional()?;
    let mut chain = WorkspaceChain {
        workspace: name.to_string(),
        snapshots: 0,
        pruned: 0,
        head: None,
        backfill,
        problem: None,
        verified: Vec::new(),
    };
    let links: Vec<StoredLink> = {
        let mut stmt = conn.prepare(
            "SELECT id, 0, content_manifest, content_hash, chain_hash FROM snapshots
             WHERE workspace_id = ?1 AND status = 'complete'
             UNION ALL
             SELECT id, 1, NULL, NULL, chain_hash FROM pruned_snapshots WHERE workspace_id = ?1
             ORDER BY 1",
        )?;
        let rows = stmt.query_map([workspace_id], |r| {
            Ok(StoredLink {
                id: r.get(0)?,
                source: if r.get::<_, i64>(1)? == 1 {
                    Source::Tombstone
                } else {
                    Source::Snapshot
                },
                manifest: r.get(2)?,
                content_hash: r.get(3)?,
                chain_hash: r.get(4)?,
            })
        })?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    let mut previous: (Option<i64>, String) = (None, genesis(name));
    for link in links {
        if let Some(problem) = check_link(conn, &link, &previous)? {
            chain.problem = Some(problem);
            break;
        }
        let hash = link.chain_hash.expect("checked");
        chain.verified.push(Link {
            snapshot_id: link.id,
            chain_hash: hash.clone(),
            pruned: link.source == Source::Tombstone,
        });
        previous = (Some(link.id), hash);
    }
    Ok(chain)
}

/// Checks one link against the verified previous one; `None` if it holds.
fn check_link(
    conn: &Connection,
    link: &StoredLink,
    (previous_id, previous_hash): &(Option<i64>, String),
) -> Result<Option<ChainProblem>> {
    let id = link.id;
    let Some(chain_hash) = &link.chain_hash else {
        return Ok(Some(ChainProblem::new(
            id,
            ProblemKind::Unhashed,
            format!(
                "snapshot {id} is complete but carries no chain hash: it was inserted or altered outside segwatch"
            ),
        )));
    };
    let content = content_of(conn, id, link.source)?;
    if link.source == Source::Tombstone {
        if link_hash(previous_hash, &content.hash) != *chain_hash {
            let mut problem = broken_link(conn, id, *previous_id)?;
            problem.kind = ProblemKind::Tombstone;
            problem.message = format!(
                "the tombstone of pruned snapshot {id} does not verify: the snapshot it stands for was not quiet, or the tombstone was altered, or {}",
                problem.message
            );
            return Ok(Some(problem));
        }
        return Ok(None);
    }
    let (Some(manifest), Some(recorded)) = (&link.manifest, &link.content_hash) else {
        return Ok(Some(ChainProblem::new(
            id,
            ProblemKind::Unhashed,
            format!(
                "snapshot {id} is complete but its content hash was removed: it was altered outside segwatch"
            ),
        )));
    };
    if let Some(problem) = check_bodies(conn, id)? {
        return Ok(Some(problem));
    }
    if let Some(problem) = check_alert_states(conn, id)? {
        return Ok(Some(problem));
    }
    let manifest_intact = sha256_hex(manifest.as_bytes()) == *recorded;
    if content.hash != *recorded {
        return Ok(Some(content_mismatch(
            id,
            manifest,
            manifest_intact,
            &content,
        )));
    }
    if !manifest_intact {
        return Ok(Some(ChainProblem::new(
            id,
            ProblemKind::Manifest,
            format!(
                "the content manifest recorded with snapshot {id} was altered (its content itself is intact)"
            ),
        )));
    }
    if link_hash(previous_hash, recorded) != *chain_hash {
        return Ok(Some(broken_link(conn, id, *previous_id)?));
    }
    Ok(None)
}

/// Versions stored by the snapshot whose body no longer hashes to their recorded hash.
fn check_bodies(conn: &Connection, snapshot_id: i64) -> Result<Option<ChainProblem>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, resource_id, content_hash, body FROM resource_versions
         WHERE valid_from = ?1 ORDER BY id",
    )?;
    let mut rows = stmt.query([snapshot_id])?;
    let mut edited = Vec::new();
    while let Some(row) = rows.next()? {
        let body = match row.get_ref(4)? {
            ValueRef::Text(b) | ValueRef::Blob(b) => sha256_hex(b),
            _ => String::new(),
        };
        let recorded = row.get::<_, Option<String>>(3).ok().flatten();
        if recorded.as_deref() != Some(body.as_str()) {
            let kind: String = row.get(1).unwrap_or_default();
            let resource: String = row.get(2).unwrap_or_default();
            edited.push(format!(
                "version {} ({kind} {resource})",
                row.get::<_, i64>(0)?
            ));
        }
    }
    Ok((!edited.is_empty()).then(|| {
        ChainProblem::new(
            snapshot_id,
            ProblemKind::VersionBody,
            format!(
                "snapshot {snapshot_id} was altered: the body of {} no longer matches its recorded SHA-256 (a resource version's body was edited)",
                edited.join(", ")
            ),
        )
    }))
}

/// Alerts raised by the snapshot whose status contradicts their resolution columns (those are
/// hashed in the resolving snapshot; the status itself changes over time, so it is checked here).
fn check_alert_states(conn: &Connection, snapshot_id: i64) -> Result<Option<ChainProblem>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, status FROM alerts WHERE snapshot_id = ?1 AND NOT (
            (resolved_snapshot_id IS NULL AND resolved_at IS NULL AND resolution IS NULL
                AND status IS (CASE rule_kind WHEN 'change' THEN 'fired' ELSE 'open' END))
            OR (resolved_snapshot_id IS NOT NULL AND status IS 'resolved'))
         ORDER BY id",
    )?;
    let wrong: Vec<(i64, Option<String>)> = stmt
        .query_map([snapshot_id], |r| Ok((r.get(0)?, r.get(1).ok())))?
        .collect::<std::result::Result<_, _>>()?;
    Ok(wrong.first().map(|(alert, status)| {
        ChainProblem::new(
            snapshot_id,
            ProblemKind::AlertState,
            format!(
                "an alert raised in snapshot {snapshot_id} was altered: alert {alert} has status `{}`, which its resolution columns contradict",
                status.as_deref().unwrap_or("?")
            ),
        )
    }))
}

fn parse_manifest(manifest: &str) -> Option<BTreeMap<Part, (u64, String)>> {
    let mut lines = manifest.lines();
    if lines.next()? != CONTENT_FORMAT {
        return None;
    }
    let mut out = BTreeMap::new();
    for line in lines {
        let mut words = line.split(' ');
        let part = Part::parse(words.next()?)?;
        let rows = words.next()?.parse().ok()?;
        out.insert(part, (rows, words.next()?.to_string()));
    }
    Some(out)
}

fn content_mismatch(
    snapshot_id: i64,
    recorded_manifest: &str,
    manifest_intact: bool,
    found: &Content,
) -> ChainProblem {
    let recorded = manifest_intact
        .then(|| parse_manifest(recorded_manifest))
        .flatten();
    let found_parts = parse_manifest(&found.manifest).unwrap_or_default();
    let Some(recorded) = recorded else {
        return ChainProblem::new(
            snapshot_id,
            ProblemKind::ContentMismatch,
            format!(
                "snapshot {snapshot_id} was altered after commit: its content no longer matches its recorded hash (its recorded manifest was altered too, so which part is unknown)"
            ),
        );
    };
    let mut parts = Vec::new();
    let mut what = Vec::new();
    for part in Part::ALL {
        let before = recorded.get(&part);
        let after = found_parts.get(&part);
        if before == after {
            continue;
        }
        let (was, now) = (before.map_or(0, |b| b.0), after.map_or(0, |a| a.0));
        parts.push(PartMismatch {
            part,
            recorded_rows: was,
            found_rows: now,
        });
        what.push(match was.cmp(&now) {
            std::cmp::Ordering::Equal => part.edited().to_string(),
            std::cmp::Ordering::Greater => format!(
                "{} of the {} are missing ({was} recorded, {now} found)",
                was - now,
                part.rows_noun()
            ),
            std::cmp::Ordering::Less => format!(
                "{} {} were added ({was} recorded, {now} found)",
                now - was,
                part.rows_noun()
            ),
        });
    }
    let mut problem = ChainProblem::new(
        snapshot_id,
        ProblemKind::ContentMismatch,
        format!(
            "snapshot {snapshot_id} was altered after commit: {}",
            what.join("; ")
        ),
    );
    problem.parts = parts;
    problem
}

/// Describes a link that does not chain to the previous verified one: a complete snapshot
/// between them was deleted (or turned into a failed one), or this link's hash was altered.
fn broken_link(conn: &Connection, id: i64, previous: Option<i64>) -> Result<ChainProblem> {
    let from = previous.unwrap_or(0);
    // Ids between the two links that exist nowhere. Gaps are normal (retention deletes failed
    // polls), so they are only suspects; listing is capped for very long gaps.
    const LISTED: i64 = 20;
    let mut present: Vec<i64> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM snapshots WHERE id > ?1 AND id < ?2
             UNION SELECT id FROM pruned_snapshots WHERE id > ?1 AND id < ?2 ORDER BY 1",
        )?;
        stmt.query_map(params![from, id], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?
    };
    present.sort_unstable();
    let missing: Vec<i64> = (from + 1..id)
        .filter(|i| present.binary_search(i).is_err())
        .take(LISTED as usize + 1)
        .collect();
    let before = match previous {
        Some(p) => format!("snapshot {p}, the complete snapshot before it"),
        None => "the start of the chain".to_string(),
    };
    let mut problem = if missing.is_empty() {
        ChainProblem::new(
            id,
            ProblemKind::LinkMismatch,
            match previous {
                Some(p) => format!(
                    "snapshot {id} does not chain to {before}: the chain hash of snapshot {id} was altered, or snapshot {p} was inserted or rewritten (with a recomputed hash) after {id} was committed"
                ),
                None => format!(
                    "the chain hash of snapshot {id} was altered: it does not chain to {before}"
                ),
            },
        )
    } else {
        let named = if missing.len() == 1 {
            format!("snapshot {} is missing or was altered", missing[0])
        } else if missing.len() as i64 > LISTED {
            format!(
                "one of the snapshots missing between {from} and {id} (e.g. {}) was deleted",
                missing[..LISTED as usize]
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!(
                "one of snapshots {} is missing or was altered",
                missing
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        ChainProblem::new(
            id,
            ProblemKind::MissingSnapshot,
            format!(
                "{named}: snapshot {id} does not chain to {before} (a deleted complete snapshot breaks the chain here; deleted failed polls do not), or the chain hash of snapshot {id} was altered"
            ),
        )
    };
    problem.missing_ids = missing;
    Ok(problem)
}

#[cfg(test)]
mod tests;
