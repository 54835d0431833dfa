//! Sealing: each complete snapshot hashed into its workspace's chain inside its commit
//! transaction, and the backfill of the snapshots that predate the chain.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

use super::{Source, content_of, genesis, link_hash, previous_link, workspace_name};
use crate::{Result, now};

/// Hashes a just-completed snapshot into its workspace's chain. Call inside the transaction
/// that wrote it, after every row of it is written and its status is `complete`. Returns the
/// chain hash.
pub(crate) fn seal(conn: &Connection, workspace_id: i64, snapshot_id: i64) -> Result<String> {
    seal_snapshot(conn, workspace_id, snapshot_id, true)
}

/// [`seal`]; `reviews`: whether `access_reviews` exists yet (not while the migration that
/// introduces the chain backfills it, long before schema 15).
fn seal_snapshot(
    conn: &Connection,
    workspace_id: i64,
    snapshot_id: i64,
    reviews: bool,
) -> Result<String> {
    let content = content_of(conn, snapshot_id, Source::Snapshot)?;
    let at = (snapshot_id, 0, snapshot_id);
    let previous = match previous_link(conn, workspace_id, at, reviews)? {
        Some((_, Some(hash))) => hash,
        Some(((id, _, _), None)) => {
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

/// Hashes an imported access review into its workspace's chain, after the link at
/// `after_link_id` and the reviews already chained after it. Call inside the import's
/// transaction, after its row and its decisions are written. Returns the chain hash.
pub(crate) fn seal_review(
    conn: &Connection,
    workspace_id: i64,
    review_id: i64,
    after_link_id: i64,
) -> Result<String> {
    let content = content_of(conn, review_id, Source::Review)?;
    let previous = match previous_link(conn, workspace_id, (after_link_id, 1, review_id), true)? {
        Some((_, Some(hash))) => hash,
        Some(((id, rank, link), None)) => {
            tracing::error!(
                snapshot = id,
                review = (rank == 1).then_some(link),
                "the previous link has no chain hash; the chain is broken there (run `segwatch verify`)"
            );
            String::new()
        }
        None => genesis(&workspace_name(conn, workspace_id)?),
    };
    let chain = link_hash(&previous, &content.hash);
    conn.prepare_cached(
        "UPDATE access_reviews SET content_manifest = ?2, content_hash = ?3, chain_hash = ?4 WHERE id = ?1",
    )?
    .execute(params![review_id, content.manifest, content.hash, chain])?;
    Ok(chain)
}

/// Hashes, in order, the complete snapshots that existed before the chain (called by the
/// migration that introduces it, in its transaction) and records the backfill per workspace.
pub(crate) fn backfill(conn: &Connection) -> Result<()> {
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
            seal_snapshot(conn, workspace, id, false)?;
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
