//! Workspaces as the database knows them: what `segwatch workspaces` lists, and deleting one
//! workspace entirely (`segwatch workspaces delete`).
//!
//! Deletion finds its tables in the schema itself rather than in a list kept here: every table
//! with a `workspace_id` column, plus any table that references a deleted table by foreign key
//! (e.g. a future table keyed only by `snapshot_id`). A table added by a later migration is
//! therefore covered without touching this file; and since foreign keys are enforced at each
//! statement, a reference the discovery missed fails the deletion (rolled back whole) instead
//! of leaving a dangling row.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::{Result, Store, StoreError, opt_time_col, time_col};
use segwatch_core::ids::SnapshotId;
use segwatch_core::model::KindStatuses;
use segwatch_core::time::Timestamp;

/// One workspace of the database, with what its listing shows.
#[derive(Debug, Clone, Serialize)]
pub struct StoredWorkspace {
    /// Row id (`workspace_id` in every table).
    pub id: i64,
    /// Its label.
    pub name: String,
    /// Segment's workspace id, once a poll has seen it.
    pub segment_id: Option<String>,
    /// When segwatch first recorded it.
    pub created_at: Timestamp,
    /// The last complete poll.
    pub last_complete: Option<CompletePoll>,
    /// The last finished poll, complete or failed.
    pub last_poll: Option<FinishedPoll>,
    /// The kinds the last complete poll could not read in full (empty: all read).
    pub kind_status: KindStatuses,
    /// Open compliance findings.
    pub open_findings: i64,
}

/// A complete poll: its snapshot and when it finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompletePoll {
    /// The snapshot.
    pub snapshot_id: SnapshotId,
    /// When it committed (its observation time).
    pub finished_at: Timestamp,
}

/// The outcome of a finished poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FinishedPoll {
    /// The snapshot.
    pub snapshot_id: SnapshotId,
    /// `complete` or `failed`.
    pub status: String,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// Why it failed.
    pub error: Option<String>,
}

/// What [`Store::delete_workspace`] removed.
#[derive(Debug, Clone, Serialize)]
pub struct DeletionReport {
    /// The workspace's label.
    pub workspace: String,
    /// Its former row id.
    pub workspace_id: i64,
    /// Rows deleted per table, in the order they were deleted (children before parents).
    pub tables: Vec<TableDeletion>,
    /// Database size before (pages in use × page size).
    pub bytes_before: u64,
    /// Database size after `VACUUM`.
    pub bytes_after: u64,
    /// Why `VACUUM` failed, if it did (e.g. another process held a long read): the deletion
    /// stands, and the space is reused by later writes or reclaimed by a later `VACUUM`.
    pub vacuum_error: Option<String>,
}

impl DeletionReport {
    /// Rows deleted in all tables.
    pub fn rows(&self) -> usize {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// Bytes `VACUUM` gave back.
    pub fn bytes_reclaimed(&self) -> u64 {
        self.bytes_before.saturating_sub(self.bytes_after)
    }
}

/// Rows deleted from one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDeletion {
    /// The table.
    pub table: String,
    /// Rows deleted.
    pub rows: usize,
}

/// A table to empty of one workspace: the rows it deletes and the tables it references.
struct Target {
    table: String,
    /// SQL condition selecting the workspace's rows (`?1` is the workspace id).
    condition: String,
    parents: BTreeSet<String>,
}

impl Store {
    /// The workspace labels the database holds, by name.
    pub fn workspace_names(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM workspaces ORDER BY name")?;
        let names = stmt.query_map([], |r| r.get(0))?;
        Ok(names.collect::<std::result::Result<_, _>>()?)
    }

