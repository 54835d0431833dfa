//! Verification (`segwatch verify`): every link recomputed, each workspace's chain walked to
//! its first alteration, and the rows that refer to snapshots that are gone.

use std::collections::{BTreeMap, HashMap};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{CONTENT_FORMAT, Content, LinkPosition, Part, Source, content_of, genesis, link_hash};
use crate::{Result, Store};
use segwatch_core::model::sha256_hex;

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
    /// Imported access reviews verified (likewise; schema 15).
    pub reviews: usize,
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
    /// For an imported access review: its id (`snapshot_id` is then the link it follows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_id: Option<i64>,
    /// Where it stands in the chain.
    #[serde(skip)]
    pub position: LinkPosition,
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
    /// When the finding is an imported access review: its id (`snapshot_id` is then the link
    /// the review follows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_id: Option<i64>,
    /// Where the finding stands in the chain (the first one is reported).
    #[serde(skip)]
    pub position: LinkPosition,
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
            review_id: None,
            position: (snapshot_id, 0, snapshot_id),
        }
    }

    fn review(link: &StoredLink, kind: ProblemKind, message: String) -> ChainProblem {
        ChainProblem {
            review_id: Some(link.position.2),
            position: link.position,
            ..ChainProblem::new(link.position.0, kind, message)
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
        UNION ALL SELECT workspace_id, snapshot_id, 'access reviews of it', 0 FROM access_reviews
        UNION ALL SELECT workspace_id, snapshot_id, 'access changes', 1 FROM access_changes
        UNION ALL SELECT workspace_id, snapshot_id, 'finding updates', 1 FROM alert_updates
        UNION ALL SELECT workspace_id, valid_from, 'flow field rows stored', 1
            FROM flow_personal_fields
        UNION ALL SELECT workspace_id, valid_to, 'flow field rows closed', 1
            FROM flow_personal_fields WHERE valid_to IS NOT NULL
        UNION ALL SELECT workspace_id, since_snapshot_id, 'access tracked from it', 0
            FROM access_tracking
        UNION ALL SELECT workspace_id, since_snapshot_id, 'flow fields tracked from it', 0
            FROM flow_fields_tracking
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
                    .is_none_or(|p| problem.position < p.position)
                {
                    chain.problem = Some(problem);
                }
            }
            // Only what precedes the first alteration is vouched for.
            if let Some(problem) = &chain.problem {
                chain.verified.retain(|l| l.position < problem.position);
            }
            chain.pruned = chain.verified.iter().filter(|l| l.pruned).count();
            chain.reviews = chain
                .verified
                .iter()
                .filter(|l| l.review_id.is_some())
                .count();
            chain.snapshots = chain.verified.len() - chain.pruned - chain.reviews;
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

/// One link as stored: a complete snapshot's or a review's recorded hashes, or a tombstone's
/// chain hash.
struct StoredLink {
    /// The snapshot's (or tombstone's, or review's) id.
    id: i64,
    position: LinkPosition,
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
        reviews: 0,
        head: None,
        backfill,
        problem: None,
        verified: Vec::new(),
    };
    let mut links: Vec<StoredLink> = {
        let mut stmt = conn.prepare(
            "SELECT id, id, 0, content_manifest, content_hash, chain_hash FROM snapshots
             WHERE workspace_id = ?1 AND status = 'complete'
             UNION ALL
             SELECT id, id, 1, NULL, NULL, chain_hash FROM pruned_snapshots WHERE workspace_id = ?1
             UNION ALL
             SELECT id, after_link_id, 2, content_manifest, content_hash, chain_hash
             FROM access_reviews WHERE workspace_id = ?1",
        )?;
        let rows = stmt.query_map([workspace_id], |r| {
            let id: i64 = r.get(0)?;
            let at: i64 = r.get(1)?;
            let (source, position) = match r.get::<_, i64>(2)? {
                0 => (Source::Snapshot, (at, 0, id)),
                1 => (Source::Tombstone, (at, 0, id)),
                _ => (Source::Review, (at, 1, id)),
            };
            Ok(StoredLink {
                id,
                position,
                source,
                manifest: r.get(3)?,
                content_hash: r.get(4)?,
                chain_hash: r.get(5)?,
            })
        })?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    links.sort_by_key(|l| l.position);
    let mut previous = Previous {
        link: None,
        hash: genesis(name),
    };
    for link in links {
        if let Some(problem) = check_link(conn, &link, &previous)? {
            chain.problem = Some(problem);
            break;
        }
        let hash = link.chain_hash.expect("checked");
        let review = link.source == Source::Review;
        chain.verified.push(Link {
            snapshot_id: link.position.0,
            chain_hash: hash.clone(),
            pruned: link.source == Source::Tombstone,
            review_id: review.then_some(link.id),
            position: link.position,
        });
        previous = Previous {
            link: Some(link.position),
            hash,
        };
    }
    Ok(chain)
}

/// The last verified link: its position (none before the first) and chain hash.
struct Previous {
    link: Option<LinkPosition>,
    hash: String,
}

/// Checks one link against the verified previous one; `None` if it holds.
fn check_link(
    conn: &Connection,
    link: &StoredLink,
    previous: &Previous,
) -> Result<Option<ChainProblem>> {
    if link.source == Source::Review {
        return check_review(conn, link, previous);
    }
    let previous_hash = &previous.hash;
    // A snapshot after a review: the snapshot before that review.
    let previous_id = previous.link.map(|p| p.0);
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
            let mut problem = broken_link(conn, id, previous_id)?;
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
        let mut problem = broken_link(conn, id, previous_id)?;
        if let (Some((_, 1, review)), ProblemKind::LinkMismatch) = (previous.link, problem.kind) {
            problem.message = format!(
                "snapshot {id} does not chain to access review {review}, the link before it: the chain hash of snapshot {id} was altered, or access review {review} was inserted or rewritten after {id} was committed"
            );
        }
        return Ok(Some(problem));
    }
    Ok(None)
}