    /// The workspaces (id, label) that recorded Segment's workspace id `segment_id`.
    pub fn workspaces_with_segment_id(&self, segment_id: &str) -> Result<Vec<(i64, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, name FROM workspaces WHERE segment_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([segment_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every workspace of the database with its last polls, the read status of its last
    /// complete poll and its open findings; by name. Reads only.
    pub fn stored_workspaces(&self) -> Result<Vec<StoredWorkspace>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, name, segment_id, created_at,
                (SELECT count(*) FROM alerts a WHERE a.workspace_id = w.id
                   AND a.rule_kind = 'compliance' AND a.status = 'open')
             FROM workspaces w ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, time_col(r, 3)?, r.get(4)?))
        })?;
        let rows: Vec<(i64, String, Option<String>, Timestamp, i64)> =
            rows.collect::<std::result::Result<_, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, name, segment_id, created_at, open_findings) in rows {
            let last_complete: Option<CompletePoll> = self
                .conn
                .query_row(
                    "SELECT id, finished_at FROM snapshots
                     WHERE workspace_id = ?1 AND status = 'complete' ORDER BY id DESC LIMIT 1",
                    [id],
                    |r| {
                        Ok(CompletePoll {
                            snapshot_id: SnapshotId(r.get(0)?),
                            finished_at: time_col(r, 1)?,
                        })
                    },
                )
                .optional()?;
            let last_poll = self
                .conn
                .query_row(
                    "SELECT id, status, finished_at, error FROM snapshots
                     WHERE workspace_id = ?1 AND status != 'running' ORDER BY id DESC LIMIT 1",
                    [id],
                    |r| {
                        Ok(FinishedPoll {
                            snapshot_id: SnapshotId(r.get(0)?),
                            status: r.get(1)?,
                            finished_at: opt_time_col(r, 2)?,
                            error: r.get(3)?,
                        })
                    },
                )
                .optional()?;
            let kind_status = match &last_complete {
                Some(poll) => self.kind_status(poll.snapshot_id)?,
                None => KindStatuses::new(),
            };
            out.push(StoredWorkspace {
                id,
                name,
                segment_id,
                created_at,
                last_complete,
                last_poll,
                kind_status,
                open_findings,
            });
        }
        Ok(out)
    }

    /// Deletes every row of the workspace `name` from every table, in one transaction and in
    /// an order the foreign keys accept, then `VACUUM`s to give the space back. Other
    /// workspaces' rows, and their hash chains, are untouched. Fails with
    /// [`StoreError::UnknownWorkspace`] (naming the known ones) if there is no such workspace.
    pub fn delete_workspace(&mut self, name: &str) -> Result<DeletionReport> {
        let Some(workspace_id) = self.find_workspace(name)? else {
            return Err(StoreError::UnknownWorkspace {
                name: name.to_string(),
                known: self.workspace_names()?,
            });
        };
        let bytes_before = self.size()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let targets = deletion_order(deletion_targets(&tx)?)?;
        let mut tables = Vec::with_capacity(targets.len());
        for target in &targets {
            let rows = tx.execute(
                &format!(
                    "DELETE FROM \"{}\" WHERE {}",
                    target.table, target.condition
                ),
                [workspace_id],
            )?;
            tables.push(TableDeletion {
                table: target.table.clone(),
                rows,
            });
        }
        tx.commit()?;
        // The deletion is committed: a failed VACUUM is reported, not an error.
        let vacuum_error = self
            .conn
            .execute_batch("VACUUM")
            .err()
            .map(|e| e.to_string());
        // Fold the vacuumed pages back into the file so it shrinks now, not at the next
        // checkpoint; a reader holding the WAL only delays that, the deletion stands.
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        Ok(DeletionReport {
            workspace: name.to_string(),
            workspace_id,
            tables,
            bytes_before,
            bytes_after: self.size()?,
            vacuum_error,
        })
    }

    /// Pages in use times the page size: the database's size as SQLite counts it (the file
    /// itself may lag behind until a checkpoint).
    fn size(&self) -> Result<u64> {
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let page_size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok((pages * page_size).max(0) as u64)
    }
}

/// The tables holding rows of a workspace, each with the condition selecting them.
fn deletion_targets(conn: &rusqlite::Connection) -> Result<Vec<Target>> {
    let tables: Vec<String> = {
        let mut stmt = conn.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             ORDER BY rowid",
        )?;
        let names = stmt.query_map([], |r| r.get(0))?;
        names.collect::<std::result::Result<_, _>>()?
    };
    // Per table: its columns and its foreign keys (column, parent table, parent column).
    let mut columns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut foreign: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for table in &tables {
        let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
        let names = stmt.query_map([table], |r| r.get(0))?;
        columns.insert(table.clone(), names.collect::<std::result::Result<_, _>>()?);
        let mut stmt =
            conn.prepare("SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list(?1)")?;
        let keys = stmt.query_map([table], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                // A key naming no column references the parent's primary key.
                r.get::<_, Option<String>>(2)?
                    .unwrap_or_else(|| "rowid".to_string()),
            ))
        })?;
        foreign.insert(table.clone(), keys.collect::<std::result::Result<_, _>>()?);
    }
    let mut conditions: BTreeMap<String, String> = BTreeMap::new();
    for table in &tables {
        if table == "workspaces" {
            conditions.insert(table.clone(), "id = ?1".into());
        } else if columns[table].iter().any(|c| c == "workspace_id") {
            conditions.insert(table.clone(), "workspace_id = ?1".into());
        }
    }
    // Tables keyed only through a reference to a deleted table, to a fixed point.
    loop {
        let mut added = false;
        for table in &tables {
            if conditions.contains_key(table) {
                continue;
            }
            let through: Vec<String> = foreign[table]
                .iter()
                .filter_map(|(from, parent, to)| {
                    conditions.get(parent).map(|c| {
                        format!("\"{from}\" IN (SELECT \"{to}\" FROM \"{parent}\" WHERE {c})")
                    })
                })
                .collect();
            if !through.is_empty() {
                conditions.insert(table.clone(), format!("({})", through.join(" OR ")));
                added = true;
            }
        }
        if !added {
            break;
        }
    }
    Ok(tables
        .iter()
        .filter_map(|table| {
            let condition = conditions.get(table)?.clone();
            let parents = foreign[table]
                .iter()
                .map(|(_, parent, _)| parent.clone())
                .filter(|p| p != table && conditions.contains_key(p))
                .collect();
            Some(Target {
                table: table.clone(),
                condition,
                parents,
            })
        })
        .collect())
}

/// Orders the deletions so that no table is emptied while a table still to be emptied
/// references it (children first). A table's references to itself (`base_snapshot_id`) are
/// settled within its one statement.
fn deletion_order(mut pending: Vec<Target>) -> Result<Vec<Target>> {
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let referenced: BTreeSet<String> = pending
            .iter()
            .flat_map(|t| t.parents.iter().cloned())
            .collect();
        let Some(next) = pending.iter().position(|t| !referenced.contains(&t.table)) else {
            let names: Vec<&str> = pending.iter().map(|t| t.table.as_str()).collect();
            return Err(StoreError::Snapshot(format!(
                "the tables {} reference each other in a cycle; cannot order a deletion",
                names.join(", ")
            )));
        };
        ordered.push(pending.remove(next));
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Store {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::open::configure(&conn).unwrap();
        crate::open::migrate(&mut conn).unwrap();
        Store {
            conn,
            writer: None,
            path: std::path::PathBuf::new(),
        }
    }

    #[test]
    fn every_workspace_keyed_table_is_deleted_children_first() {
        let store = memory();
        let order: Vec<String> = deletion_order(deletion_targets(store.connection()).unwrap())
            .unwrap()
            .into_iter()
            .map(|t| t.table)
            .collect();
        for table in [
            "snapshots",
            "pruned_snapshots",
            "chain_backfills",
            "resource_versions",
            "changes",
            "alerts",
            "deliveries",
            "rule_state",
            "audit_events",
            "audit_reads",
            "privacy_requests",
            "quarantine",
            "workspaces",
        ] {
            assert!(
                order.iter().any(|t| t == table),
                "{table} missing: {order:?}"
            );
        }
        assert!(
            !order.iter().any(|t| t == "privacy_salt"),
            "the salt belongs to the database, not to a workspace"
        );
        let at = |t: &str| order.iter().position(|o| o == t).unwrap();
        assert!(at("deliveries") < at("alerts"));
        assert!(at("alerts") < at("changes"));
        assert!(at("changes") < at("resource_versions"));
        assert!(at("resource_versions") < at("snapshots"));
        assert!(at("audit_reads") < at("snapshots"));
        assert_eq!(order.last().map(String::as_str), Some("workspaces"));
    }

    #[test]
    fn an_unknown_workspace_names_the_known_ones() {
        let mut store = memory();
        store.workspace_id("prod").unwrap();
        store.workspace_id("eu").unwrap();
        let err = store.delete_workspace("staging").unwrap_err().to_string();
        assert!(
            err.contains("`staging`") && err.contains("eu, prod"),
            "{err}"
        );
    }
}