/// Checks an imported access review's link: its hashes, its content, its chaining.
fn check_review(
    conn: &Connection,
    link: &StoredLink,
    previous: &Previous,
) -> Result<Option<ChainProblem>> {
    let review = link.id;
    let (Some(manifest), Some(recorded), Some(chain_hash)) =
        (&link.manifest, &link.content_hash, &link.chain_hash)
    else {
        return Ok(Some(ChainProblem::review(
            link,
            ProblemKind::Unhashed,
            format!(
                "access review {review} carries no content or chain hash: it was inserted or altered outside segwatch"
            ),
        )));
    };
    let content = content_of(conn, review, Source::Review)?;
    let manifest_intact = sha256_hex(manifest.as_bytes()) == *recorded;
    if content.hash != *recorded {
        let mut problem = content_mismatch(link.position.0, manifest, manifest_intact, &content);
        problem.review_id = Some(review);
        problem.position = link.position;
        problem.message = problem.message.replacen(
            &format!("snapshot {}", link.position.0),
            &format!("access review {review}"),
            1,
        );
        problem.message = problem.message.replacen("after commit", "after import", 1);
        return Ok(Some(problem));
    }
    if !manifest_intact {
        return Ok(Some(ChainProblem::review(
            link,
            ProblemKind::Manifest,
            format!(
                "the content manifest recorded with access review {review} was altered (its content itself is intact)"
            ),
        )));
    }
    if link_hash(&previous.hash, recorded) != *chain_hash {
        let before = match previous.link {
            Some((_, 1, r)) => format!("access review {r}, the link before it"),
            Some((s, _, _)) => format!("snapshot {s}, the link before it"),
            None => "the start of the chain".to_string(),
        };
        return Ok(Some(ChainProblem::review(
            link,
            ProblemKind::LinkMismatch,
            format!(
                "access review {review} does not chain to {before}: its chain hash was altered, or a link before it was inserted, deleted or rewritten after it was imported"
            ),
        )));
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
